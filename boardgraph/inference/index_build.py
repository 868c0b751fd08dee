"""Making the FAISS index of each kind, and building an IVF-PQ index from embedding shards.

:func:`new_faiss_index` makes an empty index of a kind with its settings resolved (IVF cells,
PQ sub-quantizers); :class:`~boardgraph.inference.index.EmbeddingIndex` trains and fills it.
:func:`build_ivfpq_from_shards` is the out-of-core path: it trains the cells and codebooks on a
sample of the shards, then adds them shard by shard, so only the codes (``pq_m`` bytes a vector,
plus 8 for the id FAISS keeps in its lists) and the external ids are held in memory; the exact
vectors used for re-ranking are copied, shard by shard, into ``vectors.npy`` and read from disk.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from boardgraph._io import check_output, temp_sibling
from boardgraph.graph.stream.spill import NpyWriter
from boardgraph.inference.index_io import INDEX_ARTEFACT, save_index
from boardgraph.inference.index_types import EmptyIndexError, IndexConfig, normalise
from boardgraph.inference.shards import EmbeddingShards

__all__ = ["new_faiss_index", "pq_subquantizers", "resolve_ivf", "code_bytes", "build_ivfpq_from_shards",
           "index_from_shards", "exact_top_k", "recall_on_shards"]


def pq_subquantizers(d: int, m: int) -> int:
    """The largest divisor of the dimension ``d`` that is at most ``m`` (FAISS needs ``d % m == 0``)."""
    return max(k for k in range(1, max(1, min(m, d)) + 1) if d % k == 0)


def resolve_ivf(cfg: IndexConfig, n: int, d: int, n_train: int | None = None) -> IndexConfig:
    """``cfg`` with ``nlist`` (``clamp(4 sqrt(n), 1, n_train / 39)``), ``nprobe`` (``nlist / 4``)
    and, for ivfpq, ``pq_m`` resolved for ``n`` vectors of dimension ``d``, ``n_train`` (default
    ``n``) of them to train on."""
    nlist = cfg.nlist or int(min(max(1, 4 * math.sqrt(n)), max(1, (n_train or n) // 39)))
    nlist = max(1, min(nlist, n))
    out = {**asdict(cfg), "nlist": nlist, "nprobe": cfg.nprobe or max(1, nlist // 4)}
    if cfg.kind == "ivfpq":
        out["pq_m"] = pq_subquantizers(d, cfg.pq_m)
    return IndexConfig(**out)


def new_faiss_index(cfg: IndexConfig, d: int, n: int, n_train: int | None = None) -> tuple[faiss.Index, IndexConfig]:
    """An empty inner-product FAISS index of ``cfg.kind`` for ``n`` vectors of dimension ``d``
    (trained on ``n_train`` of them, default ``n``), and ``cfg`` with its settings resolved.

    PQ codes have 8 bits per sub-quantizer, fewer when there are under 39 x 256 training vectors.
    """
    if cfg.kind == "flat":
        return faiss.IndexFlatIP(d), cfg
    if cfg.kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = cfg.ef_construction
        index.hnsw.efSearch = cfg.ef_search
        return index, cfg
    cfg = resolve_ivf(cfg, n, d, n_train)
    quantizer = faiss.IndexFlatIP(d)
    if cfg.kind == "ivf":
        index = faiss.IndexIVFFlat(quantizer, d, cfg.nlist, faiss.METRIC_INNER_PRODUCT)
    else:
        # 8 bits per sub-quantizer, fewer when under 39 training vectors per centroid (FAISS' minimum)
        bits = max(1, min(8, int(math.log2(max(2, (n_train or n) // 39)))))
        index = faiss.IndexIVFPQ(quantizer, d, cfg.nlist, cfg.pq_m, bits, faiss.METRIC_INNER_PRODUCT)
    index.nprobe = cfg.nprobe
    return index, cfg


def code_bytes(index: faiss.Index) -> int:
    """Bytes of one vector's code in ``index`` (IVF-PQ: ``m * bits / 8``; the flat kinds: ``4 d``)."""
    pq = getattr(faiss.downcast_index(index), "pq", None)
    return int(pq.code_size) if pq is not None else 4 * int(index.d)


