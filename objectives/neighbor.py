"""Neighbor alignment (PinCLIP): pull a pin towards the fusion of its board-mates and its board.

For each seed pin ``i`` with content embedding ``p_i``:

* **mates term**: InfoNCE of ``p_i`` against ``m_i``, the cross-attention fusion of ``i``'s
  sampled board-mates (never including ``i`` itself: the sampler guarantees it), with the other
  seeds' fusions as in-batch negatives plus optional sampled negatives (uniform, or popularity
  with logQ correction).
* **board term**: InfoNCE of ``p_i`` against the embedding ``b_i`` of a board it belongs to.

False negatives are masked: two in-batch pins that share a board are not negatives of each other,
and board ``j`` is not a negative of pin ``i`` when ``i`` is on it. Pins without mates (or without
a board) are left out of the respective term via ``has_mates`` / ``has_board``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .contrastive import LogitScale
from .distributed import gather_features
from .infonce import info_nce

__all__ = ["NeighborAlignmentLoss", "CoBoardContrastiveLoss", "shared_board_mask"]


def shared_board_mask(boards_a: Tensor, boards_b: Tensor) -> Tensor:
    """bool ``[A, B]``: pin ``a`` and pin ``b`` share a board.

    Args:
        boards_a: int64 ``[A, L]`` board indices of each pin, padded with ``-1``.
        boards_b: int64 ``[B, L2]`` likewise.

    Boards are compacted to the ``U`` distinct ones present and the mask is one product of the
    two ``[*, U]`` incidence matrices: ``O(A * B * U)``, without an ``[A, B, L, L]`` comparison.
    """
    va, vb = boards_a >= 0, boards_b >= 0
    uniq, inv = torch.unique(torch.cat([boards_a[va], boards_b[vb]]), return_inverse=True)
    na = int(va.sum())
    inc_a = torch.zeros(boards_a.shape[0], uniq.numel(), device=boards_a.device)
    inc_b = torch.zeros(boards_b.shape[0], uniq.numel(), device=boards_b.device)
    inc_a[va.nonzero()[:, 0], inv[:na]] = 1.0
    inc_b[vb.nonzero()[:, 0], inv[na:]] = 1.0
    return (inc_a @ inc_b.T) > 0


class NeighborAlignmentLoss(nn.Module):
    """The two neighbor-alignment InfoNCE terms (see the module docstring).

    Args:
        init_scale, max_scale: learned logit scale (shared by both terms).
        gather: gather keys across torch.distributed ranks with gradient.
        symmetric: the mates term averages both InfoNCE directions: pin -> fusions (which context is
            mine?) and fusion -> pins (which pin completes this context?, the board-completion query).

    Forward args (``B`` seeds, ``D`` dims, ``L`` boards per pin, ``M`` sampled negatives):
        pin: ``[B, D]`` content embeddings of the seeds.
        mates: ``[B, D]`` cross-attention fusion of each seed's board-mates.
        pin_boards: int64 ``[B, L]`` boards of each seed (``-1`` padded), for false-negative masks.
        board: ``[B, D]`` embedding of one board of each seed (or None: no board term).
        board_index: int64 ``[B]`` which board ``board[i]`` is (needed with ``board``).
        has_mates, has_board: bool ``[B]``; rows without them are left out of that term.
        negatives: ``[M, D]`` sampled negative pins' content embeddings; ``neg_logq [M]`` their
            log sampling probabilities (logQ correction); ``mates_logq [B]`` for in-batch keys.

    Returns:
        ``{"mates": scalar, "board": scalar}`` (``board`` only when given).
    """

    def __init__(self, init_scale: float = 1 / 0.07, max_scale: float = 100.0, gather: bool = True,
                 symmetric: bool = False) -> None:
        super().__init__()
        self.scale = LogitScale(init_scale, max_scale)
        self.gather = gather
        self.symmetric = symmetric

    def _g(self, x: Tensor | None, grad: bool = True) -> Tensor | None:
        return gather_features(x, with_grad=grad) if (self.gather and x is not None) else x

    def forward(self, pin: Tensor, mates: Tensor, pin_boards: Tensor, *, board: Tensor | None = None,
                board_index: Tensor | None = None, has_mates: Tensor | None = None,
                has_board: Tensor | None = None, negatives: Tensor | None = None, neg_logq: Tensor | None = None,
                mates_logq: Tensor | None = None) -> dict[str, Tensor]:
        B = len(pin)
        ones = torch.ones(B, dtype=torch.bool, device=pin.device)
        has_mates = ones if has_mates is None else has_mates
        pin, mates = F.normalize(pin, dim=-1), F.normalize(mates, dim=-1)
        negatives = F.normalize(negatives, dim=-1) if negatives is not None else None
        # All tensors are gathered so every rank computes the loss over the global batch.
        pin, mates, boards_g = self._g(pin), self._g(mates), self._g(pin_boards, grad=False)
        has_mates, mates_logq = self._g(has_mates, grad=False), self._g(mates_logq, grad=False)
        s = self.scale()
        shared = shared_board_mask(boards_g, boards_g)
        same = shared | ~has_mates[None, :]  # keys without mates are no keys
        out = {"mates": info_nce(pin, mates, s, mask=same, key_logq=mates_logq, negatives=negatives,
                                 neg_logq=neg_logq, weight=has_mates)}
        if self.symmetric:
            # the retrieval direction: each seed's mate fusion picks its seed among the batch's pins
            # (and the sampled negative pins); pins that share a board with the seed are no negatives
            back = info_nce(mates, pin, s, mask=shared, negatives=negatives,
                            neg_logq=neg_logq, weight=has_mates)
            out["mates"] = 0.5 * (out["mates"] + back)
        if board is not None:
            if board_index is None:
                raise ValueError("board needs board_index (which board each row of `board` is)")
            has_board = ones if has_board is None else has_board
            board = self._g(F.normalize(board, dim=-1))
            board_index, has_board = self._g(board_index, grad=False), self._g(has_board, grad=False)
            on_board = (boards_g[:, :, None] == board_index[None, None, :]).any(1)  # pin i is on board j
            mask = on_board | ~has_board[None, :]
            out["board"] = info_nce(pin, board, s, mask=mask, weight=has_board)
        return out


class CoBoardContrastiveLoss(nn.Module):
    """The ``coboard`` ablation: pairwise co-board contrastive training, a pin against ONE sampled
    board-mate's own embedding (no cross-attention), which isolates what the cross-attention fusion
    of neighbor alignment adds. InfoNCE with in-batch negatives and shared-board false negatives masked
    (same masking and logQ options as the mates term of
    :class:`NeighborAlignmentLoss`, with ``mate [B, D]`` in place of the fusion)."""

    def __init__(self, init_scale: float = 1 / 0.07, max_scale: float = 100.0, gather: bool = True,
                 symmetric: bool = False) -> None:
        super().__init__()
        self.inner = NeighborAlignmentLoss(init_scale, max_scale, gather, symmetric=symmetric)

    def forward(self, pin: Tensor, mate: Tensor, pin_boards: Tensor, *, has_mate: Tensor | None = None,
                negatives: Tensor | None = None, neg_logq: Tensor | None = None) -> Tensor:
        return self.inner(pin, mate, pin_boards, has_mates=has_mate, negatives=negatives, neg_logq=neg_logq)["mates"]
