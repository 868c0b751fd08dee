"""load_run / TrainedRun: checkpoint weights restored, pin embeddings cached on disk, brand-new pins
embedded from raw fields (any subset of modalities, every image form), and clear errors."""
from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from boardgraph.training.checkpoint import CheckpointMismatchError, GraphChangedError, RunLockedError, graph_fingerprint
from boardgraph.training.config import TrainConfig
from boardgraph.datasets import synthetic_lookbooks
from boardgraph.encoders import truncate_embedding
from boardgraph.graph import PinBoardGraph
from boardgraph.graph.errors import ImageReadError, MalformedValueError, SchemaError
from boardgraph.inference.run import (InferenceInputError, NoContentError, RunFormatError, RunNotFoundError, image_tensor,
                             load_run)

N_PINS, N_BOARDS, STEPS = 300, 30, 20  # the shared tiny run (tiny_run_dir in conftest.py)
FIELDS = ["title", "description", "brand", "category", "price"]


@pytest.fixture(scope="module")
def run_dir(tiny_run_dir) -> Path:
    return tiny_run_dir


@pytest.fixture(scope="module")
def run(run_dir):
    return load_run(run_dir)


def _png(img: torch.Tensor) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img.permute(1, 2, 0).numpy()).save(buf, format="PNG")
    return buf.getvalue()


def test_load_run_restores_the_checkpoint_weights(run, run_dir):
    ck = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    want = {k[len("encoder."):]: v for k, v in ck["model"].items() if k.startswith("encoder.")}
    got = run.encoder.state_dict()
    assert set(got) == set(want)
    for k, v in want.items():
        torch.testing.assert_close(got[k], v, rtol=0, atol=0)
    assert not run.encoder.training and not any(p.requires_grad for p in run.encoder.parameters())
    assert run.step == STEPS and run.embed_dim == 64 and run.out_dir == run_dir
    assert run.config.to_dict() == TrainConfig.load(run_dir / "config.yaml").to_dict()
    assert run.graph.num_nodes("pin") == N_PINS and run.schema is not None
    assert run.encoder.modalities == ("image", "text", "metadata")


def test_embed_pins_writes_then_reuses_the_file(run, run_dir):
    emb = run.embed_pins()
    path = run_dir / "embeddings.npy"
    assert emb.shape == (N_PINS, 64) and emb.dtype == torch.float32 and path.exists()
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(N_PINS), atol=1e-5, rtol=0)
    idx = torch.tensor([0, 17, 299])
    with torch.no_grad():
        live = run.encoder(run.builder(run.graph.features("pin"), idx)).embedding
    torch.testing.assert_close(emb[idx], live, atol=1e-5, rtol=0)
    before = path.stat().st_mtime_ns
    torch.testing.assert_close(run.embed_pins(), emb, atol=0, rtol=0)
    assert path.stat().st_mtime_ns == before  # up to date: read, not recomputed
    e16 = run.embed_pins(dim=16)
    assert (run_dir / "embeddings_16.npy").exists() and e16.shape == (N_PINS, 16)
    torch.testing.assert_close(e16, truncate_embedding(emb, 16), atol=1e-5, rtol=0)
    # a newer checkpoint makes the file stale
    old = (run_dir / "checkpoint.pt").stat().st_mtime_ns - 10**10   # older than the checkpoint
    os.utime(path, ns=(old, old))
    torch.testing.assert_close(run.embed_pins(), emb, atol=1e-6, rtol=0)
    assert path.stat().st_mtime_ns > old                                # recomputed
    with pytest.raises(InferenceInputError, match="embedding width 65 is not in 1..64"):
        run.embed_pins(dim=65)


def test_embed_new_reproduces_graph_pins_from_raw_fields_and_every_image_form(run, tmp_path):
    from PIL import Image

    emb = run.embed_pins()
    table = run.graph.features("pin").table
    images = run.graph.features("pin").tensors["image"]
    (tmp_path / "p4.png").write_bytes(_png(images[4]))
    forms = [images[0],                                   # uint8 tensor [3, H, W]
             images[1].permute(1, 2, 0).numpy(),          # HWC array
             Image.fromarray(images[2].permute(1, 2, 0).numpy()),  # PIL
             _png(images[3]),                             # encoded bytes
             str(tmp_path / "p4.png")]                    # a path
    df = table.iloc[:5][FIELDS + ["style"]].assign(image=forms, pin_id=["n0", "n1", "n2", "n3", "n4"])
    new = run.embed_new(df)
    assert new.shape == (5, 64)
    torch.testing.assert_close(new, emb[:5], atol=1e-5, rtol=0)
    as_dicts = run.embed_new(df.to_dict("records"))
    torch.testing.assert_close(as_dicts, new, atol=1e-6, rtol=0)
    torch.testing.assert_close(run.embed_new(df.to_dict("records")[0], dim=16), truncate_embedding(new[:1], 16),
                               atol=1e-6, rtol=0)


