"""Small building blocks: masked multi-head attention, a pre-norm transformer block, masked mean.

Written out (rather than ``nn.MultiheadAttention``/``nn.TransformerEncoderLayer``) so that the
masking is explicit, the attention weights can be returned, and export to ONNX takes one path
(the built-in layers switch to a fused "fast path" in eval mode that the exporter treats
differently).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["MultiHeadAttention", "TransformerBlock", "masked_mean"]


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` ``[B, N, D]`` over the tokens where ``mask`` ``[B, N]`` is True -> ``[B, D]``.

    Rows without any True entry give zeros (not NaN).
    """
    w = mask.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(1) / w.sum(1).clamp_min(1.0)


class MultiHeadAttention(nn.Module):
    r"""Multi-head scaled dot-product attention with a key mask.

    .. math::
        \mathrm{softmax}\Big(\frac{(qW_q)(kW_k)^\top}{\sqrt{d_h}} + M\Big)(vW_v)\,W_o

    where :math:`M` is 0 for kept keys and the most negative float for masked ones. A query whose
    keys are all masked gets uniform weights over them; callers that allow this (board-mate
    attention) zero such rows themselves.

    Args:
        dim: query width (and output width).
        num_heads: heads; ``dim`` must be divisible by it.
        kv_dim: key/value width (default ``dim``).
        dropout: dropout on the attention weights (training only).

    Shapes:
        query ``[B, Q, dim]``, key/value ``[B, K, kv_dim]``, key_mask bool ``[B, K]`` (True = attend)
        -> output ``[B, Q, dim]`` and weights ``[B, num_heads, Q, K]``.
    """

    def __init__(self, dim: int, num_heads: int, kv_dim: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}; pick num_heads dividing dim")
        kv_dim = kv_dim or dim
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(kv_dim, dim)
        self.v = nn.Linear(kv_dim, dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def reset_parameters(self) -> None:
        for lin in (self.q, self.k, self.v, self.out):
            lin.reset_parameters()

    def _split(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, query: Tensor, key: Tensor, value: Tensor | None = None,
                key_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        value = key if value is None else value
        q, k, v = self._split(self.q(query)), self._split(self.k(key)), self._split(self.v(value))
        scores = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(self.head_dim))
        if key_mask is not None:
            scores = scores.masked_fill(~key_mask[:, None, None, :], torch.finfo(scores.dtype).min)
        weights = scores.softmax(-1)
        out = self.dropout(weights) @ v
        b, _, q_len, _ = out.shape
        return self.out(out.transpose(1, 2).reshape(b, q_len, self.dim)), weights

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}"


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(LN(x))`` then ``x + MLP(LN(x))``.

    Shapes: ``x`` ``[B, N, dim]``, ``mask`` bool ``[B, N]`` (True = real token) -> ``[B, N, dim]``.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 2.0, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, num_heads, dropout=dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        h = self.norm1(x)
        x = x + self.drop(self.attn(h, h, key_mask=mask)[0])
        return x + self.drop(self.mlp(self.norm2(x)))
