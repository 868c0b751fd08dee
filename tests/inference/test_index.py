"""EmbeddingIndex: exact search against brute force, filters, exclusions, save/load, ANN recall."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from boardgraph.graph.errors import DuplicateIdError, UnknownIdError

pytest.importorskip("faiss", reason="faiss-cpu is a dependency; skip only where it is absent (a lent GPU image)")

from boardgraph.inference.index import (DimensionMismatchError, EmbeddingIndex, EmptyIndexError,
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


# ------------------------------------------------------------------------------------------ tune
def _clustered(n: int, d: int, seed: int = 0, spread: float = 0.6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((50, d))
    return (centers[rng.integers(0, 50, n)] + spread * rng.standard_normal((n, d))).astype(np.float32)


def _recall(index: EmbeddingIndex, x: np.ndarray, q: np.ndarray, k: int) -> float:
    """Recall@k of ``index`` against brute force, by rows (the data here has no ties)."""
    exact = brute_force(torch.from_numpy(x), torch.from_numpy(q), k)[1]
    got = index.search(q, k).rows
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(got, exact)]))


@pytest.mark.parametrize("kind,config", [("hnsw", IndexConfig(hnsw_m=8, ef_construction=16)),
                                         ("ivf", IndexConfig(nlist=64))])
def test_tune_picks_the_smallest_value_reaching_the_target(kind, config, tmp_path):
    x, q = _clustered(4000, 32), _clustered(200, 32, seed=1)
    index = EmbeddingIndex.build(x, np.arange(4000), kind=kind, config=config)
    res = index.tune(target_recall=0.9, k=10, queries=q)
    param = "ef_search" if kind == "hnsw" else "nprobe"
    assert res.param == param and res.reached and res.k == 10 and res.n_queries == 200
    assert res.queries == "given"
    assert getattr(index.config, param) == res.value == res.sweep["value"].iloc[-1]
    # the value set on the index gives the recall reported, measured independently (by rows: one
    # near-tie within float32 rounding among the 2,000 results may count differently)
    assert _recall(index, x, q, 10) == pytest.approx(res.recall, abs=1e-3)
    assert res.recall >= 0.9 and (res.sweep["recall"].iloc[:-1] < 0.9).all()
    assert res.sweep["value"].is_monotonic_increasing and len(res.sweep) >= 2
    assert res.sweep["speedup"].gt(0).all() and res.speedup == res.sweep["speedup"].iloc[-1]
    # the setting is saved with the index
    index.save(tmp_path / "i")
    assert getattr(EmbeddingIndex.load(tmp_path / "i").config, param) == res.value
    assert _recall(EmbeddingIndex.load(tmp_path / "i"), x, q, 10) == pytest.approx(res.recall, abs=1e-3)


def test_tune_on_stored_rows_excludes_the_query_itself():
    x = _clustered(3000, 16)
    index = EmbeddingIndex.build(x, np.arange(3000), kind="ivf", config=IndexConfig(nlist=32))
    res = index.tune(target_recall=1.0, k=5, n_queries=100, holdout=False)
    # probing every cell is exhaustive, so recall 1.0 is reached at the latest at nprobe = nlist
    assert res.reached and res.recall == 1.0 and res.value <= 32 and res.n_queries == 100
    assert res.queries == "stored rows"
    held = index.tune(target_recall=1.0, k=5, n_queries=100)  # IVF: a copy of the trained cells
    assert held.queries == "held-out rows" and held.reached and held.recall == 1.0 and held.value <= 32
    assert len(index) == 3000 and index.config.nprobe == held.value
    # a row finding itself is not counted: at nprobe=1 the sampled rows always find themselves
    # (their own cell is probed first), yet recall of their other neighbours is lower
    assert res.sweep["recall"].iloc[0] < 1.0


def test_tune_on_held_out_rows_predicts_the_recall_of_new_queries():
    # HNSW finds a stored row through its own node, whose links are its neighbours, so tuning on
    # stored rows picks a value too small for new vectors; held-out rows query like new vectors
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5000, 32)).astype(np.float32)
    fresh = rng.standard_normal((500, 32)).astype(np.float32)
    index = EmbeddingIndex.build(x, np.arange(5000), kind="hnsw")
    before = index.search(fresh[:20], 10)
    stored = index.tune(target_recall=0.95, n_queries=300, holdout=False)
    recall_stored = _recall(index, x, fresh, 10)
    held = index.tune(target_recall=0.95, n_queries=300)
    recall_held = _recall(index, x, fresh, 10)
    assert held.queries == "held-out rows" and held.reached and held.n_queries == 300
    assert stored.value < held.value == index.config.ef_search
    assert recall_stored < 0.88 < 0.92 < recall_held  # measured: 0.76 and 0.95
    # the catalogue itself is untouched by the temporary index
    assert len(index) == 5000 and index._index.ntotal == 5000
    index.config = IndexConfig(**{**index.config.__dict__, "ef_search": 128})
    after = index.search(fresh[:20], 10)
    np.testing.assert_array_equal(after.rows, before.rows)


def test_tune_counts_tied_duplicates_as_hits():
    # every vector twice: rows tie exactly, and any of the tied rows is a correct answer
    x = _clustered(1000, 16)
    x2 = np.concatenate([x, x])
    index = EmbeddingIndex.build(x2, np.arange(2000), kind="ivf", config=IndexConfig(nlist=16))
    res = index.tune(target_recall=1.0, k=3, queries=_clustered(50, 16, seed=2))
    assert res.reached and res.recall == 1.0


def test_tune_warns_and_keeps_the_best_when_the_target_is_out_of_reach():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5000, 64)).astype(np.float32)  # no structure: hard for a small graph
    index = EmbeddingIndex.build(x, np.arange(5000), kind="hnsw", config=IndexConfig(hnsw_m=4, ef_construction=8))
    with pytest.warns(UserWarning, match=r"no ef_search up to 16 reaches Recall@10 0.999.*hnsw_m"):
        res = index.tune(target_recall=0.999, max_value=16, n_queries=50, holdout=False)
    assert not res.reached and res.sweep["value"].tolist() == [10, 14, 16]
    assert res.value == res.sweep.loc[res.sweep["recall"].idxmax(), "value"] == index.config.ef_search
    assert res.recall == res.sweep["recall"].max() < 0.999


def test_tune_flat_and_errors(data):
    emb, queries, ids, _ = data
    flat = EmbeddingIndex.build(emb, ids)
    res = flat.tune()
    assert res.param == "" and res.value is None and res.recall == 1.0 and res.reached and res.sweep.empty
    hnsw = EmbeddingIndex.build(emb, ids, kind="hnsw")
    for bad in (dict(target_recall=0), dict(target_recall=1.5), dict(k=0), dict(n_queries=0),
                dict(max_value=0)):
        with pytest.raises(IndexInputError, match=next(iter(bad))):
            hnsw.tune(**bad)
    with pytest.raises(DimensionMismatchError, match="dimension 3"):
        hnsw.tune(queries=np.ones((2, 3)))


# -- saved artefacts: what a save may replace, and corrupt saves -------------------------------------
def _small_index() -> EmbeddingIndex:
    return EmbeddingIndex.build(np.eye(4, dtype=np.float32), ids=["a", "b", "c", "d"],
                                metadata=pd.DataFrame({"category": list("xyxy")}))


def test_save_refuses_what_is_not_a_saved_index(tmp_path):
    from boardgraph.errors import OutputExistsError

    index = _small_index()
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("x")
    (tmp_path / "file").write_text("notes")
    with pytest.raises(OutputExistsError, match=r"precious is not a saved boardgraph\.index.*--overwrite"):
        index.save(precious, overwrite=True)
    with pytest.raises(OutputExistsError, match=r"file is a file"):
        index.save(tmp_path / "file")
    from boardgraph.graph import from_collections

    from_collections(pd.DataFrame({"board_id": ["b"], "pin_id": ["p"]}))[0].save(tmp_path / "graph")
    with pytest.raises(OutputExistsError, match=r"graph holds a saved boardgraph\.graph, not a boardgraph\.index"):
        index.save(tmp_path / "graph")
    assert (precious / "thesis.txt").read_text() == "x" and (tmp_path / "file").read_text() == "notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "graph", "precious"]


def test_save_replaces_a_saved_index_unless_told_not_to(tmp_path):
    from boardgraph.errors import OutputExistsError

    index = _small_index()
    index.save(tmp_path / "i", attachments={"lexical.json": "{}"})
    meta = json.loads((tmp_path / "i" / "config.json").read_text())
    assert meta["artefact"] == "boardgraph.index"
    assert meta["contents"] == ["config.json", "ids.parquet", "index.faiss", "lexical.json", "metadata.parquet"]
    with pytest.raises(OutputExistsError, match=r"holds a saved boardgraph\.index.*overwrite=True"):
        index.save(tmp_path / "i", overwrite=False)
    # an index saved before the artefact field existed is recognised by its files
    del meta["artefact"], meta["contents"]
    (tmp_path / "i" / "config.json").write_text(json.dumps(meta))
    EmbeddingIndex.build(np.eye(3, dtype=np.float32), ids=["x", "y", "z"]).save(tmp_path / "i")
    assert EmbeddingIndex.load(tmp_path / "i").ids.tolist() == ["x", "y", "z"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i"]


@pytest.mark.parametrize("how,name", [
    ("config not json", "config.json"), ("config not an object", "config.json"),
    ("config without keys", "config.json"), ("config bad field", "config.json"),
    ("truncated index.faiss", "index.faiss"), ("truncated ids.parquet", "ids.parquet"),
    ("truncated metadata.parquet", "metadata.parquet"), ("ids without id column", "ids.parquet"),
])
def test_load_corrupt_save_names_the_file_and_the_fix(tmp_path, how, name):
    _small_index().save(tmp_path / "i")
    f = tmp_path / "i" / name
    if how == "config not json":
        f.write_text('{"format_version": 1, "n"')
    elif how == "config not an object":
        f.write_text('"flat"')
    elif how == "config without keys":
        f.write_text(json.dumps({"format_version": 1}))
    elif how == "config bad field":
        meta = json.loads(f.read_text())
        meta["config"]["colour"] = "red"
        f.write_text(json.dumps(meta))
    elif how == "ids without id column":
        pd.DataFrame({"pin": ["a", "b", "c", "d"]}).to_parquet(f, index=False)
    else:
        f.write_bytes(f.read_bytes()[:40])
    with pytest.raises(IndexFormatError) as e:
        EmbeddingIndex.load(tmp_path / "i")
    msg = str(e.value)
    assert str(tmp_path / "i" / name) in msg and "save it again" in msg, msg
