"""Matryoshka embeddings (Kusupati et al., 2022, https://arxiv.org/abs/2205.13147).

The first ``d`` dimensions of an embedding, renormalised, are trained to be an embedding in their
own right for every ``d`` in a nested set (64/128/256 here): a loss is computed per prefix and
the losses are summed. Serving can then store 64-d vectors for a coarse index and 256-d for
re-ranking, from one model.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["MATRYOSHKA_DIMS", "truncate_embedding", "matryoshka_embeddings", "matryoshka_loss",
           "matryoshka_losses"]

#: The default nested dimensions.
MATRYOSHKA_DIMS: tuple[int, ...] = (64, 128, 256)


def truncate_embedding(embedding: Tensor, dim: int, eps: float = 1e-12) -> Tensor:
    """First ``dim`` dims of ``embedding`` ``[..., E]``, L2-renormalised -> ``[..., dim]`` (zero rows stay zero).

    Raises:
        ValueError: ``dim`` is not in ``1..E``.
    """
    e = embedding.shape[-1]
    if not 1 <= dim <= e:
        raise ValueError(f"cannot truncate a {e}-d embedding to {dim} dims; pick a dim in 1..{e}")
    return F.normalize(embedding[..., :dim], dim=-1, eps=eps)


def matryoshka_embeddings(embedding: Tensor, dims: Sequence[int] = MATRYOSHKA_DIMS) -> dict[int, Tensor]:
    """``{d: truncate_embedding(embedding, d)}`` for every ``d`` in ``dims``."""
    return {int(d): truncate_embedding(embedding, int(d)) for d in dims}


def matryoshka_loss(losses: Mapping[int, Tensor], weights: Mapping[int, float] | None = None) -> Tensor:
    r"""Combine per-prefix losses: :math:`\sum_d w_d \, L_d` (``w_d = 1`` by default, as in the paper).

    Args:
        losses: ``{d: scalar loss computed on the d-dim prefix}``.
        weights: per-dim weights (missing dims weigh 1.0).

    Raises:
        ValueError: ``losses`` is empty or ``weights`` names a dim without a loss.
    """
    if not losses:
        raise ValueError("matryoshka_loss got no per-dim losses; pass {dim: loss}")
    weights = dict(weights or {})
    extra = sorted(set(weights) - set(losses))
    if extra:
        raise ValueError(f"weights for dims {extra} have no loss; dims with losses are {sorted(losses)}")
    return torch.stack([losses[d] * float(weights.get(d, 1.0)) for d in sorted(losses)]).sum()


def matryoshka_losses(loss_fn: Callable[..., Tensor], *embeddings: Tensor,
                      dims: Sequence[int] = MATRYOSHKA_DIMS) -> dict[int, Tensor]:
    """``{d: loss_fn(*(truncate_embedding(x, d) for x in embeddings))}``, to feed :func:`matryoshka_loss`.

    Example::

        loss = matryoshka_loss(matryoshka_losses(clip_loss, pin_emb, mate_emb))
    """
    return {int(d): loss_fn(*(truncate_embedding(x, int(d)) for x in embeddings)) for d in dims}
