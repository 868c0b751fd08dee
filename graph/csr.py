"""Compressed sparse row topology for one relation, stored in both directions.

A :class:`Relation` holds the edges of one canonical edge type ``(src, rel, dst)``:

* ``out_indptr`` int64 ``[num_src + 1]`` and ``out_indices`` ``[E]`` (dst index per edge), rows
  sorted by ``(src, dst)``. An edge's **edge id** (eid) is its position in this order.
* ``in_indptr`` int64 ``[num_dst + 1]``, ``in_indices`` ``[E]`` (src index per edge) and ``in_eid``
  ``[E]`` (the forward eid of each reverse entry), rows sorted by ``(dst, src)``.
* ``attrs``: per-edge attributes (weight, timestamp, ...), each ``[E]`` in eid order.

Index tensors are int32 while the counts fit (num nodes and E below 2**31) and int64 beyond, so
the stored topology costs about ``3 * 4`` bytes per edge plus the two indptr arrays.
Everything here is vectorised torch and runs on whatever device the tensors live on.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import _sparsetools as _st

import torch
from torch import Tensor

__all__ = ["Relation", "index_dtype", "build_relation", "cumsum0", "padded_rows", "dedup_csr"]

_INT32_MAX = 2**31 - 1


def index_dtype(n: int) -> torch.dtype:
    """Smallest index dtype that can hold values ``0..n`` (int32 up to 2**31 - 1, else int64)."""
    return torch.int32 if n <= _INT32_MAX else torch.int64


def cumsum0(counts: Tensor) -> Tensor:
    """Exclusive prefix sum with a leading zero: ``[n]`` counts -> int64 ``[n + 1]`` offsets."""
    out = torch.zeros(counts.numel() + 1, dtype=torch.int64, device=counts.device)
    torch.cumsum(counts, 0, out=out[1:])
    return out


@dataclass
class Relation:
    """Both CSR directions of one relation plus per-edge attributes (see the module docstring)."""

    num_src: int
    num_dst: int
    out_indptr: Tensor
    out_indices: Tensor
    in_indptr: Tensor
    in_indices: Tensor
    in_eid: Tensor
    attrs: dict[str, Tensor] = field(default_factory=dict)

    @property
    def num_edges(self) -> int:
        return int(self.out_indices.numel())

    @property
    def device(self) -> torch.device:
        return self.out_indptr.device

    def tensors(self) -> dict[str, Tensor]:
        """All stored tensors by name (attributes prefixed ``attr.``), for io and ``.to()``."""
        out = {"out_indptr": self.out_indptr, "out_indices": self.out_indices,
               "in_indptr": self.in_indptr, "in_indices": self.in_indices, "in_eid": self.in_eid}
        out.update({f"attr.{k}": v for k, v in self.attrs.items()})
        return out

    @classmethod
    def from_tensors(cls, num_src: int, num_dst: int, tensors: dict[str, Tensor]) -> "Relation":
        attrs = {k[5:]: v for k, v in tensors.items() if k.startswith("attr.")}
        return cls(num_src, num_dst, tensors["out_indptr"], tensors["out_indices"],
                   tensors["in_indptr"], tensors["in_indices"], tensors["in_eid"], attrs)

    def apply(self, fn) -> "Relation":
        """A new relation with ``fn`` applied to every tensor (device moves, pinning)."""
        return Relation.from_tensors(self.num_src, self.num_dst,
                                     {k: fn(v) for k, v in self.tensors().items()})

    def nbytes(self) -> int:
        """Resident bytes of the topology (indptrs, indices, reverse eid map), attributes excluded."""
        return sum(t.numel() * t.element_size() for k, t in self.tensors().items()
                   if not k.startswith("attr."))

    def coo(self) -> tuple[Tensor, Tensor]:
        """``(src, dst)`` int64 ``[E]`` in eid order."""
        src = torch.repeat_interleave(
            torch.arange(self.num_src, device=self.device),
            self.out_indptr[1:] - self.out_indptr[:-1], output_size=self.num_edges)
        return src, self.out_indices.long()

    def edge_keys(self) -> Tensor:
        """int64 ``[E]`` keys ``src * num_dst + dst``, ascending (the eid order)."""
        src, dst = self.coo()
        return src * self.num_dst + dst

    def find_edges(self, src: Tensor, dst: Tensor) -> Tensor:
        """Edge ids of the pairs ``(src[i], dst[i])``, ``-1`` where no such edge exists. int64 ``[n]``."""
        keys = self.edge_keys()
        q = src.long().to(keys.device) * self.num_dst + dst.long().to(keys.device)
        pos = torch.searchsorted(keys, q).clamp_(max=max(keys.numel() - 1, 0))
        if keys.numel() == 0:
            return torch.full_like(q, -1)
        return torch.where(keys[pos] == q, pos, torch.full_like(pos, -1))

    def select(self, keep: Tensor) -> "Relation":
        """A new relation with only the edges where the bool mask ``keep [E]`` is true.

        Vectorised filtering, no re-sort: both directions stay sorted, eids are renumbered.
        """
        keep = keep.to(self.device)
        new_eid = torch.cumsum(keep, 0) - 1  # old eid -> new eid where kept
        src, _ = self.coo()
        out_counts = torch.bincount(src[keep], minlength=self.num_src)
        in_keep = keep[self.in_eid.long()]
        dst_of_in = torch.repeat_interleave(
            torch.arange(self.num_dst, device=self.device),
            self.in_indptr[1:] - self.in_indptr[:-1], output_size=self.num_edges)
        in_counts = torch.bincount(dst_of_in[in_keep], minlength=self.num_dst)
        e_dtype = index_dtype(int(keep.sum()))
        return Relation(
            self.num_src, self.num_dst, cumsum0(out_counts), self.out_indices[keep],
            cumsum0(in_counts), self.in_indices[in_keep],
            new_eid[self.in_eid.long()[in_keep]].to(e_dtype),
            {k: v[keep] for k, v in self.attrs.items()})


def _counting_csr(n_rows: int, n_cols: int, rows: np.ndarray, cols: np.ndarray, idx_t,
                  sort_rows: bool) -> tuple:
    """CSR of (rows, cols) by scipy's C++ counting sort (O(E + N), stable); data = input position.

    With ``sort_rows`` columns are then sorted within each row (ties in any order).
    """
    n = rows.size
    indptr = np.empty(n_rows + 1, idx_t)
    indices = np.empty(n, idx_t)
    pos = np.empty(n, idx_t)
    _st.coo_tocsr(n_rows, n_cols, n, rows, cols, np.arange(n, dtype=idx_t), indptr, indices, pos)
    if sort_rows:
        # Rows are independent and sparsetools releases the GIL: sort the two halves concurrently
        # (each call sees its rows' absolute offsets into the shared arrays).
        half = n_rows // 2
        with ThreadPoolExecutor(max_workers=1) as ex:
            fut = ex.submit(_st.csr_sort_indices, n_rows - half, indptr[half:], indices, pos)
            _st.csr_sort_indices(half, indptr[:half + 1], indices, pos)
            fut.result()
    return indptr, indices, pos


def _first_of_runs(indptr: np.ndarray, indices: np.ndarray) -> np.ndarray | None:
    """Mask keeping the first of each run of equal columns within a row; None when no duplicates."""
    same = indices[1:] == indices[:-1]
    if not same.any():
        return None
    row_start = np.zeros(indices.size, dtype=bool)
    row_start[indptr[:-1][indptr[:-1] < indices.size]] = True
    keep = np.ones(indices.size, dtype=bool)
    keep[1:] = ~same | row_start[1:]
    return None if keep.all() else keep


def dedup_csr(n_rows: int, n_cols: int, rows: np.ndarray, cols: np.ndarray,
              idx_t: type = np.int32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR of the pairs ``(rows[i], cols[i])`` with each row's columns ascending and repeated pairs
    dropped (the first input position of each is kept). Counting sort, O(n + n_rows) plus a sort
    of each row's few columns.

    Args:
        n_rows, n_cols: the shape; ``rows``/``cols``: ``[n]`` integer arrays of dtype ``idx_t``
            (int32 while ``n``, ``n_rows`` and ``n_cols`` fit, else int64).

    Returns:
        ``(indptr [n_rows + 1], indices [m], pos [m])``: ``pos`` is the input position each kept
        pair came from; ``n - m`` repeated pairs were dropped.
    """
    o_ptr, o_ind, o_pos = _counting_csr(n_rows, n_cols, rows, cols, idx_t, sort_rows=True)
    keep = _first_of_runs(o_ptr, o_ind)
    if keep is not None:  # duplicate pairs: keep the first input row of each
        # The per-row sort is not stable, so take the smallest input row of each run explicitly.
        o_ptr, o_ind, o_pos = _compact(o_ptr, keep), o_ind[keep], np.minimum.reduceat(o_pos, np.flatnonzero(keep))
    return o_ptr, o_ind, o_pos


