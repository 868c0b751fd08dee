"""checkpoint.py: refused files give the named error, stale temporary files are cleaned, the run
folder lock keeps a second process out, and the graph fingerprint tracks ids, edges and features."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from boardgraph.training.checkpoint import (CheckpointFormatError, RunLockedError, graph_fingerprint, load_checkpoint,
                                   run_lock, save_checkpoint, weights_fingerprint)
from boardgraph.datasets import synthetic_lookbooks
from boardgraph.errors import BoardgraphError

PAYLOAD = {"step": 3, "model": {"w": torch.arange(6.0).reshape(2, 3)}, "fingerprint": "abc"}


def _good(path):
    save_checkpoint(path, PAYLOAD)
    return path


def test_roundtrip(tmp_path):
    ck = load_checkpoint(_good(tmp_path / "checkpoint.pt"), "abc")
    assert ck["step"] == 3 and torch.equal(ck["model"]["w"], PAYLOAD["model"]["w"])


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_truncated_or_empty_checkpoint_is_a_named_error(tmp_path, damage):
    path = _good(tmp_path / "checkpoint.pt")
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "garbage": b"not a checkpoint\n" * 9}[damage])
    with pytest.raises(CheckpointFormatError, match="is not a complete boardgraph checkpoint") as e:
        load_checkpoint(path)
    assert str(path) in str(e.value) and isinstance(e.value, BoardgraphError)
    assert e.value.__context__ is None or e.value.__suppress_context__   # no torch error chained to it


def test_pickled_checkpoint_is_refused_with_a_named_error(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"step": 1, "model": {}, "args": argparse.Namespace(lr=1.0)}, path)  # needs unpickling code
    with pytest.raises(CheckpointFormatError, match="is not a boardgraph checkpoint: it holds pickled Python objects"):
        load_checkpoint(path)


def test_a_torch_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(torch.ones(3), path)
    with pytest.raises(CheckpointFormatError, match=f"{path} is not a boardgraph checkpoint: it holds no 'model'"):
        load_checkpoint(path)


def test_cli_reports_a_broken_checkpoint_in_one_line(tmp_path, capsys):
    from boardgraph.cli import main

    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"")
    assert main(["embed", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"boardgraph embed: error: {run / 'checkpoint.pt'} is not a complete boardgraph checkpoint")


def test_save_removes_stale_temp_files_of_interrupted_saves(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)                       # that process has exited
    live_pid = os.getppid()                           # a process that is still running
    stale = tmp_path / f".checkpoint.pt.tmp-{dead_pid}"
    busy = tmp_path / f".checkpoint.pt.tmp-{live_pid}"
    other = tmp_path / f".other.pt.tmp-{dead_pid}"    # another file's temporary: not ours to remove
    for p in (stale, busy, other):
        p.write_bytes(b"half a checkpoint")
    _good(tmp_path / "checkpoint.pt")
    assert not stale.exists() and busy.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["checkpoint.pt", busy.name, other.name])


def test_a_failed_save_leaves_no_temp_file(tmp_path):
    with pytest.raises(Exception):
        save_checkpoint(tmp_path / "checkpoint.pt", {"model": {}, "bad": lambda: 1})  # cannot be pickled
    assert list(tmp_path.iterdir()) == []


HOLD = textwrap.dedent("""
    import sys
    from boardgraph.training.checkpoint import run_lock
    with run_lock(sys.argv[1], "a test holder"):
        print("locked", flush=True)
        sys.stdin.readline()
""")


def test_run_lock_refuses_a_second_process_and_names_the_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"{tmp_path} is in use by another boardgraph process "
                                                 f"\\(pid {holder.pid}: a test holder\\)"):
            with run_lock(tmp_path, "embedding"):
                pass
    finally:
        holder.communicate("\n", timeout=60)
    with run_lock(tmp_path, "embedding"):   # released when the holder ended
        pass


def test_graph_fingerprint_covers_ids_edges_and_features(tmp_path):
    g = synthetic_lookbooks(60, 6, seed=0)
    fp = graph_fingerprint(g)
    assert len(fp) == 16 and fp == graph_fingerprint(synthetic_lookbooks(60, 6, seed=0))   # regenerated: same
    g.save(tmp_path / "g")
    from boardgraph.graph import PinBoardGraph

    assert graph_fingerprint(PinBoardGraph.load(tmp_path / "g")) == fp                     # a save/load keeps it
    assert graph_fingerprint(synthetic_lookbooks(60, 6, seed=1)) != fp                     # another graph
    gaps = synthetic_lookbooks(60, 6, seed=0)
    gaps.features("pin").table.loc[2, "title"] = None                                      # a missing text value
    gaps.save(tmp_path / "gaps")
    assert graph_fingerprint(PinBoardGraph.load(tmp_path / "gaps")) == graph_fingerprint(gaps) != fp

    def changed(fn) -> str:
        h = synthetic_lookbooks(60, 6, seed=0)
        fn(h)
        return graph_fingerprint(h)

    def rename_pin(h):
        ids = h.ids("pin").copy()
        ids[5] = "renamed"
        h._ids["pin"] = type(h.id_map("pin"))(ids, "pin")

    def new_title(h):
        h.features("pin").table.loc[3, "title"] = "another title"

    def new_price(h):
        h.features("pin").table.loc[3, "price"] += 1.0

    def one_pixel(h):
        h.features("pin").tensors["image"][59, 0, 0, 0] += 1

    def move_edge(h):
        h.relation(("pin", "in", "board")).out_indices[0] += 1

    def rename_feature(h):
        t = h.features("pin")
        t.table = t.table.rename(columns={"title": "name"})
        t.kinds["name"] = t.kinds.pop("title")

    for fn in (rename_pin, new_title, new_price, one_pixel, move_edge, rename_feature):
        assert changed(fn) != fp, fn.__name__


def test_weights_fingerprint_follows_every_weight():
    m = torch.nn.Linear(3, 2)
    fp = weights_fingerprint(m)
    assert fp == weights_fingerprint(m)
    with torch.no_grad():
        m.bias[1] += 1e-6
    assert weights_fingerprint(m) != fp
