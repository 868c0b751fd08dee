import re

import pytest

from boardgraph.training.config import ConfigError, TrainConfig


def test_yaml_and_json_roundtrip(tmp_path):
    cfg = TrainConfig()
    cfg.objective.kind = "content"
    cfg.model.matryoshka_dims = (16, 32)
    cfg.optim.betas = (0.8, 0.9)
    for name in ("c.yaml", "c.json"):
        cfg.save(tmp_path / name)
        back = TrainConfig.load(tmp_path / name)
        assert back == cfg
        assert back.model.matryoshka_dims == (16, 32) and back.optim.betas == (0.8, 0.9)


def test_unknown_keys_and_bad_values_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['lr_max'\] in section 'optim'"):
        TrainConfig.from_dict({"optim": {"lr_max": 1.0}})
    with pytest.raises(ConfigError, match=r"unknown section\(s\) \['trainer'\]"):
        TrainConfig.from_dict({"trainer": {}})
    with pytest.raises(ConfigError, match="objective.kind 'magic'"):
        TrainConfig.from_dict({"objective": {"kind": "magic"}})
    (tmp_path / "bad.yaml").write_text("run: [1, 2\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        TrainConfig.load(tmp_path / "bad.yaml")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TrainConfig.load(tmp_path / "missing.yaml")


def test_fingerprint_tracks_model_not_schedule():
    a, b = TrainConfig(), TrainConfig()
    b.run.steps, b.optim.lr = 5, 0.5          # training length and lr do not change the parameters
    assert a.model_fingerprint() == b.model_fingerprint()
    b.model.embed_dim = 64
    assert a.model_fingerprint() != b.model_fingerprint()


def test_symmetric_defaults_per_kind_and_survives_a_roundtrip(tmp_path):
    from boardgraph.training.factory import build_model
    from boardgraph.datasets import synthetic_lookbooks

    cfg = TrainConfig()
    assert cfg.objective.symmetric is None and cfg.objective.is_symmetric()        # neighbor: two-way
    cfg.objective.kind = "coboard"
    assert not cfg.objective.is_symmetric()                                         # the baseline: one-way
    cfg.objective.symmetric = True
    assert cfg.objective.is_symmetric()
    cfg.save(tmp_path / "c.yaml")
    assert TrainConfig.load(tmp_path / "c.yaml").objective.symmetric is True
    cfg.objective.symmetric = None
    cfg.save(tmp_path / "d.yaml")
    assert TrainConfig.load(tmp_path / "d.yaml").objective.symmetric is None
    g = synthetic_lookbooks(60, 6, seed=0)
    cfg.model.image = None
    assert build_model(cfg, g, gather=False).model.coboard.inner.symmetric is False
    cfg.objective.kind = "neighbor"
    assert build_model(cfg, g, gather=False).model.neighbor.symmetric is True


# -- issue 15: type errors are caught at load and name the field -------------------------------------
def _typed_fields():
    """(section, field, annotation) of every bool / int / float field of the config sections (and
    their ``X | None`` forms); lists of numbers are checked in the file test below."""
    import dataclasses
    import types
    import typing

    out = []
    for sec in dataclasses.fields(TrainConfig):
        hints = typing.get_type_hints(sec.default_factory)
        for f in dataclasses.fields(sec.default_factory):
            base = {a for a in typing.get_args(hints[f.name]) if a is not type(None)} or {hints[f.name]}
            if typing.get_origin(hints[f.name]) in (None, types.UnionType) and base & {bool, int, float}:
                out.append((sec.name, f.name, hints[f.name]))
    return out


TYPED = _typed_fields()


def test_every_numeric_and_bool_field_is_covered():
    names = {f"{s}.{f}" for s, f, _ in TYPED}
    assert {"run.steps", "run.batch_size", "run.tensorboard", "optim.lr", "model.metadata",
            "objective.symmetric", "data.holdout_fraction", "model.id_embedding", "model.id_dropout",
            "optim.id_lr_scale", "optim.refine_epochs", "optim.refine_id_dropout",
            "optim.refine_val_fraction", "optim.refine_negatives", "objective.board_query_tau", "model.id_buckets",
            "model.id_hashes", "model.shard_ids"} <= names and len(names) == 43


@pytest.mark.parametrize("section,name,tp", TYPED, ids=[f"{s}.{f}" for s, f, _ in TYPED])
@pytest.mark.parametrize("bad", ["abc", [1, 2], {"a": 1}])
def test_a_value_of_the_wrong_type_names_field_value_and_type(section, name, tp, bad):
    want = {bool: "a boolean", int: "an integer", float: "a number"}
    base = [a for a in (bool, int, float) if a == tp or a in getattr(tp, "__args__", ())][0]
    msg = f"{section}.{name} must be {want[base]}{' or null' if 'None' in str(tp) else ''}, got {bad!r} " \
          f"({type(bad).__name__})"
    with pytest.raises(ConfigError, match=re.escape(msg)):
        TrainConfig.from_dict({section: {name: bad}})


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_type_errors_are_caught_when_a_file_is_loaded(tmp_path, suffix):
    import json

    import yaml

    for section, body, msg in [("run", {"steps": "abc"}, "run.steps must be an integer, got 'abc' (str)"),
                               ("run", {"batch_size": [64, 128]},
                                "run.batch_size must be an integer, got [64, 128] (list)"),
                               ("run", {"steps": True}, "run.steps must be an integer, got True (bool)"),
                               ("optim", {"lr": "fast"}, "optim.lr must be a number, got 'fast' (str)"),
                               ("run", {"tensorboard": "yes please"}, "run.tensorboard must be a boolean"),
                               ("model", {"matryoshka_dims": [16, "x"]}, "model.matryoshka_dims[1] must be an integer"),
                               ("optim", {"betas": [0.9]}, "optim.betas must be a list of 2 numbers, got [0.9]"),
                               ("objective", {"weights": {"clip": "one"}},
                                "objective.weights['clip'] must be a number"),
                               ("model", {"image": 3}, "model.image must be a string or null, got 3 (int)")]:
        d = {section: body}
        path = tmp_path / f"c{suffix}"
        path.write_text(yaml.safe_dump(d) if suffix == ".yaml" else json.dumps(d))
        with pytest.raises(ConfigError) as e:
            TrainConfig.load(path)
        assert msg in str(e.value) and str(path) in str(e.value), str(e.value)


def test_values_are_normalised_and_ranges_checked():
    cfg = TrainConfig.from_dict({"optim": {"lr": 1, "betas": [0.9, 0.99]}, "run": {"steps": 10.0}})
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float) and cfg.optim.betas == (0.9, 0.99)
    assert cfg.run.steps == 10 and isinstance(cfg.run.steps, int)
    with pytest.raises(ConfigError, match="run.steps must be an integer, got 10.5"):
        TrainConfig.from_dict({"run": {"steps": 10.5}})
    with pytest.raises(ConfigError, match="optim.lr must be finite, got nan"):
        TrainConfig.from_dict({"optim": {"lr": float("nan")}})
    for key in ("log_every", "checkpoint_every"):
        with pytest.raises(ConfigError, match=f"run.{key} must be >= 1, got 0"):
            TrainConfig.from_dict({"run": {key: 0}})
    with pytest.raises(ConfigError, match="optim.accumulate must be >= 1, got 0"):
        TrainConfig.from_dict({"optim": {"accumulate": 0}})
    with pytest.raises(ConfigError, match=r"model.id_dropout 1.0 must lie in \[0, 1\)"):
        TrainConfig.from_dict({"model": {"id_embedding": True, "id_dropout": 1.0}})
    # the ID fields leave the fingerprint of a model without IDs as it was before they existed
    assert TrainConfig().model_fingerprint() == "99d1e445e8e24b87"
    assert TrainConfig.from_dict({"model": {"id_dropout": 0.1}}).model_fingerprint() == "99d1e445e8e24b87"
    with_ids = TrainConfig.from_dict({"model": {"id_embedding": True}})
    assert with_ids.uses_ids() and with_ids.model_fingerprint() != "99d1e445e8e24b87"
    assert TrainConfig.from_dict({"objective": {"kind": "neighbor_id"}}).uses_ids()
    # the hashed-table and sharding fields leave the fingerprints of runs with IDs as they were;
    # a hashed table has another shape, sharding the same one
    assert with_ids.model_fingerprint() == "e2a1cc6f3852dfea"
    assert TrainConfig.from_dict({"objective": {"kind": "neighbor_cf"}, "model": {"shard_ids": True}}
                                 ).model_fingerprint() == "0ad61a417d7d021d"
    assert TrainConfig.from_dict({"model": {"id_embedding": True, "id_buckets": 100}}).model_fingerprint() \
        != "e2a1cc6f3852dfea"
    with pytest.raises(ConfigError, match=r"model.id_buckets must be >= 0 .* model.id_hashes in \[1, 4\], got 10 and 5"):
        TrainConfig.from_dict({"model": {"id_buckets": 10, "id_hashes": 5}})
    with pytest.raises(ConfigError, match="section 'run' must be a mapping of keys to values, got 5"):
        TrainConfig.from_dict({"run": 5})
    cfg = TrainConfig()
    cfg.run.batch_size = "64"                                       # set in code: validate() names it too
    with pytest.raises(ConfigError, match="run.batch_size must be an integer, got '64' \\(str\\)"):
        cfg.validate()