def test_embed_new_accepts_any_subset_of_modalities(run):
    pins = [{"title": "rust linen dress"},                             # text only
            {"text": "rust linen dress"},                              # the "text" alias of the first text field
            {"brand": "Never Seen Before", "price": 42.0},             # metadata only, unseen brand
            {"image": torch.full((3, 64, 48), 200, dtype=torch.uint8)},  # image only, other size (resized)
            {"title": "", "category": "bag", "image": None}]           # empty text counts as absent
    x = run.new_pin_inputs(pins)
    assert x.present.tolist() == [[False, True, False], [False, True, False], [False, False, True],
                                  [True, False, False], [False, False, True]]
    assert x.images.shape == (5, 3, 32, 32) and int(x.images[3].float().mean()) == 200
    schema = run.schema
    brand_col = list(schema.categorical).index("brand")
    unseen = int(schema.encode_values("brand", ["Never Seen Before"])[0])
    assert x.categorical[2, brand_col] == unseen > len(schema.categorical["brand"])  # a hash bucket, as in training
    assert x.categorical[0].tolist() == [0] * len(schema.categorical) and bool(x.numeric_missing[0].all())
    emb = run.embed_new(pins)
    torch.testing.assert_close(emb[0], emb[1], atol=0, rtol=0)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(5), atol=1e-5, rtol=0)


def test_new_pin_errors_name_the_problem(run, tmp_path):
    with pytest.raises(NoContentError, match=r"new pin\(s\) \[1\] have nothing the model can use"):
        run.embed_new([{"title": "ok"}, {"title": "   ", "description": ""}])
    with pytest.raises(NoContentError, match="no new pins"):
        run.embed_new([])
    missing = str(tmp_path / "nope.jpg")
    with pytest.raises(ImageReadError, match=f"new pin 0, column 'image': cannot read image '{missing}'"):
        run.embed_new([{"image": missing}])
    with pytest.raises(ImageReadError, match="new pin 1, column 'image': cannot read image bytes"):
        run.embed_new([{"title": "a"}, {"image": b"not an image"}])
    with pytest.raises(ImageReadError, match="uint8"):
        run.embed_new([{"image": np.zeros((3, 8, 8), dtype=np.float32)}])
    with pytest.raises(SchemaError, match=r"column\(s\) \['colour'\] that this model does not read"):
        run.embed_new([{"title": "a", "colour": "red"}])
    with pytest.raises(MalformedValueError, match="numeric column 'price' of new pin 0 holds 'cheap'"):
        run.embed_new([{"title": "a", "price": "cheap"}])
    with pytest.raises(SchemaError, match="new pin 1 gives both 'text' and 'title'"):
        run.embed_new([{"text": "a"}, {"title": "a", "text": "b"}])


def test_image_tensor_forms():
    rgba = np.zeros((5, 7, 4), dtype=np.uint8)
    rgba[..., 0] = 9
    t = image_tensor(rgba)
    assert t.shape == (3, 5, 7) and int(t[0].max()) == 9 and int(t[1:].max()) == 0
    assert image_tensor(np.full((6, 6), 3, dtype=np.uint8)).shape == (3, 6, 6)
    assert image_tensor(None) is None and image_tensor(float("nan")) is None and image_tensor(" ") is None
    assert image_tensor(torch.zeros(3, 10, 10, dtype=torch.uint8), 4).shape == (3, 4, 4)


def test_load_run_errors(run_dir, tmp_path):
    with pytest.raises(RunNotFoundError, match="no run directory"):
        load_run(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunNotFoundError, match="has no checkpoint.pt"):
        load_run(tmp_path / "empty")
    # a checkpoint without its config, and no config.yaml
    ck = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    bare = tmp_path / "bare"
    bare.mkdir()
    torch.save({k: v for k, v in ck.items() if k != "config"}, bare / "checkpoint.pt")
    with pytest.raises(RunFormatError, match="no config.yaml and its checkpoint holds no config"):
        load_run(bare)
    # config.yaml edited to another model
    edited = tmp_path / "edited"
    shutil.copytree(run_dir, edited, ignore=shutil.ignore_patterns("feature_cache", "*.npy*", "index"))
    cfg = TrainConfig.load(edited / "config.yaml")
    cfg.model.embed_dim, cfg.model.matryoshka_dims = 32, (16, 32)
    cfg.save(edited / "config.yaml")
    with pytest.raises(CheckpointMismatchError, match="describes another model"):
        load_run(edited)
    # the wrong graph
    with pytest.raises(RunFormatError, match="trained on 300 pins but the graph has 200"):
        load_run(run_dir, graph=synthetic_lookbooks(200, N_BOARDS, seed=0))
    assert json.loads(ck["config"])["data"]["n_pins"] == N_PINS


