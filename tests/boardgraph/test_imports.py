"""Old import paths keep working as deprecated aliases, and the stage packages re-export lazily."""
from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

from boardgraph._imports import MOVED, BoardgraphDeprecationWarning


def test_old_paths_are_the_same_objects_and_warn_once():
    code = """
import warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    from boardgraph.trainer import Trainer
    from boardgraph.trainer import TrainResult
    import boardgraph.apps as apps
    from boardgraph.experiments import format_table, sanity_checks, run_experiment
    import boardgraph.trainer as old_trainer
    import boardgraph
    old_cf = boardgraph.cf
import boardgraph.training.trainer as new
from boardgraph.inference.search import PinSearch
from boardgraph.evaluation.tables import format_table as ft
assert Trainer is new.Trainer and apps.PinSearch is PinSearch and format_table is ft and old_trainer is new
assert old_cf.EASEScorer.__module__ == "boardgraph.evaluation.baselines.cf"
msgs = [str(w.message) for w in caught if w.category.__name__ == "BoardgraphDeprecationWarning"]
assert len(msgs) == 4, msgs
assert msgs[0].startswith("boardgraph.trainer moved to boardgraph.training.trainer"), msgs[0]
assert all(w.filename.endswith("<string>") for w in caught), [w.filename for w in caught]
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def test_every_alias_target_exists_and_writes_forward(monkeypatch):
    import importlib

    for old, targets in MOVED.items():
        for t in targets:
            importlib.import_module(t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BoardgraphDeprecationWarning)
        old = importlib.import_module("boardgraph.runs")
    import boardgraph.inference.run as new

    assert old is new and new.__spec__.name == "boardgraph.inference.run"   # moved whole: the same module
    monkeypatch.setattr(old, "ID_COLUMNS", ("x",))
    assert new.ID_COLUMNS == ("x",)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BoardgraphDeprecationWarning)
        split_old = importlib.import_module("boardgraph.data")   # its names went to two modules
    from boardgraph.evaluation.splits import DataSplit
    from boardgraph.training.factory import load_graph_for
    assert split_old.DataSplit is DataSplit and split_old.load_graph_for is load_graph_for
    with pytest.raises(AttributeError, match="moved to boardgraph.evaluation.splits, boardgraph.training.factory"):
        split_old.nope
    with pytest.raises(AttributeError, match="deprecated alias; set 'DataSplit' on boardgraph.evaluation.splits"):
        split_old.DataSplit = None


def test_stage_packages_re_export_lazily():
    code = """
import sys
import boardgraph.training, boardgraph.inference, boardgraph.evaluation
assert "boardgraph.training.trainer" not in sys.modules and "boardgraph.evaluation.harness" not in sys.modules
from boardgraph.training import Trainer, TrainConfig
from boardgraph.inference import PinSearch, load_run
from boardgraph.evaluation import run_experiment, format_table
import boardgraph.training.trainer as t
assert Trainer is t.Trainer and "Trainer" in dir(boardgraph.training)
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
