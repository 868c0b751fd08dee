"""PinSage's max-margin loss and its hard-negative curriculum (Ying et al., 2018), for the
``pinsage`` baseline (:mod:`boardgraph.evaluation.baselines.pinsage`)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["pinsage_margin_loss", "HardNegativeCurriculum"]


def pinsage_margin_loss(query: Tensor, positive: Tensor, negatives: Tensor, margin: float = 0.1,
                        normalise: bool = True) -> Tensor:
    """Max-margin ranking loss ``mean relu(<q, n> - <q, p> + margin)`` over all (query, negative).

    Args:
        query, positive: ``[B, D]``.
        negatives: ``[N, D]`` shared by all queries, or ``[B, N, D]`` per query (hard negatives).
        margin: the margin (PinSage: 0.1 on normalised embeddings).
    """
    if normalise:
        query, positive, negatives = (F.normalize(x, dim=-1) for x in (query, positive, negatives))
    pos = (query * positive).sum(-1, keepdim=True)                         # [B, 1]
    neg = query @ negatives.T if negatives.dim() == 2 else torch.einsum("bd,bnd->bn", query, negatives)
    return F.relu(neg - pos + margin).mean()


@dataclass(frozen=True)
class HardNegativeCurriculum:
    """PinSage's curriculum: no hard negatives in epoch 0, then ``per_epoch`` more each epoch.

    ``num_hard(epoch) = min(max_hard, per_epoch * epoch)`` hard negatives per query.
    """

    per_epoch: int = 1
    max_hard: int = 6

    def num_hard(self, epoch: int) -> int:
        return max(0, min(self.max_hard, self.per_epoch * epoch))