def test_lexical_idf_is_fitted_on_the_graph_and_restored_from_the_checkpoint(tmp_path):
    from boardgraph.evaluation.demo import demo_config
    from boardgraph.training.trainer import Trainer

    cfg = demo_config("neighbor", tmp_path, n_pins=120, n_boards=12, steps=2, seed=0)
    cfg.model.text_kwargs = {"lexical_dim": 16}
    cfg.run.batch_size, cfg.run.progress, cfg.run.tensorboard = 64, "off", False
    trainer = Trainer(cfg)
    trainer.fit()
    idf = trainer.model.encoder.towers["text"].lexical_idf.clone()
    # fitted on the graph's texts: the character tokens of the titles get different, positive weights
    assert idf.max() > idf[idf > 0].min() > 0 and idf[trainer.model.encoder.towers["text"].tokenizer.cls_token_id] == 0
    # a graph whose texts differ would refit another IDF; load_run keeps the checkpoint's
    other = synthetic_lookbooks(120, 12, seed=5)
    with pytest.raises(GraphChangedError, match="the graph changed"):
        load_run(cfg.run.out_dir, graph=other)
    run = load_run(cfg.run.out_dir, graph=other, allow_other_graph=True)
    torch.testing.assert_close(run.encoder.towers["text"].lexical_idf, idf, rtol=0, atol=0)
    assert run.encoder.towers["text"].pooled_dim == 32 + 16
    emb = run.embed_pins()
    assert emb.shape == (120, 64) and torch.isfinite(emb).all()


# -- issue 15: a changed graph, concurrent writers ------------------------------------------------------
def _retitled(n_pins: int = N_PINS) -> PinBoardGraph:
    """The run's graph rebuilt with one pin's title edited: same pin and board counts."""
    g = synthetic_lookbooks(n_pins, N_BOARDS, seed=0)
    g.features("pin").table.loc[7, "title"] = "rebuilt with another title"
    return g


def test_a_rebuilt_graph_is_refused_by_load_run(run_dir):
    ck = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert ck["graph_fingerprint"] == graph_fingerprint(synthetic_lookbooks(N_PINS, N_BOARDS, seed=0))
    with pytest.raises(GraphChangedError, match=(
            f"the graph changed since the run {run_dir} was trained: .*re-train the run on this graph")):
        load_run(run_dir, graph=_retitled())
    g = synthetic_lookbooks(N_PINS, N_BOARDS, seed=0)     # same counts, ids in another order
    g._ids["pin"] = type(g.id_map("pin"))(g.ids("pin")[::-1].copy(), "pin")
    with pytest.raises(GraphChangedError):
        load_run(run_dir, graph=g)


def test_embeddings_of_another_graph_are_not_reused(run, run_dir, tmp_path):
    path = tmp_path / "emb.npy"
    emb = run.embed_pins(path=path).clone()
    fp = graph_fingerprint(run.graph)
    assert json.loads((tmp_path / "emb.npy.meta.json").read_text())["graph"] == fp
    other = load_run(run_dir, graph=_retitled(), allow_other_graph=True)
    got = other.embed_pins(path=path)                     # recomputed for the graph it is given
    with torch.no_grad():
        want = other.encoder(other.builder(other.graph.features("pin"), torch.tensor([6, 7, 8]))).embedding
    torch.testing.assert_close(got[[6, 7, 8]], want, atol=1e-5, rtol=0)
    assert not torch.allclose(got[7], emb[7], atol=1e-4)
    from boardgraph.inference.embed import load_embeddings

    with pytest.raises(GraphChangedError, match="re-embed"):
        load_embeddings(path, graph_fingerprint=fp)


def test_embed_overwrite_while_another_process_embeds_is_refused(run, run_dir, tmp_path):
    import subprocess
    import sys
    import textwrap

    run.embed_pins()
    path = run.embeddings_path()
    before = path.stat().st_mtime_ns
    hold = textwrap.dedent("""
        import sys
        from boardgraph.training.checkpoint import run_lock
        with run_lock(sys.argv[1], "embedding embeddings.npy"):
            print("locked", flush=True)
            sys.stdin.readline()
    """)
    holder = subprocess.Popen([sys.executable, "-c", hold, str(run_dir)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=(f"{run_dir} is in use by another boardgraph process "
                                                  f"\\(pid {holder.pid}: embedding embeddings.npy\\)")):
            run.embed_pins(overwrite=True)
    finally:
        holder.communicate("\n", timeout=60)
    assert path.stat().st_mtime_ns == before                # the other process's file was left alone
    run.embed_pins(overwrite=True)
    assert path.stat().st_mtime_ns > before
