import pytest

from boardgraph.config import ConfigError, TrainConfig


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
    from boardgraph.factory import build_model
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