def _build_cpu(src: Tensor, dst: Tensor, num_src: int, num_dst: int):
    n = src.numel()
    idx_t = np.int32 if max(n, num_src, num_dst) <= _INT32_MAX else np.int64
    s = src.numpy().astype(idx_t, copy=False)
    d = dst.numpy().astype(idx_t, copy=False)
    o_ptr, o_ind, o_pos = dedup_csr(num_src, num_dst, s, d, idx_t)
    n_kept = o_ind.size
    # The forward stream is (src, dst)-sorted, so its stable counting sort by dst (CSR -> CSC)
    # yields (dst, src) order directly, and the data (forward positions) are the forward edge ids.
    i_ptr, i_ind, in_eid = np.empty(num_dst + 1, idx_t), np.empty(n_kept, idx_t), np.empty(n_kept, idx_t)
    _st.csr_tocsc(num_src, num_dst, o_ptr.astype(idx_t, copy=False), o_ind, np.arange(n_kept, dtype=idx_t),
                  i_ptr, i_ind, in_eid)
    t = lambda a, dt: torch.from_numpy(np.ascontiguousarray(a)).to(dt)  # noqa: E731
    return (t(o_ptr, torch.int64), t(o_ind, index_dtype(num_dst)), t(i_ptr, torch.int64),
            t(i_ind, index_dtype(num_src)), t(in_eid, index_dtype(n_kept)), torch.from_numpy(o_pos))


