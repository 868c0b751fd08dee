"""Embedding shards (one per rank, plus a manifest) and the IVF-PQ index built from them."""
from __future__ import annotations

import numpy as np
import pytest

from boardgraph.inference.index import EmbeddingIndex, IndexConfig
from boardgraph.inference.index_build import exact_top_k, recall_on_shards
from boardgraph.inference.shards import EmbeddingShards, ShardsFormatError, shard_rows, write_manifest, write_shard


def clustered(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(40, d))
    return (centers[rng.integers(0, 40, n)] + 0.4 * rng.normal(size=(n, d))).astype(np.float32)


def write_all(folder, x: np.ndarray, world: int) -> np.ndarray:
    ids = np.array([f"p{i}" for i in range(len(x))], dtype=object)
    for r in range(world):
        lo, hi = shard_rows(len(x), r, world)
        write_shard(folder, r, world, ids[lo:hi], np.array_split(x[lo:hi], 3), len(x), {"weights": "w1"})
    write_manifest(folder, world)
    return ids


def test_shards_round_trip(tmp_path):
    x = clustered(1000)
    ids = write_all(tmp_path / "s", x, 3)
    sh = EmbeddingShards.open(tmp_path / "s")
    assert len(sh) == 1000 and sh.dim == 16 and sh.manifest["weights"] == "w1"
    parts = list(sh)
    np.testing.assert_array_equal(np.concatenate([v for _, v in parts]), x)
    assert np.concatenate([i for i, _ in parts]).tolist() == ids.tolist()
    rows = np.array([999, 0, 500, 333, 334])
    np.testing.assert_array_equal(sh.rows(rows), x[rows])
    assert sh.sample(50).shape == (50, 16) and sh.sample(5000).shape == (1000, 16)
    # exact search over the shards, chunk by chunk, is exact search
    q = x[:7] / np.linalg.norm(x[:7], axis=1, keepdims=True)
    s, r = exact_top_k(sh, q, 5, chunk=97)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    want = np.argsort(-(q @ xn.T), axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(r, want)


def test_unfinished_or_mixed_shards_are_refused(tmp_path):
    x = clustered(100)
    ids = np.array([f"p{i}" for i in range(100)], dtype=object)
    with pytest.raises(ValueError, match="holds 34 rows, the batches gave 30"):
        write_shard(tmp_path / "a", 0, 3, ids[:34], [x[:30]], 100)
    write_shard(tmp_path / "b", 0, 2, ids[:50], [x[:50]], 100, {"weights": "w1"})
    with pytest.raises(ShardsFormatError, match="shard 1 of 2 .* is not finished"):
        write_manifest(tmp_path / "b", 2)
    write_shard(tmp_path / "b", 1, 2, ids[50:], [x[50:]], 100, {"weights": "OTHER"})
    with pytest.raises(ShardsFormatError, match="written by another pass"):
        write_manifest(tmp_path / "b", 2)
    with pytest.raises(ShardsFormatError, match="not a folder of embedding shards"):
        EmbeddingShards.open(tmp_path / "b")
    (tmp_path / "b" / "shard-00001.npy").unlink()
    write_shard(tmp_path / "b", 1, 2, ids[50:], [x[50:]], 100, {"weights": "w1"})
    write_manifest(tmp_path / "b", 2)
    np.save(tmp_path / "b" / "shard-00001.npy", x[50:90])
    with pytest.raises(ShardsFormatError, match="has shape \\(40, 16\\), the manifest says \\(50, 16\\)"):
        EmbeddingShards.open(tmp_path / "b")


def test_ivfpq_from_shards_reranks_exactly_and_saves(tmp_path):
    x = clustered(12000, d=32)
    write_all(tmp_path / "s", x, 4)
    sh = EmbeddingShards.open(tmp_path / "s")
    index = EmbeddingIndex.from_shards(sh, tmp_path / "idx", IndexConfig(kind="ivfpq", pq_m=8, nlist=16, nprobe=16),
                                       train_size=10_000)  # 39 x 256: 8-bit codes
    assert index.kind == "ivfpq" and len(index) == 12000 and index.code_bytes == 8
    assert isinstance(index._vectors, np.memmap)  # the exact vectors stay on disk
    recall = {}
    for rerank in (1, 10, 100):  # candidates re-ranked by the exact vectors: k, 10k, 100k
        index.config = IndexConfig(**{**index.config.__dict__, "rerank": rerank})
        recall[rerank] = recall_on_shards(index, sh, k=10, n_queries=200)["recall"]
    # 8-byte codes of 32-d vectors in tight clusters rank poorly alone; re-ranking recovers
    assert recall[1] < 0.5 and recall[10] > 0.8 and recall[100] > 0.99, recall
    # the in-memory build gives the same kind, and a save/load round trip keeps its answers
    mem = EmbeddingIndex.build(x, [f"p{i}" for i in range(12000)], config=IndexConfig(kind="ivfpq", pq_m=8, nlist=16))
    res = mem.search(x[:20], 5, exclude_ids=[[f"p{i}"] for i in range(20)])
    mem.save(tmp_path / "mem")
    back = EmbeddingIndex.load(tmp_path / "mem")
    res2 = back.search(x[:20], 5, exclude_ids=[[f"p{i}"] for i in range(20)])
    assert (res.ids == res2.ids).all() and back.config == mem.config
    assert all(f"p{i}" not in res.ids[i] for i in range(20))


def test_tune_an_ivfpq_index_through_its_reranked_search(tmp_path):
    x = clustered(12000, d=32)
    index = EmbeddingIndex.build(x, np.arange(12000), config=IndexConfig(kind="ivfpq", pq_m=8, nlist=64, rerank=10))
    res = index.tune(0.9, n_queries=200)
    assert res.param == "nprobe" and res.queries == "stored rows" and res.reached and res.recall >= 0.9
    assert index.config.nprobe == res.value and list(res.sweep["value"])[-1] == res.value
    assert res.sweep["recall"].is_monotonic_increasing or res.sweep["recall"].iloc[-1] >= 0.9
    # the chosen nprobe holds on other stored rows, measured independently over the exact vectors
    write_all(tmp_path / "s", x, 2)
    sh = EmbeddingShards.open(tmp_path / "s")
    assert recall_on_shards(index, sh, k=10, n_queries=300, seed=5)["recall"] >= 0.85
    index.save(tmp_path / "i")
    assert EmbeddingIndex.load(tmp_path / "i").config.nprobe == res.value
    # given queries, and an unreachable target keeps the best value found and says so
    with pytest.warns(UserWarning, match="no nprobe up to 64 reaches"):
        res2 = index.tune(1.0, queries=x[:50] + 0.3)  # 8-byte codes: some neighbour is always past 100 candidates
    assert res2.queries == "given" and res2.n_queries == 50 and res2.value == res2.sweep.loc[
        res2.sweep["recall"].idxmax(), "value"]
