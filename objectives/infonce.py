"""InfoNCE with false-negative masking, sampled negatives and logQ correction (the shared core).

For queries ``q [B, D]`` and in-batch keys ``k [B, D]`` (key ``i`` is the positive of query ``i``)
plus optional sampled negatives ``n [M, D]``::

    logits[i, j] = s * <q_i, k_j> - logq_k[j]          j in batch   (-inf where mask[i, j], j != i)
    logits[i, B+m] = s * <q_i, n_m> - logq_n[m]        sampled negatives
    loss = mean_i  -log softmax(logits[i])[i]

``logq`` is the log probability with which a candidate was sampled (popularity sampling); removing
it gives the sampled-softmax estimate of the full softmax (Yi et al., 2019, "Sampling-bias-corrected
neural modeling"). Inputs are used as given: normalise them first for cosine similarity.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["info_nce", "info_nce_logits"]


def info_nce_logits(query: Tensor, keys: Tensor, scale: Tensor | float, *, mask: Tensor | None = None,
                    key_logq: Tensor | None = None, negatives: Tensor | None = None,
                    neg_logq: Tensor | None = None) -> Tensor:
    """Logits ``[B, B + M]`` of :func:`info_nce` (see the module docstring).

    Args:
        query: ``[B, D]``.
        keys: ``[B, D]``; ``keys[i]`` is the positive of ``query[i]``.
        scale: logit scale (a scalar tensor or float; e.g. ``exp(log_temperature)``).
        mask: bool ``[B, B]``; ``True`` marks a pair that must not serve as a negative (a false
            negative, e.g. two pins on one board). The diagonal is never masked.
        key_logq: ``[B]`` log sampling probability of each in-batch key (or None).
        negatives: ``[M, D]`` sampled negatives shared by all queries (or None).
        neg_logq: ``[M]`` log sampling probability of each sampled negative (or None).
    """
    if query.shape != keys.shape or query.dim() != 2:
        raise ValueError(f"query and keys must both be [B, D], got {tuple(query.shape)} and {tuple(keys.shape)}")
    logits = scale * query @ keys.T
    if key_logq is not None:
        logits = logits - key_logq[None, :]
    if mask is not None:
        eye = torch.eye(len(query), dtype=torch.bool, device=query.device)
        logits = logits.masked_fill(mask & ~eye, float("-inf"))
    if negatives is not None:
        neg = scale * query @ negatives.T
        if neg_logq is not None:
            neg = neg - neg_logq[None, :]
        logits = torch.cat([logits, neg], dim=1)
    return logits


def info_nce(query: Tensor, keys: Tensor, scale: Tensor | float, *, mask: Tensor | None = None,
             key_logq: Tensor | None = None, negatives: Tensor | None = None, neg_logq: Tensor | None = None,
             weight: Tensor | None = None) -> Tensor:
    """Mean InfoNCE loss of each query against its key (see :func:`info_nce_logits` for the args).

    ``weight`` (``[B]``, e.g. 0 for pins without a positive) weights the per-query losses; the
    result is their weighted mean (0 when every weight is 0).
    """
    logits = info_nce_logits(query, keys, scale, mask=mask, key_logq=key_logq, negatives=negatives, neg_logq=neg_logq)
    target = torch.arange(len(query), device=query.device)
    per = F.cross_entropy(logits, target, reduction="none")
    if weight is None:
        return per.mean()
    w = weight.to(per.dtype)
    return (per * w).sum() / w.sum().clamp_min(1e-12)
