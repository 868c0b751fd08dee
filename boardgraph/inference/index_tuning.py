"""Measuring an approximate index's recall and throughput to choose its search-time knob.

:func:`tune_index` is the work behind :meth:`EmbeddingIndex.tune` (whose docstring says which
queries to use and why). It reads the FAISS index and its :class:`IndexConfig` and changes neither;
the method sets the value chosen and calls :func:`warn_if_unreached`. Data flow::

    queries: given | held-out rows (temporary index over the rest) | stored rows   _choose_queries
      -> exact top-k over the same rows: k-th best score per query, queries/s      _exact_truth
      -> HNSW ef_search / IVF nprobe on a ladder ~sqrt(2) apart, stopping at the
         first value reaching the target: recall, queries/s, speedup per value     _sweep
      -> that value, else the best recall tried                                    _pick
      -> TuneResult

This module does not import :mod:`boardgraph.inference.index`.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, replace
from typing import Any

import faiss
import numpy as np
import pandas as pd
import torch

from boardgraph.inference.index_types import DimensionMismatchError, IndexConfig, IndexInputError, normalise, \
    to_numpy_2d

__all__ = ["TuneResult", "SWEEP_COLUMNS", "check_tune_args", "tune_index", "tune_reranked", "warn_if_unreached",
           "all_vectors", "same_kind_over"]

#: The columns of :attr:`TuneResult.sweep`.
SWEEP_COLUMNS = ["value", "recall", "queries_per_s", "speedup"]


@dataclass(frozen=True)
class TuneResult:
    """What :meth:`EmbeddingIndex.tune` measured and chose.

    Attributes:
        param: the knob tuned: ``"ef_search"`` (HNSW), ``"nprobe"`` (IVF) or ``""`` (flat: exact,
            nothing to tune; or an index of one row, nothing to measure).
        value: the value now set on the index (``None`` when ``param`` is ``""``).
        recall: Recall@k against exact search at ``value``, in [0, 1].
        speedup: queries/s at ``value`` over queries/s of exact search over the same vectors,
            both timed in this call on the same queries and threads.
        reached: whether ``recall >= target_recall``. When no value reaches it, ``value`` is the
            one with the best recall tried.
        target_recall: the target asked for.
        k: results per query the recall was measured at.
        n_queries: number of queries measured.
        queries: where they came from: ``"given"``, ``"held-out rows"`` or ``"stored rows"``
            (see :meth:`EmbeddingIndex.tune`).
        sweep: one row per value tried, in order: ``value``, ``recall``, ``queries_per_s``,
            ``speedup``.
    """

    param: str
    value: int | None
    recall: float
    speedup: float
    reached: bool
    target_recall: float
    k: int
    n_queries: int
    queries: str
    sweep: pd.DataFrame


@dataclass(frozen=True)
class _TuneQueries:
    """The queries of one tune call and the index they search.

    Attributes:
        x: ``[Q, D]`` float32 L2-normalised queries.
        source: ``"given"``, ``"held-out rows"`` or ``"stored rows"``.
        target: the FAISS index the sweep searches: the tuned one, or (held-out rows) a temporary
            one of the same kind over the other rows.
        n_rows: how many rows a query may return (stored rows: ``N - 1``, itself excluded).
        self_rows: ``[Q]`` int64 row of each query in the tuned index (stored rows), else ``None``.
        rest: ``[N - Q, D]`` float32 vectors of the other rows (held-out rows), else ``None``.
    """

    x: np.ndarray
    source: str
    target: faiss.Index
    n_rows: int
    self_rows: np.ndarray | None = None
    rest: np.ndarray | None = None


@dataclass(frozen=True)
class _GroundTruth:
    """Exact search's answer to the queries, to score approximate results against.

    Attributes:
        own: ``[Q]`` int64 row each query may not return (its own; ``-2`` when none).
        kth: ``[Q]`` float32 the k-th best exact score among the rows a query may return.
        k: results per query.
        queries_per_s: exact search's throughput on these queries.
    """

    own: np.ndarray
    kth: np.ndarray
    k: int
    queries_per_s: float

    def recall(self, scores: np.ndarray, rows: np.ndarray) -> float:
        """Recall@k of ``[Q, fetch]`` results: a row counts when its score reaches the k-th exact
        score (so tied duplicates are not misses), at most ``k`` per query."""
        ok = (rows >= 0) & (rows != self.own[:, None]) & (scores >= self.kth[:, None] - 1e-5)
        return float(np.minimum(ok.sum(axis=1), self.k).mean() / self.k)


def _ladder(lo: int, hi: int) -> list[int]:
    """Increasing ints from ``lo`` to ``hi`` (both included), about sqrt(2) apart."""
    out, v = [], float(max(1, lo))
    while int(v) < hi:
        if not out or int(v) > out[-1]:
            out.append(int(v))
        v *= math.sqrt(2)
    out.append(int(hi))
    return out


def all_vectors(index: faiss.Index) -> np.ndarray:
    """``[N, D]`` float32 copy of the vectors stored in ``index`` (normalised when it is ours)."""
    n = int(index.ntotal)
    out = np.empty((n, int(index.d)), dtype=np.float32)
    for start in range(0, n, 65_536):
        stop = min(start + 65_536, n)
        out[start:stop] = index.reconstruct_n(start, stop - start)
    return out


def same_kind_over(index: faiss.Index, config: IndexConfig, x: np.ndarray) -> faiss.Index:
    """A FAISS index of ``config``'s kind (hnsw or ivf) and settings over ``x [n, D]`` float32;
    IVF reuses the trained cells of ``index``."""
    if config.kind == "hnsw":
        out = faiss.IndexHNSWFlat(int(index.d), config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        out.hnsw.efConstruction = config.ef_construction
    else:
        out = faiss.clone_index(index)
        out.reset()
    out.add(x)
    return out


def check_tune_args(target_recall: float, k: int, queries: Any, n_queries: int, max_value: int | None) -> None:
    """Raise :class:`IndexInputError` for the bad arguments :meth:`EmbeddingIndex.tune` lists."""
    if not 0 < target_recall <= 1:
        raise IndexInputError(f"target_recall must be in (0, 1], got {target_recall!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise IndexInputError(f"k must be an int >= 1, got {k!r}")
    if max_value is not None and max_value < 1:
        raise IndexInputError(f"max_value must be >= 1, got {max_value!r}")
    if queries is None and n_queries < 1:
        raise IndexInputError(f"n_queries must be >= 1, got {n_queries!r}")


def _choose_queries(index: faiss.Index, config: IndexConfig, queries: np.ndarray | torch.Tensor | None,
                    n_queries: int, holdout: bool, seed: int) -> _TuneQueries:
    """The given ``queries``, else ``n_queries`` rows sampled with ``seed``: held out of a
    temporary index (``holdout``, approximate kinds) or searched for in ``index`` itself."""
    n, dim = int(index.ntotal), int(index.d)
    if queries is not None:
        x = to_numpy_2d(queries, "queries")
        if x.shape[1] != dim:
            raise DimensionMismatchError(f"queries have dimension {x.shape[1]}, the index {dim}")
        return _TuneQueries(normalise(x, "queries"), "given", index, n)
    rng = np.random.default_rng(seed)
    if holdout and config.kind != "flat":
        sample = rng.choice(n, size=min(n_queries, n // 2), replace=False)
        vecs = all_vectors(index)
        keep = np.ones(n, dtype=bool)
        keep[sample] = False
        x, rest = vecs[sample], vecs[keep]  # rest: the other rows, for both temporary indexes
        del vecs
        return _TuneQueries(x, "held-out rows", same_kind_over(index, config, rest), rest.shape[0], rest=rest)
    self_rows = np.sort(rng.choice(n, size=min(n_queries, n), replace=False))
    x = index.reconstruct_batch(self_rows.astype(np.int64))
    return _TuneQueries(x, "stored rows", index, n - 1, self_rows=self_rows)


def _exact_truth(index: faiss.Index, kind: str, tq: _TuneQueries, k: int, fetch: int) -> _GroundTruth:
    """Exact top-``fetch`` of the queries over the rows ``tq.target`` holds, timed."""
    if tq.target is index and kind == "hnsw":
        exact: faiss.Index = faiss.downcast_index(index.storage)  # shares the vectors
    else:
        exact = faiss.IndexFlatIP(int(index.d))
        exact.add(all_vectors(index) if tq.target is index else tq.rest)
    t = time.perf_counter()
    ex_scores, ex_rows = exact.search(tq.x, fetch)
    exact_qps = tq.x.shape[0] / max(time.perf_counter() - t, 1e-9)
    own = np.full(tq.x.shape[0], -2, dtype=np.int64) if tq.self_rows is None else tq.self_rows
    # the k-th best score among the rows a query may return (itself excluded)
    ex_scores = np.where(ex_rows == own[:, None], -np.inf, ex_scores)
    kth = -np.sort(-ex_scores, axis=1)[:, k - 1]
    return _GroundTruth(own, kth, k, exact_qps)


def _knob_ladder(index: faiss.Index, kind: str, k: int, max_value: int | None) -> tuple[str, list[int]]:
    """The knob of ``kind`` and the values to try: ef_search from ``k``, nprobe from 1."""
    if kind == "hnsw":
        return "ef_search", _ladder(k, max(k, max_value or 4096))
    nlist = int(index.nlist)
    return "nprobe", _ladder(1, min(nlist, max_value or nlist))


def _sweep(tq: _TuneQueries, truth: _GroundTruth, fetch: int, param: str, values: list[int],
           target_recall: float) -> pd.DataFrame:
    """Search with each value in turn until one reaches ``target_recall``; one row per value."""
    sweep_rows = []
    for v in values:
        params: Any = faiss.SearchParametersHNSW(efSearch=v) if param == "ef_search" \
            else faiss.SearchParametersIVF(nprobe=v)
        t = time.perf_counter()
        scores, rows = tq.target.search(tq.x, fetch, params=params)
        qps = tq.x.shape[0] / max(time.perf_counter() - t, 1e-9)
        sweep_rows.append({"value": v, "recall": truth.recall(scores, rows), "queries_per_s": qps,
                           "speedup": qps / truth.queries_per_s})
        if sweep_rows[-1]["recall"] >= target_recall:
            break
    return pd.DataFrame(sweep_rows, columns=SWEEP_COLUMNS)


def _pick(sweep: pd.DataFrame, target_recall: float) -> tuple[pd.Series, bool]:
    """``(row, reached)``: the last row when it reaches the target, else the best-recall row."""
    reached = bool(sweep["recall"].iloc[-1] >= target_recall)
    best = sweep.iloc[-1] if reached else sweep.loc[sweep["recall"].idxmax()]
    return best, reached


def tune_index(index: faiss.Index, config: IndexConfig, target_recall: float = 0.95, k: int = 10,
               queries: np.ndarray | torch.Tensor | None = None, n_queries: int = 500,
               holdout: bool = True, max_value: int | None = None, seed: int = 0) -> TuneResult:
    """Measure the knob of ``index`` (built with ``config``) and choose a value; sets nothing.

    Args and Raises are those of :meth:`EmbeddingIndex.tune`; ``index`` holds ``N`` L2-normalised
    float32 vectors of dimension ``D`` and ``queries`` is ``[Q, D]``.

    Returns:
        :class:`TuneResult`: the smallest value on the ladder reaching ``target_recall`` (else the
        best-recall one) and the sweep; ``param == ""`` when there is nothing to tune.
    """
    check_tune_args(target_recall, k, queries, n_queries, max_value)
    tq = _choose_queries(index, config, queries, n_queries, holdout, seed)
    k = int(min(k, tq.n_rows))
    n_q = tq.x.shape[0]
    if config.kind == "flat" or k < 1 or n_q == 0:  # exact, or nothing to measure
        return TuneResult("", None, 1.0, 1.0, True, target_recall, k, n_q, tq.source,
                          pd.DataFrame(columns=SWEEP_COLUMNS))
    fetch = k + 1 if tq.self_rows is not None else k
    truth = _exact_truth(index, config.kind, tq, k, fetch)
    param, values = _knob_ladder(index, config.kind, k, max_value)
    sweep = _sweep(tq, truth, fetch, param, values, target_recall)
    best, reached = _pick(sweep, target_recall)
    return TuneResult(param, int(best["value"]), float(best["recall"]), float(best["speedup"]), reached,
                      target_recall, k, n_q, tq.source, sweep)


def warn_if_unreached(result: TuneResult, stacklevel: int = 2) -> None:
    """A ``UserWarning`` saying what to change when ``result`` did not reach its target.

    ``stacklevel`` is counted from the caller, as for :func:`warnings.warn` called there.
    """
    if result.reached or not result.param:
        return
    # Not reached: the sweep tried every value on the ladder, so its last row is the largest.
    largest = result.sweep["value"].iloc[-1]
    fix = ("rebuild with a larger hnsw_m / ef_construction, raise max_value, or use kind='flat'"
           if result.param == "ef_search" else "rebuild with fewer nlist cells or use kind='flat'")
    warnings.warn(f"no {result.param} up to {largest} reaches Recall@{result.k} {result.target_recall} on "
                  f"{result.queries} (best {result.recall:.3f} at {result.param}={result.value}, now set); {fix}",
                  stacklevel=stacklevel + 1)


def tune_reranked(index: Any, target_recall: float = 0.95, k: int = 10, queries: np.ndarray | torch.Tensor | None = None,
                  n_queries: int = 500, max_value: int | None = None, seed: int = 0) -> TuneResult:
    """:meth:`EmbeddingIndex.tune` for an ivfpq index (duck-typed: ``search``, ``config``, ``ids``
    and its exact vectors ``_vectors``): ``nprobe`` on a ladder from 1 to ``nlist``, each value
    measured by the index's own re-ranked search against exact search over its stored vectors.

    Queries are ``queries``, else ``n_queries`` stored rows that may not return themselves (a
    held-out copy would mean a second index: stored rows are the ``similar(pin)`` case, optimistic
    for new vectors). Sets nothing; the caller sets the chosen value.
    """
    check_tune_args(target_recall, k, queries, n_queries, max_value)
    vectors, n = index._vectors, len(index)
    if queries is not None:
        x = to_numpy_2d(queries, "queries")
        if x.shape[1] != index.dim:
            raise DimensionMismatchError(f"queries have dimension {x.shape[1]}, the index {index.dim}")
        x, own, source = normalise(x, "queries"), np.full(x.shape[0], -2, np.int64), "given"
    else:
        own = np.sort(np.random.default_rng(seed).choice(n, size=min(n_queries, n), replace=False))
        x, source = np.asarray(vectors[own], dtype=np.float32), "stored rows"
    k = int(min(k, n - (source == "stored rows")))
    if k < 1:
        return TuneResult("", None, 1.0, 1.0, True, target_recall, k, x.shape[0], source,
                          pd.DataFrame(columns=SWEEP_COLUMNS))
    t = time.perf_counter()
    best = np.full((x.shape[0], k + 1), -np.inf, np.float32)
    for start in range(0, n, 262_144):  # exact top k + 1 (a query's own row may be among them)
        s = x @ np.asarray(vectors[start:start + 262_144], dtype=np.float32).T
        s[own[:, None] == np.arange(start, start + s.shape[1])[None, :]] = -np.inf
        best = -np.partition(-np.concatenate([best, s], axis=1), k, axis=1)[:, :k + 1]
    best = -np.sort(-best, axis=1)
    truth = _GroundTruth(own, best[:, k - 1], k, x.shape[0] / max(time.perf_counter() - t, 1e-9))
    exclude = [[i] for i in index.ids[own]] if source == "stored rows" else None
    old, rows = index.config, []
    try:
        for v in _ladder(1, min(index.config.nlist, max_value or index.config.nlist)):
            index.config = replace(old, nprobe=v)
            t = time.perf_counter()
            res = index.search(x, k, exclude_ids=exclude)
            qps = x.shape[0] / max(time.perf_counter() - t, 1e-9)
            rows.append({"value": v, "recall": truth.recall(res.scores, res.rows), "queries_per_s": qps,
                         "speedup": qps / truth.queries_per_s})
            if rows[-1]["recall"] >= target_recall:
                break
    finally:
        index.config = old
    sweep = pd.DataFrame(rows, columns=SWEEP_COLUMNS)
    pick, reached = _pick(sweep, target_recall)
    return TuneResult("nprobe", int(pick["value"]), float(pick["recall"]), float(pick["speedup"]), reached,
                      target_recall, k, x.shape[0], source, sweep)
