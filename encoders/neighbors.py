"""Board-mate cross-attention: a pin's representation queries the representations of its board-mates.

This is the neighbour-alignment module of the PinCLIP recipe: the pin ``[B, D]`` attends over
its ``K`` board-mates ``[B, K, D]`` (the sampler's ``[B, K]`` board-mates with a ``[B, K]`` mask),
and a learned gate decides how much of that context to add::

    ctx = has_mates * MHA(q=LN(pin), k=v=LN(mates), mask)         # [B, D]
    g   = sigmoid(W_g [pin ; ctx] + b_g)                            # [B, D]
    out = pin + g * ctx                       (then L2-normalised when normalize=True)

With ``residual=False`` the output is the context alone (``out = ctx``): the fusion of the
board-mates *without* the pin itself, the target of the neighbor-alignment objective (the pin
only chooses, as the query, how to weight its mates). A pin without mates then gets zeros.

A pin without any (unmasked) mate gets ``ctx = 0`` and so exactly its own representation
(renormalised): defined, finite, and no NaN from a softmax over nothing.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import MultiHeadAttention

__all__ = ["BoardMateAttention", "gather_mates"]


class BoardMateAttention(nn.Module):
    """Gated multi-head cross-attention from pins to their board-mates (see the module docstring).

    Args:
        dim: representation width ``D``.
        num_heads: attention heads (``dim`` divisible by it).
        dropout: dropout on the attention weights (training only).
        normalize: L2-normalise the output (use with L2-normalised pin embeddings).
        residual: add the gated context to the pin (default) or return the context alone.
        project_values: values pass through learned value/output projections (default), or the
            context is the attention-weighted average of the mates themselves (head by head), so
            it lies in the pins' embedding space.

    Shapes:
        pin ``[B, D]``, mates ``[B, K, D]``, mask bool ``[B, K]`` (True = real mate; the sampler's
        ``mates_local >= 0``; ``K`` may be 0) -> ``[B, D]``, and with ``return_weights`` also the
        attention weights ``[B, num_heads, K]`` (zeros for pins without mates).

    Raises:
        ValueError: shapes disagree.
    """

    def __init__(self, dim: int, num_heads: int = 4, dropout: float = 0.0, normalize: bool = True,
                 residual: bool = True, project_values: bool = True) -> None:
        super().__init__()
        self.dim, self.normalize, self.residual, self.project_values = dim, normalize, residual, project_values
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, num_heads, dropout=dropout)
        if not project_values:  # only the attention weights are used: no value/output projections to train
            self.attn.v = self.attn.out = None
        # the gate only mixes context into the pin: without the residual it would be an unused parameter
        self.gate = nn.Linear(2 * dim, dim) if residual else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.norm_q.reset_parameters()
        self.norm_kv.reset_parameters()
        for lin in (self.attn.q, self.attn.k, self.attn.v, self.attn.out):
            if lin is not None:
                lin.reset_parameters()
        if self.gate is not None:
            self.gate.reset_parameters()

    def forward(self, pin: Tensor, mates: Tensor, mask: Tensor,
                return_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        if pin.dim() != 2 or mates.dim() != 3 or mask.shape != mates.shape[:2] or mates.shape[0] != pin.shape[0] \
                or mates.shape[-1] != pin.shape[-1]:
            raise ValueError(f"expected pin [B, D], mates [B, K, D], mask [B, K]; got {tuple(pin.shape)}, "
                             f"{tuple(mates.shape)}, {tuple(mask.shape)}")
        mask = mask.bool()
        has = mask.any(1, keepdim=True)  # [B, 1]
        # padding rows may hold anything (even NaN): zero them so that 0-weights cannot meet NaN values
        kv = self.norm_kv(mates.masked_fill(~mask.unsqueeze(-1), 0.0))
        if self.project_values:
            ctx, w = self.attn(self.norm_q(pin).unsqueeze(1), kv, key_mask=mask)
        else:
            # each head's weights average that head's slice of the raw mates: the context stays in
            # the pins' own embedding space (the space retrieval uses)
            a, (b, k, d) = self.attn, mates.shape
            q, key = a._split(a.q(self.norm_q(pin).unsqueeze(1))), a._split(a.k(kv))
            scores = (q @ key.transpose(-2, -1)) * (a.head_dim ** -0.5)
            w = a.dropout(scores.masked_fill(~mask[:, None, None, :], torch.finfo(scores.dtype).min).softmax(-1))
            raw = mates.masked_fill(~mask.unsqueeze(-1), 0.0).reshape(b, k, a.num_heads, a.head_dim)
            ctx = torch.einsum("bhk,bkhe->bhe", w[:, :, 0, :], raw).reshape(b, 1, d)
        ctx = torch.where(has, ctx.squeeze(1), torch.zeros_like(pin))
        out = pin + torch.sigmoid(self.gate(torch.cat([pin, ctx], -1))) * ctx if self.residual else ctx
        if self.normalize:
            out = F.normalize(out, dim=-1)
        if return_weights:
            return out, torch.where(has.unsqueeze(-1), w.squeeze(2), torch.zeros_like(w.squeeze(2)))
        return out

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, num_heads={self.attn.num_heads}, normalize={self.normalize}, "
                f"residual={self.residual}, project_values={self.project_values}")


def gather_mates(table: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """Look up board-mate rows: ``table`` ``[N, D]`` and ``index`` int64 ``[B, K]`` (``-1`` = padding, as
    the sampler's ``mates_local``) -> ``(mates [B, K, D], mask bool [B, K])``; padded rows are zeros.

    Raises:
        IndexError: an index is ``>= N`` or ``< -1``.
    """
    if index.numel() and (int(index.max()) >= table.shape[0] or int(index.min()) < -1):
        raise IndexError(f"mate indices must be in -1..{table.shape[0] - 1}, got {int(index.min())}..{int(index.max())}; "
                         "-1 marks padding, others are rows of the table")
    mask = index >= 0
    mates = table[index.clamp_min(0)] * mask.unsqueeze(-1).to(table.dtype)
    return mates, mask
