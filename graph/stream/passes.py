"""The passes of an out-of-core build over the spilled records (after :mod:`.scan`).

Records sit in :class:`~.spill.Buckets` by source code. Each pass reads them back a group of
codes at a time, at most ``capacity`` records in memory:

* :func:`distinct_counts`: distinct sources per destination (for the minimum group size);
* :func:`first_rows`: the first kept row of each source (its node order when it has no table);
* :func:`rebucket`: records keyed again by final source index, when that order is not the codes';
* :func:`write_out_csr`: the forward CSR, duplicates dropped (the first row kept), written in
  pieces, and each edge's ``(destination, source, edge id)`` spilled by destination;
* :func:`write_in_csr`: the reverse CSR from that spill, each destination's sources ascending.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import numpy as np
from scipy.sparse import _sparsetools as _st

from ..csr import dedup_csr
from .spill import Buckets, NpyWriter, _cut

__all__ = ["distinct_counts", "first_rows", "rebucket", "write_out_csr", "write_in_csr", "Dropped", "Smallest",
           "OutCsr", "monotone_map", "order_map"]

_NONE = np.iinfo(np.int64).max


def _idx(*ns: int) -> type:
    return np.int32 if max(ns) < 2**31 else np.int64


@dataclass
class Smallest:
    """The count of some rows and the ten smallest of their positions (report examples)."""

    n: int = 0
    rows: list[int] = field(default_factory=list)

    def add(self, rows: np.ndarray) -> None:
        self.n += int(rows.size)
        if rows.size:
            self.rows = sorted(set(self.rows) | set(np.sort(rows)[:10].tolist()))[:10]


@dataclass
class Dropped:
    """Rows dropped while writing: repeated pairs (``duplicate``) and rows of groups below the minimum (``small``)."""

    duplicate: Smallest = field(default_factory=Smallest)
    small: Smallest = field(default_factory=Smallest)


def _drop_small(recs: np.ndarray, keep_dst: np.ndarray, dropped: Dropped) -> np.ndarray:
    """``recs`` of kept destinations; the rows of the others are counted as ``dropped.small``."""
    small = ~keep_dst[recs["d"]]
    dropped.small.add(recs["row"][small].astype(np.int64))
    return recs[~small]


def distinct_counts(buckets: Buckets, capacity: int, n_dst: int) -> np.ndarray:
    """int64 ``[n_dst]``: the distinct source codes of each destination code."""
    out = np.zeros(n_dst, np.int64)
    for lo, recs in buckets.groups(capacity, delete=False):
        s = recs["s"].astype(np.int64) - lo
        n_loc = int(s.max()) + 1
        t = _idx(len(recs), n_loc, n_dst)
        _, ind, _ = dedup_csr(n_loc, n_dst, s.astype(t), recs["d"].astype(t), t)
        out += np.bincount(ind, minlength=n_dst)
    return out


def first_rows(buckets: Buckets, capacity: int, n_src: int, keep_dst: np.ndarray) -> np.ndarray:
    """int64 ``[n_src]``: the first row kept (its destination in ``keep_dst``) of each source code;
    int64 max for sources with none. Within a bucket records are in row order."""
    out = np.full(n_src, _NONE, np.int64)
    for _, recs in buckets.groups(capacity, delete=False):
        recs = recs[keep_dst[recs["d"]]]
        u, i = np.unique(recs["s"], return_index=True)
        out[u] = recs["row"][i]
    return out


def rebucket(buckets: Buckets, capacity: int, folder: Path, s_map: np.ndarray, keep_dst: np.ndarray,
             n_src: int, dropped: Dropped) -> Buckets:
    """The records of kept destinations, keyed by final source index ``s_map[s]``, in new buckets
    (the rows of the others counted as ``dropped.small``)."""
    starts = np.arange(0, n_src, max(1, -(-n_src // 256)), dtype=np.int64)
    out = Buckets(folder, buckets.dtype, "s", starts if len(starts) else np.zeros(1, np.int64), buckets.what)
    for _, recs in buckets.groups(capacity, delete=True):
        recs = _drop_small(recs, keep_dst, dropped)
        recs["s"] = s_map[recs["s"]]
        out.add(recs)
    out.close()
    return out


@dataclass
class OutCsr:
    """What :func:`write_out_csr` returns: out-degrees ``[n_src]``, the edge count and the spill by destination."""

    degree: np.ndarray
    num_edges: int
    by_dst: Buckets


def write_out_csr(buckets: Buckets, capacity: int, *, s_map: np.ndarray | None, d_map: np.ndarray | None,
                  keep_dst: np.ndarray | None, n_src: int, n_dst: int, dst_counts: np.ndarray,
                  out_indices: NpyWriter, attrs: dict[str, NpyWriter], folder: Path,
                  dropped: Dropped, dst_name: str = "node") -> OutCsr:
    """Write the forward CSR's indices and attributes, group by group in source order.

    Args:
        buckets: records keyed by source code; ``s_map`` maps codes to final indices (monotone;
            ``None``: the codes are final) and ``d_map`` destination codes (monotone; ``None``: the same).
        keep_dst: destinations kept (``None``: all); the others' rows are counted as ``dropped.small``.
        dst_counts: int64 ``[n_dst]`` an upper bound of each final destination's degree, to size
            the spill by destination.
        out_indices, attrs: writers of the forward indices and of each attribute, in edge order.
        dropped: repeated pairs are counted as ``dropped.duplicate``.
    """
    t = _idx(n_src, n_dst, buckets.total)
    rec = np.dtype([("d", t), ("s", t), ("eid", np.int64 if buckets.total >= 2**31 else np.int32)])
    starts = _cut(dst_counts, max(1, capacity // 2), 512) if n_dst else np.zeros(1, np.int64)
    by_dst = Buckets(folder, rec, "d", starts, dst_name)
    degree = np.zeros(n_src, np.int64)
    n_edges = 0
    for _, recs in buckets.groups(capacity, delete=True):
        if keep_dst is not None:
            recs = _drop_small(recs, keep_dst, dropped)
        if not len(recs):
            continue
        s = recs["s"] if s_map is None else s_map[recs["s"]]
        base = int(s.min())
        n_loc = int(s.max()) - base + 1
        d = recs["d"] if d_map is None else d_map[recs["d"]]
        ptr, ind, pos = dedup_csr(n_loc, n_dst, np.subtract(s, base, dtype=t), d.astype(t, copy=False), t)
        if len(pos) < len(recs):
            dup = np.ones(len(recs), bool)
            dup[pos] = False
            dropped.duplicate.add(recs["row"][dup].astype(np.int64))
        deg = np.diff(ptr)
        degree[base:base + n_loc] += deg
        out_indices.write(ind)
        for name, w in attrs.items():
            w.write(recs[name][pos])
        edges = np.empty(len(pos), rec)
        edges["d"], edges["s"] = ind, base + np.repeat(np.arange(n_loc), deg)
        edges["eid"] = n_edges + np.arange(len(pos))
        by_dst.add(edges)
        n_edges += len(pos)
    by_dst.close()
    return OutCsr(degree, n_edges, by_dst)


def write_in_csr(by_dst: Buckets, capacity: int, n_src: int, n_dst: int, in_indices: NpyWriter,
                 in_eid: NpyWriter) -> np.ndarray:
    """Write the reverse CSR's indices and edge ids from the spill by destination (records in edge
    order, so a stable counting sort by destination leaves each one's sources ascending); returns
    the in-degrees int64 ``[n_dst]``."""
    degree = np.zeros(n_dst, np.int64)
    for lo, recs in by_dst.groups(capacity, delete=True):
        d = recs["d"].astype(np.int64) - lo
        n_loc = int(d.max()) + 1
        t = _idx(len(recs), n_loc, n_src, int(recs["eid"].max()) + 1)
        ptr, ind, eid = np.empty(n_loc + 1, t), np.empty(len(recs), t), np.empty(len(recs), recs["eid"].dtype)
        _st.coo_tocsr(n_loc, n_src, len(recs), d.astype(t), recs["s"].astype(t), recs["eid"], ptr, ind, eid)
        degree[lo:lo + n_loc] += np.diff(ptr)
        in_indices.write(ind)
        in_eid.write(eid)
    return degree


def monotone_map(keep: np.ndarray) -> np.ndarray:
    """int64 ``[n]``: kept codes -> ``0, 1, ...`` in code order, the others -> -1."""
    out = np.cumsum(keep, dtype=np.int64) - 1
    out[~keep] = -1
    return out


def order_map(first: np.ndarray) -> tuple[np.ndarray, bool]:
    """Codes -> final index by first kept row (``first``, int64 max: no node), and whether that
    order is the codes' own (so buckets by code are already in final order)."""
    nodes = np.flatnonzero(first != _NONE)
    out = np.full(len(first), -1, np.int64)
    order = np.argsort(first[nodes], kind="stable")
    out[nodes[order]] = np.arange(len(nodes))
    return out, bool(np.all(np.diff(first[nodes]) > 0))

