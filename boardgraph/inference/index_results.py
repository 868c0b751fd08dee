"""Shaping search results: dropping excluded rows, padding to k, re-ranking candidates exactly."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

__all__ = ["drop_excluded", "first_k", "rerank", "stored_vectors"]


def drop_excluded(scores: np.ndarray, rows: np.ndarray, excl: list[np.ndarray], n: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``scores``/``rows`` ``[q, f]`` without each query's excluded rows ``excl[i]``: those entries
    become ``-inf`` / ``-1`` and move to the end, the others keeping their order; ``n`` = rows."""
    q = rows.shape[0]
    codes = np.concatenate([i * n + e for i, e in enumerate(excl)])
    hit = np.isin(np.arange(q)[:, None] * n + rows, codes) & (rows >= 0)
    # Stable sort moves dropped entries to the end while keeping the score order.
    order = np.argsort(hit, axis=1, kind="stable")
    rows = np.take_along_axis(np.where(hit, -1, rows), order, axis=1)
    scores = np.take_along_axis(np.where(hit, -np.inf, scores), order, axis=1)
    return scores, rows


def first_k(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` columns of ``scores``/``rows`` ``[q, f]``, padded with ``-inf`` / ``-1``
    when ``f < k`` (fewer rows in the index than ``k``)."""
    rows, scores = rows[:, :k], scores[:, :k]
    if rows.shape[1] < k:
        pad = k - rows.shape[1]
        rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    return scores, rows


def rerank(x: np.ndarray, rows: np.ndarray, vectors: Callable[[np.ndarray], np.ndarray],
           k: int) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` of candidate ``rows`` ``[q, f]`` (``-1``: none) by exact inner product with the
    normalised queries ``x`` ``[q, D]``; ``vectors(rows)`` returns the rows' stored vectors ``[r, D]``.

    Returns:
        ``(scores float32 [q, k'], rows int64 [q, k'])``, ``k' = min(k, f)``, best first.
    """
    valid = rows >= 0
    vecs = vectors(np.where(valid, rows, 0).ravel()).reshape(*rows.shape, x.shape[1])
    scores = np.where(valid, np.einsum("qd,qfd->qf", x, vecs), -np.inf).astype(np.float32)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    out_rows = np.where(np.take_along_axis(valid, top, axis=1), np.take_along_axis(rows, top, axis=1), -1)
    return np.take_along_axis(scores, top, axis=1), out_rows


def stored_vectors(index: Any, vectors: np.ndarray | None, rows: np.ndarray) -> np.ndarray:
    """float32 ``[r, D]`` vectors of ``rows``: from ``vectors`` (an ivfpq index's exact copy, read in
    sorted order from its memory map) when given, else reconstructed by the FAISS ``index``."""
    rows = np.asarray(rows, np.int64)
    if vectors is None:
        return index.reconstruct_batch(rows)
    order = np.argsort(rows)
    out = np.empty((rows.size, vectors.shape[1]), np.float32)
    out[order] = vectors[rows[order]]
    return out
