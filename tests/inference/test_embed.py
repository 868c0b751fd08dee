"""embed.py: `.done` markers are checked against the rows they describe, a file computed with other
weights or on another graph is recomputed, the run folder is locked while a pass writes, and
nothing non-finite is written."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from boardgraph.training.checkpoint import GraphChangedError, RunLockedError, graph_fingerprint
from boardgraph.training.config import TrainConfig
from boardgraph.inference.embed import EmbeddingsFileError, NonFiniteEmbeddingError, embed_pins, load_embeddings

N = 300

#: A process that holds the run folder lock of ``argv[1]`` until a line arrives on stdin.
HOLD = textwrap.dedent("""
    import sys
    from boardgraph.training.checkpoint import run_lock
    with run_lock(sys.argv[1], "a test holder"):
        print("locked", flush=True)
        sys.stdin.readline()
""")


def tiny_config(out_dir) -> TrainConfig:
    cfg = TrainConfig()
    cfg.data.n_pins, cfg.data.n_boards = N, N // 10
    m = cfg.model
    m.fusion_dim, m.fusion_layers, m.fusion_heads, m.embed_dim, m.matryoshka_dims = 32, 1, 2, 32, (8, 16, 32)
    m.mate_heads, m.text_max_length = 2, 16
    cfg.objective.num_mates = 4
    cfg.run.batch_size, cfg.run.steps, cfg.run.progress, cfg.run.tensorboard = 64, 1, "off", False
    cfg.run.out_dir = str(out_dir)
    return cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from boardgraph.training.trainer import Trainer

    torch.set_num_threads(1)
    t = Trainer(tiny_config(tmp_path_factory.mktemp("embed") / "run"))
    t.fit()
    return t


def _embed(t, path, **kw):
    return embed_pins(t.model.encoder, N, path, cache=t.cache, batch_size=128, **kw)


def _live(t) -> torch.Tensor:
    from boardgraph.inference.embed import encode_pins

    t.model.encoder.eval()
    with torch.no_grad():
        out = encode_pins(t.model.encoder, torch.arange(N), cache=t.cache)
    t.model.encoder.train()
    return out


def test_a_marker_whose_rows_were_changed_is_recomputed(trained, tmp_path):
    path = _embed(trained, tmp_path / "emb.npy")
    want = load_embeddings(path).clone()
    arr = np.load(path, mmap_mode="r+")
    arr[128:256] = 0                        # e.g. a second writer zeroed them; chunk 1's marker stays
    arr.flush()
    del arr
    (tmp_path / "emb.npy.progress" / "2.done").write_text("")   # a marker that says nothing (old format)
    _embed(trained, path)
    torch.testing.assert_close(load_embeddings(path), want, atol=0, rtol=0)
    marker = json.loads((tmp_path / "emb.npy.progress" / "1.done").read_text())
    assert marker["rows"] == [128, 256] and len(marker["sha256"]) == 64


def test_other_weights_recompute_every_row(trained, tmp_path):
    path = _embed(trained, tmp_path / "emb.npy")
    before = load_embeddings(path).clone()
    enc = trained.model.encoder
    saved = {k: v.clone() for k, v in enc.state_dict().items()}
    try:
        with torch.no_grad():
            dict(enc.named_parameters())["head.0.weight"].add_(0.5)   # e.g. a later training step
        _embed(trained, path)                          # same path, same markers, new weights
        after = load_embeddings(path)
        assert not torch.allclose(after, before, atol=1e-3)
        torch.testing.assert_close(after, _live(trained), atol=1e-5, rtol=0)
    finally:
        enc.load_state_dict(saved)


def test_graph_fingerprint_is_recorded_and_checked_on_load(trained, tmp_path):
    fp = graph_fingerprint(trained.split.graph)
    path = _embed(trained, tmp_path / "emb.npy", graph_fingerprint=fp)
    meta = json.loads((tmp_path / "emb.npy.meta.json").read_text())
    assert meta["graph"] == fp and meta["complete"] is True and meta["shape"] == [N, 32]
    assert load_embeddings(path, graph_fingerprint=fp).shape == (N, 32)
    with pytest.raises(GraphChangedError, match="computed on another graph .* re-embed"):
        load_embeddings(path, graph_fingerprint="0" * 16)
    # the same file asked for another graph is recomputed, not reused
    _embed(trained, path, graph_fingerprint="1" * 16)
    assert json.loads((tmp_path / "emb.npy.meta.json").read_text())["graph"] == "1" * 16


def test_an_incomplete_file_is_not_loaded(trained, tmp_path):
    path = _embed(trained, tmp_path / "emb.npy")
    meta = tmp_path / "emb.npy.meta.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "complete": False}))
    with pytest.raises(EmbeddingsFileError, match=f"{path} is incomplete"):
        load_embeddings(path)


def test_a_second_process_cannot_embed_into_a_locked_folder(trained, tmp_path):
    path = _embed(trained, tmp_path / "emb.npy")
    want = load_embeddings(path).clone()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"pid {holder.pid}"):
            _embed(trained, path, overwrite=True)
    finally:
        holder.communicate("\n", timeout=60)
    torch.testing.assert_close(load_embeddings(path), want, atol=0, rtol=0)   # untouched


def test_non_finite_embeddings_are_refused(trained, tmp_path):
    class NaNEncoder(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.config = inner, inner.config

        def fuse(self, outputs, present):
            out = self.inner.fuse(outputs, present)
            out.embedding[3] = float("nan")
            return out

    with pytest.raises(NonFiniteEmbeddingError, match=r"pin\(s\) \[3\]"):
        embed_pins(NaNEncoder(trained.model.encoder), N, tmp_path / "emb.npy", cache=trained.cache, batch_size=128)
    assert not (tmp_path / "emb.npy.progress" / "0.done").exists()
