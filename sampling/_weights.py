"""Per-edge sampling weights laid out along a CSR direction, as prefix sums (internal)."""
from __future__ import annotations

import torch
from torch import Tensor

from ._ops import take
from ._topology import Direction

__all__ = ["row_ids", "prefix_sum", "row_relative_recency"]


def row_ids(indptr: Tensor) -> Tensor:
    """int64 ``[E]`` row of every CSR position."""
    n = indptr.numel() - 1
    return torch.repeat_interleave(torch.arange(n, device=indptr.device), indptr[1:] - indptr[:-1],
                                   output_size=int(indptr[-1]))


def prefix_sum(w: Tensor) -> Tensor:
    """Exclusive prefix sum ``[E + 1]`` (int64 for integer weights, float64 otherwise)."""
    dt = torch.int64 if not w.dtype.is_floating_point else torch.float64
    out = torch.zeros(w.numel() + 1, dtype=dt, device=w.device)
    torch.cumsum(w.to(dt), 0, out=out[1:])
    return out


def row_relative_recency(d: Direction, timestamp: Tensor, half_life: float) -> Tensor:
    """Weights ``2 ** ((t - t_row_max) / half_life)`` per position of ``d`` (float64 ``[E]``).

    ``timestamp`` is in forward eid order. Relative to each row's newest edge, so every row's
    weights lie in ``(0, 1]`` and the global prefix sum keeps their resolution.
    """
    t = timestamp.to(torch.float64)
    if d.eid is not None:
        t = take(t, d.eid.long())
    rows = row_ids(d.indptr)
    tmax = torch.full((d.indptr.numel() - 1,), -float("inf"), dtype=torch.float64, device=t.device)
    tmax.scatter_reduce_(0, rows, t, "amax")
    return torch.exp2((t - take(tmax, rows)) / float(half_life))
