"""Gathering features across ``torch.distributed`` ranks so in-batch negatives span all ranks."""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["gather_features", "world_info"]


def world_info() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` when torch.distributed is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_features(x: Tensor, with_grad: bool = True) -> Tensor:
    """Concatenate ``x [B, ...]`` from every rank along dim 0 -> ``[world * B, ...]`` (rank order).

    With ``with_grad`` the gather is differentiable (``torch.distributed.nn.all_gather``), so
    gradients flow back to the rank that produced each row, as open_clip's ``gather_with_grad``.
    Without it, other ranks' rows are constants and the local rows keep their graph. Single
    process: returns ``x``. All ranks must pass the same ``B``.
    """
    rank, world = world_info()
    if world == 1:
        return x
    if with_grad:
        import torch.distributed.nn.functional as dist_fn

        return torch.cat(dist_fn.all_gather(x), dim=0)
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x.detach())
    parts[rank] = x
    return torch.cat(parts, dim=0)
