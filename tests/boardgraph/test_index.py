"""EmbeddingIndex: exact search against brute force, filters, exclusions, save/load, ANN recall."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from boardgraph.graph.errors import DuplicateIdError, UnknownIdError

pytest.importorskip("faiss", reason="faiss-cpu is a dependency; skip only where it is absent (a lent GPU image)")

from boardgraph.index import (DimensionMismatchError, EmbeddingIndex, EmptyIndexError,
                              IndexConfig, IndexFormatError, IndexInputError,
                              UnknownFilterColumnError)

N, D = 300, 16
CATS = ["shoes", "bags", "hats"]


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(N, D, generator=g)
    queries = torch.randn(7, D, generator=g)
    ids = np.array([f"p{i}" for i in range(N)])
    meta = pd.DataFrame({"category": [CATS[i % 3] for i in range(N)],
                         "price": np.arange(N, dtype=np.float64)})
    return emb, queries, ids, meta


def brute_force(emb: torch.Tensor, queries: torch.Tensor, k: int, rows=None):
    """Cosine top-k with torch over ``rows`` (all rows when None): (scores, rows)."""
    e = torch.nn.functional.normalize(emb, dim=1)
    q = torch.nn.functional.normalize(queries, dim=1)
    rows = torch.arange(len(emb)) if rows is None else torch.as_tensor(rows)
    s, i = (q @ e[rows].T).topk(k, dim=1)
    return s.numpy(), rows[i].numpy()


def test_flat_equals_brute_force(data):
    emb, queries, ids, meta = data
    index = EmbeddingIndex.build(emb, ids, kind="flat", metadata=meta)
    res = index.search(queries, k=10)
    want_s, want_r = brute_force(emb, queries, 10)
    np.testing.assert_array_equal(res.rows, want_r)
    np.testing.assert_allclose(res.scores, want_s, atol=1e-5)
    assert res.ids.shape == (7, 10) and res.ids[0, 0] == f"p{want_r[0, 0]}"
    assert len(index) == N and index.dim == D and index.kind == "flat"


def test_queries_are_normalised(data):
    emb, queries, ids, _ = data
    index = EmbeddingIndex.build(emb, ids)
    a = index.search(queries, 5)
    b = index.search(queries * 37.0, 5)
    np.testing.assert_array_equal(a.rows, b.rows)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)
    assert (a.scores <= 1.0 + 1e-6).all()


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_filter_equals_brute_force_over_subset(data, kind):
    emb, queries, ids, meta = data
    index = EmbeddingIndex.build(emb, ids, kind=kind, metadata=meta)
    res = index.search(queries, 10, filter={"category": "bags"})
    assert set(meta.loc[res.rows.ravel(), "category"]) == {"bags"}
    subset = np.flatnonzero(meta["category"] == "bags")
    _, want_r = brute_force(emb, queries, 10, subset)
    # 100 allowed rows <= exact_fallback: exact for every kind
    np.testing.assert_array_equal(res.rows, want_r)
    two = index.search(queries, 10, filter={"category": ["bags", "hats"], "price": [1.0, 2.0, 5.0]})
    # rows 1 (bags), 2 (hats), 5 (hats) qualify: 3 results then padding
    assert sorted(two.rows[0, :3].tolist()) == [1, 2, 5]
    assert (two.rows[:, 3:] == -1).all() and (two.ids[:, 3:] == None).all()  # noqa: E711
    assert np.isneginf(two.scores[:, 3:]).all()


def test_exclude_ids_global_and_per_query(data):
    emb, queries, ids, _ = data
    index = EmbeddingIndex.build(emb, ids)
    full = index.search(queries, 6)
    top = full.ids[:, 0]
    res = index.search(queries, 5, exclude_ids=[top[0]])
    assert top[0] not in res.ids[0]
    np.testing.assert_array_equal(res.rows[0], full.rows[0, 1:6])
    per = index.search(queries, 5, exclude_ids=[[t] for t in top])
    np.testing.assert_array_equal(per.rows, full.rows[:, 1:6])
    with pytest.raises(UnknownIdError, match="nope"):
        index.search(queries, 5, exclude_ids=["nope"])


def test_k_larger_than_index_pads():
    emb = np.eye(3, dtype=np.float32)
    index = EmbeddingIndex.build(emb, ids=[10, 20, 30])
    res = index.search(np.array([[1.0, 0.5, 0.0]], dtype=np.float32), k=5)
    assert res.rows.tolist() == [[0, 1, 2, -1, -1]]
    assert res.ids.tolist() == [[10, 20, 30, None, None]]
    np.testing.assert_allclose(res.scores[0, :3], [2 / 5 ** 0.5, 1 / 5 ** 0.5, 0.0], atol=1e-6)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_save_load_round_trip(data, kind, tmp_path):
    emb, queries, ids, meta = data
    index = EmbeddingIndex.build(emb, ids, kind=kind, metadata=meta)
    index.save(tmp_path / "idx")
    index.save(tmp_path / "idx")  # overwriting an existing save works
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]  # no temp dirs left
    loaded = EmbeddingIndex.load(tmp_path / "idx")
    assert loaded.config == index.config
    np.testing.assert_array_equal(loaded.ids, ids)
    pd.testing.assert_frame_equal(loaded.metadata, meta)
    for kw in ({}, {"filter": {"category": "hats"}}, {"exclude_ids": ["p3"]}):
        a, b = index.search(queries, 10, **kw), loaded.search(queries, 10, **kw)
        np.testing.assert_array_equal(a.rows, b.rows)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.scores, b.scores)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        EmbeddingIndex.load(tmp_path / "missing")
    index = EmbeddingIndex.build(np.eye(4, dtype=np.float32), ids=["a", "b", "c", "d"])
    index.save(tmp_path / "i")
    (tmp_path / "i" / "ids.parquet").unlink()
    with pytest.raises(IndexFormatError, match="lacks ids.parquet"):
        EmbeddingIndex.load(tmp_path / "i")


@pytest.mark.parametrize("kind,config", [("hnsw", None),
                                         ("ivf", IndexConfig(nlist=32, nprobe=24))])
def test_ann_recall_vs_flat(kind, config):
    # Random vectors are the hardest case for IVF (no cluster structure), hence nprobe=24 of 32.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 32)).astype(np.float32)
    q = rng.standard_normal((100, 32)).astype(np.float32)
    ids = np.arange(2000)
    exact = EmbeddingIndex.build(x, ids, kind="flat").search(q, 10).rows
    approx = EmbeddingIndex.build(x, ids, kind=kind, config=config).search(q, 10).rows
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(approx, exact)])
    assert recall >= 0.9


def test_errors_name_the_problem(data):
    emb, queries, ids, meta = data
    index = EmbeddingIndex.build(emb, ids, metadata=meta)
    with pytest.raises(DimensionMismatchError, match="dimension 8 but the index holds 16"):
        index.search(np.ones((2, 8), dtype=np.float32), 3)
    with pytest.raises(IndexInputError, match="k must be an int >= 1, got 0"):
        index.search(queries, 0)
    with pytest.raises(UnknownFilterColumnError, match="unknown filter column 'colour'.*category"):
        index.search(queries, 3, filter={"colour": "red"})
    with pytest.raises(UnknownFilterColumnError, match="no metadata"):
        EmbeddingIndex.build(emb, ids).search(queries, 3, filter={"category": "bags"})
    with pytest.raises(EmptyIndexError, match="0 embeddings"):
        EmbeddingIndex.build(np.zeros((0, D), dtype=np.float32), [])
    with pytest.raises(IndexInputError, match="unknown index kind 'lsh'"):
        EmbeddingIndex.build(emb, ids, kind="lsh")
    with pytest.raises(IndexInputError, match="ids has shape \\(2,\\) but embeddings has 300"):
        EmbeddingIndex.build(emb, ids[:2])
    with pytest.raises(IndexInputError, match="rows \\[1\\] are zero"):
        EmbeddingIndex.build(np.array([[1.0, 0.0], [0.0, 0.0]], dtype=np.float32), ["a", "b"])
    with pytest.raises(IndexInputError, match="metadata must be a DataFrame with 300 rows.*299"):
        EmbeddingIndex.build(emb, ids, metadata=meta.iloc[:299])
    assert EmbeddingIndex.build(emb, ids, config=IndexConfig(kind="hnsw")).kind == "hnsw"
    with pytest.raises(DuplicateIdError, match="'a'"):
        EmbeddingIndex.build(np.eye(2, dtype=np.float32), ["a", "a"])


@pytest.mark.parametrize("kind,config", [("hnsw", IndexConfig(exact_fallback=0)),
                                         ("ivf", IndexConfig(nlist=7, nprobe=5, exact_fallback=0))])
def test_filter_through_faiss_selector(data, kind, config):
    """With the exact fallback off, the IDSelector path still returns only allowed rows."""
    emb, queries, ids, meta = data
    index = EmbeddingIndex.build(emb, ids, kind=kind, metadata=meta, config=config)
    res = index.search(queries, 10, filter={"category": "shoes"})
    assert (res.rows >= 0).all()
    assert set(meta.loc[res.rows.ravel(), "category"]) == {"shoes"}
    _, want = brute_force(emb, queries, 10, np.flatnonzero(meta["category"] == "shoes"))
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(res.rows, want)])
    assert recall >= 0.8
    # 3 allowed rows: the approximate search comes back short and is redone exactly
    few = index.search(queries, 5, filter={"price": [7.0, 100.0, 250.0]})
    np.testing.assert_array_equal(np.sort(few.rows[:, :3], axis=1), [[7, 100, 250]] * 7)
    assert (few.rows[:, 3:] == -1).all()


def test_flat_filter_and_exclude_combined(data):
    emb, queries, ids, meta = data
    index = EmbeddingIndex.build(emb, ids, metadata=meta)
    subset = np.flatnonzero(meta["category"] == "hats")
    _, want = brute_force(emb, queries, 6, subset)
    res = index.search(queries, 5, filter={"category": "hats"},
                       exclude_ids=[[ids[w[0]]] for w in want])
    np.testing.assert_array_equal(res.rows, want[:, 1:])