def _compact(indptr: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """indptr after dropping the entries where ``keep`` is false (few: repeated pairs)."""
    drop = np.flatnonzero(~keep)
    return indptr - np.searchsorted(drop, indptr).astype(indptr.dtype, copy=False)


def _build_torch(src: Tensor, dst: Tensor, num_src: int, num_dst: int):
    key = src * num_dst + dst
    # Stable sort: among duplicate pairs the first input row comes first and is kept.
    key, perm = torch.sort(key, stable=True)
    if key.numel() > 1:
        first = torch.ones_like(key, dtype=torch.bool)
        torch.ne(key[1:], key[:-1], out=first[1:])
        if not bool(first.all()):
            key, perm = key[first], perm[first]
    s, d = src[perm], dst[perm]
    n_edges = int(key.numel())
    out_indptr = cumsum0(torch.bincount(s, minlength=num_src))
    # s is ascending, so a stable sort on dst yields (dst, src) order; its permutation is the eid map.
    d_sorted, in_eid = torch.sort(d, stable=True)
    in_indptr = cumsum0(torch.bincount(d_sorted, minlength=num_dst))
    return (out_indptr, d.to(index_dtype(num_dst)), in_indptr, s[in_eid].to(index_dtype(num_src)),
            in_eid.to(index_dtype(n_edges)), perm)


def build_relation(src: Tensor, dst: Tensor, num_src: int, num_dst: int,
                   attrs: dict[str, Tensor] | None = None) -> tuple[Relation, Tensor]:
    """Build both CSR directions from COO arrays, dropping duplicate ``(src, dst)`` pairs.

    On CPU this is a counting sort (O(E + N) plus a sort of each pin's few boards); on other
    devices a torch sort. Both give identical results.

    Args:
        src, dst: integer tensors ``[E_in]`` of node indices (``0 <= src < num_src``, same for dst).
        num_src, num_dst: node counts of the two types.
        attrs: optional per-edge attributes ``[E_in]`` in input order.

    Returns:
        ``(relation, kept)`` where ``kept`` is an integer tensor ``[E]``: for each stored edge (eid order) the
        position of the input row it came from. Of duplicate pairs the first input row is kept,
        so ``E_in - E`` duplicates were dropped.

    Raises:
        ValueError: shapes differ or an endpoint is out of range.
    """
    if src.shape != dst.shape or src.dim() != 1:
        raise ValueError(f"src and dst must be 1-D of equal length, got {tuple(src.shape)} and {tuple(dst.shape)}")
    device = src.device
    src64, dst64 = src.long(), dst.to(device).long()
    if src64.numel():
        (s_lo, s_hi), (d_lo, d_hi) = torch.aminmax(src64), torch.aminmax(dst64)
        if min(int(s_lo), int(d_lo)) < 0 or int(s_hi) >= num_src or int(d_hi) >= num_dst:
            raise ValueError("edge endpoints out of range: src must lie in [0, num_src) and dst in [0, num_dst)")
    build = _build_cpu if device.type == "cpu" else _build_torch
    out_indptr, out_indices, in_indptr, in_indices, in_eid, perm = build(src64, dst64, num_src, num_dst)
    rel = Relation(num_src, num_dst, out_indptr, out_indices, in_indptr, in_indices, in_eid,
                   {k: v.to(device)[perm.to(device)] for k, v in (attrs or {}).items()})
    return rel, perm


def padded_rows(indptr: Tensor, indices: Tensor, rows: Tensor, width: int | None = None) -> Tensor:
    """Neighbors of ``rows`` as int64 ``[B, L]`` padded with ``-1``; ``L`` = ``width`` (longer rows are
    cut to their first ``width`` entries) or, when None, the largest degree among ``rows``."""
    start, end = indptr[rows], indptr[rows + 1]
    deg = end - start
    if width is None:
        width = int(deg.max()) if rows.numel() else 0
    pos = start[:, None] + torch.arange(width, device=rows.device)[None, :]
    valid = torch.arange(width, device=rows.device)[None, :] < deg[:, None]
    out = indices.long()[pos.clamp(max=max(indices.numel() - 1, 0))] if indices.numel() else \
        torch.zeros_like(pos)
    return torch.where(valid, out, torch.full_like(out, -1))
