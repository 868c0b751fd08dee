"""Image-text alignment: symmetric InfoNCE (CLIP) and the sigmoid variant (SigLIP)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .distributed import gather_features
from .infonce import info_nce

__all__ = ["LogitScale", "ClipLoss", "SigLipLoss"]


class LogitScale(nn.Module):
    """A learned logit scale ``exp(log_scale)``, clamped at ``max_scale`` (open_clip's recipe).

    Args:
        init: initial scale (CLIP: ``1 / 0.07``).
        max_scale: upper clamp of the scale (CLIP: 100).
        learnable: keep the scale fixed when False.
    """

    def __init__(self, init: float = 1 / 0.07, max_scale: float = 100.0, learnable: bool = True) -> None:
        super().__init__()
        self.max_scale = max_scale
        self.log_scale = nn.Parameter(torch.tensor(math.log(init)), requires_grad=learnable)

    def forward(self) -> Tensor:
        return self.log_scale.exp().clamp(max=self.max_scale)


def _valid_pairs(image: Tensor, text: Tensor, valid: Tensor | None, gather: bool) -> tuple[Tensor, Tensor] | None:
    """L2-normalised rows of the pins having both modalities, gathered over ranks; None if none."""
    if image.shape != text.shape or image.dim() != 2:
        raise ValueError(f"expected two [B, D] tensors of one shape, got {tuple(image.shape)} and {tuple(text.shape)}")
    image, text = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
    if valid is None:
        valid = torch.ones(len(image), dtype=torch.bool, device=image.device)
    if gather:
        image, text, valid = gather_features(image), gather_features(text), gather_features(valid, with_grad=False)
    if not bool(valid.any()):
        return None
    idx = valid.nonzero().squeeze(1)
    return image[idx], text[idx]


class ClipLoss(nn.Module):
    """Symmetric InfoNCE between the image and text projections of the same pins.

    ``loss = (CE(s * I T^T, diag) + CE(s * T I^T, diag)) / 2`` over L2-normalised rows, with a
    learned scale (init ``1/0.07``, clamped at 100). Pins lacking either modality are excluded
    through ``valid``. Under torch.distributed the keys of every rank are gathered with gradient,
    so negatives span the global batch.

    Shapes: ``image, text [B, D]``, ``valid [B]`` bool -> scalar.
    """

    def __init__(self, init_scale: float = 1 / 0.07, max_scale: float = 100.0, gather: bool = True) -> None:
        super().__init__()
        self.scale = LogitScale(init_scale, max_scale)
        self.gather = gather

    def forward(self, image: Tensor, text: Tensor, valid: Tensor | None = None) -> Tensor:
        pair = _valid_pairs(image, text, valid, self.gather)
        if pair is None:
            return image.sum() * 0.0  # keeps the graph: a batch with no image-text pair
        image, text = pair
        s = self.scale()
        return 0.5 * (info_nce(image, text, s) + info_nce(text, image, s))


class SigLipLoss(nn.Module):
    """Pairwise sigmoid image-text loss (Zhai et al., 2023, SigLIP).

    ``loss = -1/B * sum_ij log sigmoid(z_ij * (s * <i_i, t_j> + b))`` with ``z_ij = 1`` on the
    diagonal and ``-1`` elsewhere; learned scale (init 10) and bias (init -10).

    Shapes: ``image, text [B, D]``, ``valid [B]`` bool -> scalar.
    """

    def __init__(self, init_scale: float = 10.0, init_bias: float = -10.0, max_scale: float = 100.0,
                 gather: bool = True) -> None:
        super().__init__()
        self.scale = LogitScale(init_scale, max_scale)
        self.bias = nn.Parameter(torch.tensor(float(init_bias)))
        self.gather = gather

    def forward(self, image: Tensor, text: Tensor, valid: Tensor | None = None) -> Tensor:
        pair = _valid_pairs(image, text, valid, self.gather)
        if pair is None:
            return image.sum() * 0.0
        image, text = pair
        logits = self.scale() * image @ text.T + self.bias
        z = 2 * torch.eye(len(image), device=image.device, dtype=logits.dtype) - 1
        return -F.logsigmoid(z * logits).sum() / len(image)