def build_ivfpq_from_shards(shards: Any, vectors_path: Path, config: IndexConfig, train_size: int = 100_000,
                            seed: int = 0, chunk: int = 65_536) -> tuple[faiss.Index, np.ndarray, IndexConfig]:
    """An IVF-PQ index over every vector of ``shards`` (an :class:`~boardgraph.inference.shards.EmbeddingShards`),
    never holding them all: trained on ``train_size`` sampled vectors, then filled shard by shard,
    ``chunk`` rows at a time, while the normalised vectors are written to ``vectors_path``.

    Returns:
        ``(index, ids [N], config)`` with the settings resolved.
    """
    n, d = len(shards), shards.dim
    cfg = IndexConfig(**{**asdict(config), "kind": "ivfpq"})
    sample = normalise(shards.sample(min(n, train_size), seed), "embeddings")
    index, cfg = new_faiss_index(cfg, d, n, n_train=len(sample))
    index.train(sample)
    del sample
    w = NpyWriter(vectors_path, np.float32, cols=d)
    ids = []
    try:
        for chunk_ids, vecs in shards.chunks(chunk):
            x = normalise(vecs, "embeddings")
            index.add(x)
            w.write(x)
            ids.append(chunk_ids)
        w.close()
    except BaseException:
        w.discard()
        raise
    return index, np.concatenate(ids) if ids else np.zeros(0, np.int64), cfg


def index_from_shards(shards: Any, path: str | Path, config: IndexConfig | None, train_size: int,
                      overwrite: bool) -> None:
    """Build an ivfpq index over the shard folder (or :class:`EmbeddingShards`) ``shards`` and save
    it at ``path``: see :meth:`EmbeddingIndex.from_shards <boardgraph.inference.index.EmbeddingIndex.from_shards>`."""
    check_output(path, INDEX_ARTEFACT, overwrite)
    shards = shards if isinstance(shards, EmbeddingShards) else EmbeddingShards.open(shards)
    if len(shards) == 0:
        raise EmptyIndexError("the shards hold 0 embeddings; embed the pins first")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(Path(path))
    try:
        index, ids, cfg = build_ivfpq_from_shards(shards, tmp, config or IndexConfig(kind="ivfpq"), train_size)
        save_index(path, index, ids, None, cfg, overwrite=overwrite, vectors=tmp)
    finally:
        tmp.unlink(missing_ok=True)


def exact_top_k(shards: Any, x: np.ndarray, k: int, chunk: int = 262_144) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` ``(scores, rows)`` ``[q, k]`` of the normalised queries ``x`` over every vector
    of ``shards``, read a chunk at a time (vectors normalised as the index's are)."""
    q = x.shape[0]
    best_s = np.full((q, k), -np.inf, np.float32)
    best_r = np.full((q, k), -1, np.int64)
    base = 0
    for _, vecs in shards.chunks(chunk):
        v = normalise(vecs, "embeddings")
        s = np.concatenate([best_s, x @ v.T], axis=1)
        r = np.concatenate([best_r, np.broadcast_to(base + np.arange(len(v)), (q, len(v)))], axis=1)
        top = np.argpartition(-s, min(k, s.shape[1] - 1), axis=1)[:, :k]
        best_s, best_r = np.take_along_axis(s, top, axis=1), np.take_along_axis(r, top, axis=1)
        base += len(v)
    order = np.argsort(-best_s, axis=1, kind="stable")
    return np.take_along_axis(best_s, order, axis=1), np.take_along_axis(best_r, order, axis=1)


def recall_on_shards(index: Any, shards: Any, k: int = 10, n_queries: int = 1000, seed: int = 0) -> dict[str, float]:
    """Recall@``k`` of ``index`` (an EmbeddingIndex over ``shards``) against exact search, with
    ``n_queries`` stored rows as queries, each excluding itself (the ``similar(pin)`` case). A
    returned row counts when its exact score reaches the k-th exact score (ties are not misses).

    Returns:
        ``{"recall", "queries", "index_queries_per_s", "exact_queries_per_s"}``.
    """
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(shards), size=min(n_queries, len(shards)), replace=False))
    x = normalise(shards.rows(rows), "queries")
    t = time.perf_counter()
    ex_s, ex_r = exact_top_k(shards, x, k + 1)
    exact_qps = len(rows) / max(time.perf_counter() - t, 1e-9)
    ex_s = np.where(ex_r == rows[:, None], -np.inf, ex_s)
    kth = -np.sort(-ex_s, axis=1)[:, k - 1]
    ids = index.ids
    t = time.perf_counter()
    res = index.search(x, k, exclude_ids=[[i] for i in ids[rows]])
    index_qps = len(rows) / max(time.perf_counter() - t, 1e-9)
    got = res.rows
    vecs = shards.rows(np.where(got >= 0, got, 0).ravel())
    vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    exact_scores = np.einsum("qd,qkd->qk", x, vecs.reshape(*got.shape, -1))
    ok = (got >= 0) & (exact_scores >= kth[:, None] - 1e-5)
    return {"recall": float(np.minimum(ok.sum(axis=1), k).mean() / k), "queries": int(len(rows)),
            "index_queries_per_s": index_qps, "exact_queries_per_s": exact_qps}
