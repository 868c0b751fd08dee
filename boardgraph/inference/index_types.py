"""What :mod:`boardgraph.inference.index` and its helpers share: errors, configuration, results.

* the errors: :class:`IndexInputError` and its subclasses (bad kind, k, ids, dimension, filter
  column, saved folder);
* :class:`IndexConfig` (how the FAISS index is built and searched) and :data:`KINDS`;
* :class:`SearchResult` (``[Q, k]`` ids, scores and rows);
* :func:`to_numpy_2d` and :func:`normalise`, the checks every embedding and query goes through.

:mod:`~boardgraph.inference.index` (the index), :mod:`~boardgraph.inference.index_io` (save/load)
and :mod:`~boardgraph.inference.index_tuning` (the recall sweep) import this module; it imports none
of them. Everything here is re-exported by :mod:`boardgraph.inference.index`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from boardgraph.graph.errors import BoardgraphError

__all__ = [
    "IndexInputError",
    "DimensionMismatchError",
    "EmptyIndexError",
    "UnknownFilterColumnError",
    "IndexFormatError",
    "KINDS",
    "IndexConfig",
    "SearchResult",
    "to_numpy_2d",
    "normalise",
]

#: The index kinds :class:`IndexConfig` accepts.
KINDS = ("flat", "hnsw", "ivf", "ivfpq")


class IndexInputError(BoardgraphError, ValueError):
    """Bad input to :class:`EmbeddingIndex`: unknown kind, bad k, misaligned ids or metadata."""


class DimensionMismatchError(IndexInputError):
    """Vectors whose dimension differs from the index's."""


class EmptyIndexError(IndexInputError):
    """An index over zero embeddings was requested."""


class UnknownFilterColumnError(IndexInputError, KeyError):
    """A filter names a column the metadata does not have (or there is no metadata)."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class IndexFormatError(IndexInputError):
    """A saved index directory is incomplete, inconsistent or from an unknown format version."""


@dataclass(frozen=True)
class IndexConfig:
    """How the FAISS index is built and searched.

    Attributes:
        kind: ``"flat"``, ``"hnsw"``, ``"ivf"`` or ``"ivfpq"``.
        hnsw_m: HNSW neighbours per node.
        ef_construction: HNSW build-time beam width.
        ef_search: HNSW search-time beam width (raised to ``k`` when smaller).
        nlist: IVF cells; ``None`` picks ``clamp(4 * sqrt(N), 1, N // 39)``.
        nprobe: IVF cells probed per query; ``None`` picks ``max(1, nlist // 4)``.
        exact_fallback: filtered searches whose allowed rows are at most this many are answered
            exactly (approximate kinds only; flat is always exact).
        pq_m: IVF-PQ code bytes per vector (sub-quantizers of 8 bits; the largest divisor of the
            dimension up to this is used).
        rerank: IVF-PQ fetches ``rerank x k`` candidates by their codes and re-ranks them by the
            exact vectors (kept on disk beside the index, ``vectors.npy``); 1: no re-ranking.
    """

    kind: str = "flat"
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    nlist: int | None = None
    nprobe: int | None = None
    exact_fallback: int = 10_000
    pq_m: int = 32
    rerank: int = 10


@dataclass(frozen=True)
class SearchResult:
    """Top-k results of a search, best first.

    Attributes:
        ids: ``[Q, k]`` object ndarray of external ids; ``None`` where fewer than ``k`` rows
            qualified.
        scores: ``[Q, k]`` float32 cosine similarities; ``-inf`` at padding.
        rows: ``[Q, k]`` int64 row numbers in the index; ``-1`` at padding.
    """

    ids: np.ndarray
    scores: np.ndarray
    rows: np.ndarray


def to_numpy_2d(x: Any, name: str) -> np.ndarray:
    """``x`` (numpy, torch on any device, nested lists) as a C-contiguous float32 ``[n, D]`` array.

    Raises:
        IndexInputError: ``x`` is not 2-D; the message names it as ``name``.
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != 2:
        raise IndexInputError(f"{name} must be a 2-D float array [n, D], got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def normalise(x: np.ndarray, name: str) -> np.ndarray:
    """Rows of float32 ``x [n, D]`` scaled to unit L2 norm (a new C-contiguous float32 array).

    Raises:
        IndexInputError: a row is zero or not finite; the message names up to five of them.
    """
    bad = ~np.isfinite(x).all(axis=1)
    norms = np.linalg.norm(x, axis=1)
    bad |= norms == 0
    if bad.any():
        rows = np.flatnonzero(bad)
        raise IndexInputError(
            f"{name} rows {rows[:5].tolist()}{' ...' if len(rows) > 5 else ''} are zero or not "
            f"finite and cannot be L2-normalised; drop them or fix the encoder output")
    return np.ascontiguousarray(x / norms[:, None], dtype=np.float32)
