"""Hybrid fusion of the modalities of a pin, at two granularities.

(a) **Token-level (early) fusion**: a small transformer over
``[CLS] + image tokens + text tokens + metadata tokens`` (all projected to ``dim``, each plus a
learned modality embedding); padding tokens and the tokens of absent modalities are masked out
of the keys. The output is the final ``[CLS]`` state. ``[CLS]`` is never masked, so a pin with no
modality at all still gets a finite vector.

(b) **Embedding-level (late) fusion**: the pooled per-modality vectors (projected to ``dim``) are
averaged with learned, per-pin attention weights ``softmax_m(g(LN(p_m)))`` taken over the
modalities the pin has (zero vector when it has none).

The pin embedding (:class:`~boardgraph.encoders.PinEncoder`) is computed from both.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .layers import TransformerBlock
from .registry import MODALITIES

__all__ = ["FusionConfig", "HybridFusion"]


@dataclass
class FusionConfig:
    """Config of :class:`HybridFusion`.

    Attributes:
        dim: fusion width (tokens and pooled vectors are projected to it).
        depth: transformer blocks of the early fusion.
        num_heads: attention heads (``dim`` divisible by it).
        mlp_ratio: hidden width of the blocks' MLP, relative to ``dim``.
        dropout: dropout in the blocks (training only).
    """

    dim: int = 64
    depth: int = 1
    num_heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.0


class HybridFusion(nn.Module):
    """Early (token) + late (pooled) fusion; see the module docstring.

    Args:
        config: :class:`FusionConfig`.
        modalities: the modalities it fuses (subset of :data:`MODALITIES`, in that order).

    Shapes (``M`` = ``len(MODALITIES)``; dicts keyed by modality, absent keys = modality unused):
        tokens ``{m: [B, N_m, dim]}``, token_masks ``{m: bool [B, N_m]}``, pooled ``{m: [B, dim]}``,
        present bool ``[B, M]`` -> ``(early [B, dim], late [B, dim], weights [B, M])`` where
        ``weights`` are the late-fusion weights (0 for absent modalities).
    """

    def __init__(self, config: FusionConfig, modalities: tuple[str, ...] = MODALITIES) -> None:
        super().__init__()
        self.config, self.modalities = config, tuple(modalities)
        d = config.dim
        self.cls = nn.Parameter(torch.empty(1, 1, d))
        self.modality_embed = nn.Parameter(torch.empty(len(MODALITIES), d))
        self.blocks = nn.ModuleList(TransformerBlock(d, config.num_heads, config.mlp_ratio, config.dropout)
                                    for _ in range(config.depth))
        self.norm = nn.LayerNorm(d)
        self.late_norm = nn.LayerNorm(d)
        self.late_gate = nn.Linear(d, 1, bias=False)  # a bias would cancel in the softmax
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.cls, std=0.02)
        nn.init.normal_(self.modality_embed, std=0.02)
        self.late_gate.reset_parameters()

    def forward(self, tokens: dict[str, Tensor], token_masks: dict[str, Tensor], pooled: dict[str, Tensor],
                present: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b = present.shape[0]
        seq, keep = [self.cls.expand(b, -1, -1)], [present.new_ones(b, 1)]
        for m in self.modalities:
            j = MODALITIES.index(m)
            seq.append(tokens[m] + self.modality_embed[j])
            keep.append(token_masks[m] & present[:, j:j + 1])
        x, mask = torch.cat(seq, 1), torch.cat(keep, 1)
        for blk in self.blocks:
            x = blk(x, mask)
        early = self.norm(x[:, 0])

        # late fusion: masked softmax over the present modalities (all-absent rows -> zeros, not NaN)
        cols = [MODALITIES.index(m) for m in self.modalities]
        stacked = torch.stack([self.late_norm(pooled[m]) for m in self.modalities], 1)  # [B, M', dim]
        here = present[:, cols]
        scores = self.late_gate(stacked).squeeze(-1).masked_fill(~here, -1e4)
        w = torch.exp(scores - scores.max(1, keepdim=True).values) * here.to(stacked.dtype)
        w = w / w.sum(1, keepdim=True).clamp_min(1e-12)
        late = (w.unsqueeze(-1) * stacked).sum(1)
        weights = torch.stack([w[:, self.modalities.index(m)] if m in self.modalities else torch.zeros_like(w[:, 0])
                               for m in MODALITIES], 1)
        return early, late, weights

    def extra_repr(self) -> str:
        return f"modalities={self.modalities}, dim={self.config.dim}, depth={self.config.depth}"
