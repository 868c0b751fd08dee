"""Losses of the baselines PinCLIP is measured against.

* :func:`pinsage_margin_loss` and :class:`HardNegativeCurriculum`: PinSage (Ying et al., 2018).
* :class:`CoBoardContrastiveLoss`: pairwise co-board contrastive training, a pin against one
  sampled board-mate's own embedding (no cross-attention): the ablation that isolates what the
  cross-attention fusion of neighbor alignment adds.
* The content-only baseline has no graph loss: it trains with :class:`~.contrastive.ClipLoss`
  alone (or uses the pretrained towers as they are).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .neighbor import NeighborAlignmentLoss

__all__ = ["pinsage_margin_loss", "HardNegativeCurriculum", "CoBoardContrastiveLoss"]


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


class CoBoardContrastiveLoss(nn.Module):
    """InfoNCE of a pin against ONE sampled board-mate's own embedding, in-batch negatives with
    shared-board false negatives masked (same masking and logQ options as the mates term of
    :class:`~.neighbor.NeighborAlignmentLoss`, with ``mate [B, D]`` in place of the fusion)."""

    def __init__(self, init_scale: float = 1 / 0.07, max_scale: float = 100.0, gather: bool = True,
                 symmetric: bool = False) -> None:
        super().__init__()
        self.inner = NeighborAlignmentLoss(init_scale, max_scale, gather, symmetric=symmetric)

    def forward(self, pin: Tensor, mate: Tensor, pin_boards: Tensor, *, has_mate: Tensor | None = None,
                negatives: Tensor | None = None, neg_logq: Tensor | None = None) -> Tensor:
        return self.inner(pin, mate, pin_boards, has_mates=has_mate, negatives=negatives, neg_logq=neg_logq)["mates"]
