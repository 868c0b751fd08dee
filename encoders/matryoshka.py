"""Matryoshka embeddings (Kusupati et al., 2022, https://arxiv.org/abs/2205.13147).

The first ``d`` dimensions of an embedding, renormalised, are trained to be an embedding in their
own right for every ``d`` in a nested set (64/128/256 here): the ``matryoshka`` loss term of each
trained kind (:mod:`boardgraph.objectives.pinclip`) repeats the kind's main term on every shorter
prefix and averages them. Serving can then store 64-d vectors for a coarse index and 256-d for
re-ranking, from one model.
"""
from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor

__all__ = ["MATRYOSHKA_DIMS", "truncate_embedding", "matryoshka_embeddings"]

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
