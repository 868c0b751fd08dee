"""The registry of model kinds (boardgraph.models) and what derives from it."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import boardgraph.evaluation.harness  # noqa: F401  (registers every kind)
from boardgraph.models import MODEL_KINDS, ModelRegistry, UnknownModelError
from boardgraph.objectives.pinclip import default_weights
from boardgraph.training.config import ConfigError, TrainConfig

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_kind_is_registered_once_in_the_published_order():
    assert MODEL_KINDS.names() == ("content", "coboard", "neighbor", "neighbor_id", "neighbor_cf", "random",
                                   "popularity", "minilm", "tfidf", "towers", "pinsage", "itemknn", "ease", "pixie", "bpr")
    assert MODEL_KINDS.names("trained") == ("content", "coboard", "neighbor", "neighbor_id", "neighbor_cf")
    assert MODEL_KINDS.names("scorer") == ("random", "popularity", "itemknn", "ease", "pixie", "bpr")
    assert {k.name for k in MODEL_KINDS if k.hybrid_base} == {"content", "coboard", "neighbor", "neighbor_id",
                                                             "neighbor_cf", "minilm", "towers", "pinsage"}
    assert {k.name for k in MODEL_KINDS if k.needs_config} == {"content", "coboard", "neighbor", "neighbor_id",
                                                              "neighbor_cf", "towers", "pinsage"}


def test_default_loss_weights_come_from_the_registry():
    assert default_weights("neighbor") == {"clip": 1.0, "pin_modality": 1.0, "mates": 1.0, "pairs": 1.0,
                                           "board": 0.5, "matryoshka": 0.5}
    assert default_weights("content") == {"clip": 1.0, "pin_modality": 1.0, "matryoshka": 0.5}
    w = default_weights("coboard")
    w["coboard"] = 9.0   # a copy: the registry's weights do not change
    assert default_weights("coboard")["coboard"] == 1.0
    with pytest.raises(ValueError, match="'ease' is a scorer baseline, not a trained kind"):
        default_weights("ease")
    assert default_weights("neighbor_id") == default_weights("neighbor") == default_weights("neighbor_cf")
    with pytest.raises(ConfigError, match="objective.kind 'gcn' is not one of content, coboard, neighbor, neighbor_id, "
                                          "neighbor_cf"):
        TrainConfig.from_dict({"objective": {"kind": "gcn"}})


def test_a_new_kind_is_one_decorated_function(tmp_path):
    reg = ModelRegistry()

    @reg.register("always_one", family="scorer", summary="scores every pin 1")
    class AlwaysOne:
        def __init__(self, seed: int = 0, value: float = 1.0) -> None:
            self.seed, self.value = seed, value

    assert reg.names() == ("always_one",) and reg.get("always_one").make_scorer(5, value=2.0).value == 2.0
    assert reg.markdown() == "- `always_one` (scorer): scores every pin 1"
    with pytest.raises(ValueError, match="already registered"):
        reg.register("always_one", family="scorer", summary="again")(lambda seed=0: None)
    with pytest.raises(ValueError, match="family must be one of"):
        reg.register("x", family="gnn", summary="")
    with pytest.raises(ValueError, match="without '\\+'"):
        reg.register("a+b", family="scorer", summary="")
    with pytest.raises(UnknownModelError, match=r"unknown model 'nope'; choose from \['always_one'\]"):
        reg.get("nope")


def test_the_readme_model_list_is_the_registry():
    text = README.read_text()
    m = re.search(r"<!-- models:start -->\n(.*?)\n<!-- models:end -->", text, re.S)
    assert m, "README.md lacks the <!-- models:start --> ... <!-- models:end --> block"
    assert m.group(1).strip() == MODEL_KINDS.markdown(), "regenerate it: boardgraph models --markdown"
