"""Weighted sum of named loss terms, each kept for logging."""
from __future__ import annotations

from typing import Mapping

from torch import Tensor

__all__ = ["combine_losses"]


def combine_losses(terms: Mapping[str, Tensor], weights: Mapping[str, float]) -> tuple[Tensor, dict[str, float]]:
    """``(total, logs)``: ``total = sum_k weights[k] * terms[k]`` over the terms present.

    Every term must have a weight (a typo in a config should fail loudly, not train silently on
    fewer terms). ``logs`` holds each term's value and the total as floats, for CSV/TensorBoard.
    """
    missing = [k for k in terms if k not in weights]
    if missing:
        raise KeyError(f"loss terms {missing} have no weight; add them to the config's loss weights {dict(weights)}")
    if not terms:
        raise ValueError("no loss terms to combine")
    total = sum(float(weights[k]) * v for k, v in terms.items())
    logs = {k: float(v.detach()) for k, v in terms.items()}
    logs["total"] = float(total.detach()) if isinstance(total, Tensor) else float(total)
    return total, logs
