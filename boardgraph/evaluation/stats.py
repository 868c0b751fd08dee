"""Statistics over per-query metric values: bootstrap confidence intervals (one model, or two
models paired on the same queries) and slicing by an attribute for the bias audit."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Hashable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from .metrics import MetricInputError, RankingResult

__all__ = ["BootstrapResult", "SliceResult", "bootstrap_ci", "paired_bootstrap", "stratified_bootstrap", "slice_metric"]


# --------------------------------------------------------------------------------------- bootstrap
@dataclass(frozen=True)
class BootstrapResult:
    """A mean (or a mean difference) with a percentile bootstrap confidence interval.

    Attributes:
        estimate: the mean over the queries used (for a paired bootstrap, ``mean(a - b)``).
        low, high: the percentile interval at level ``ci``.
        ci: the level, e.g. ``0.95``.
        n: the number of queries used (those with a finite value in every input).
        n_boot: the number of bootstrap resamples.
    """

    estimate: float
    low: float
    high: float
    ci: float
    n: int
    n_boot: int

    @property
    def excludes_zero(self) -> bool:
        """``True`` when the interval lies entirely above or entirely below 0."""
        return self.low > 0 or self.high < 0


def _as_values(x: Tensor | RankingResult | Sequence[float], name: str) -> Tensor:
    if isinstance(x, RankingResult):
        x = x.per_query
    t = torch.as_tensor(x).detach().to("cpu", torch.float64)
    if t.dim() != 1:
        raise MetricInputError(f"{name} must be per-query values [Q], got shape {tuple(t.shape)}")
    return t


def _bootstrap_means(d: Tensor, n_boot: int, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    n = d.shape[0]
    # Resample in blocks of rows so that the index matrix stays below ~8M entries.
    block = max(1, 8_000_000 // max(n, 1))
    means = [d[torch.randint(0, n, (min(block, n_boot - s), n), generator=gen)].mean(dim=1)
             for s in range(0, n_boot, block)]
    return torch.cat(means)


def _check_boot_args(n_boot: int, ci: float) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise MetricInputError(f"n_boot must be a positive int, got {n_boot!r}")
    if not 0.0 < ci < 1.0:
        raise MetricInputError(f"ci must lie strictly between 0 and 1 (e.g. 0.95), got {ci!r}")


def _summarise(d: Tensor, n_boot: int, seed: int, ci: float) -> BootstrapResult:
    if d.shape[0] == 0:
        raise MetricInputError("no query has a finite value to bootstrap; check that the "
                               "per-query values are not all NaN (skipped queries)")
    means = _bootstrap_means(d, n_boot, seed)
    alpha = (1.0 - ci) / 2.0
    lo, hi = torch.quantile(means, torch.tensor([alpha, 1.0 - alpha], dtype=torch.float64))
    return BootstrapResult(float(d.mean()), float(lo), float(hi), ci, int(d.shape[0]), n_boot)


def bootstrap_ci(x: Tensor | RankingResult | Sequence[float], n_boot: int = 1000, seed: int = 0,
                 ci: float = 0.95) -> BootstrapResult:
    """Percentile bootstrap confidence interval of the mean of per-query values.

    Args:
        x: ``[Q]`` per-query values (or a :class:`RankingResult`); ``NaN`` entries are dropped.
        n_boot: resamples (queries drawn with replacement).
        seed: seeds a ``torch.Generator``; the same seed gives the same interval.
        ci: confidence level.

    Raises:
        MetricInputError: ``x`` is not 1-D, has no finite value, or ``n_boot`` / ``ci`` is invalid.
    """
    _check_boot_args(n_boot, ci)
    t = _as_values(x, "x")
    return _summarise(t[torch.isfinite(t)], n_boot, seed, ci)


def paired_bootstrap(a: Tensor | RankingResult | Sequence[float],
                     b: Tensor | RankingResult | Sequence[float], n_boot: int = 1000,
                     seed: int = 0, ci: float = 0.95) -> BootstrapResult:
    """Paired bootstrap of ``mean(a - b)`` for two models scored on the same queries.

    The same resampled queries are used for both models (the differences are resampled), which
    removes the between-query variance that both models share.

    Args:
        a, b: ``[Q]`` per-query values of the two models on the same queries, in the same order
            (or :class:`RankingResult`). Queries where either is ``NaN`` are dropped.
        n_boot, seed, ci: as in :func:`bootstrap_ci`.

    Returns:
        :class:`BootstrapResult` whose ``estimate`` is ``mean(a - b)``; ``excludes_zero`` tells
        whether the difference is significant at level ``ci``.

    Raises:
        MetricInputError: ``a`` and ``b`` differ in length, or as in :func:`bootstrap_ci`.
    """
    _check_boot_args(n_boot, ci)
    ta, tb = _as_values(a, "a"), _as_values(b, "b")
    if ta.shape != tb.shape:
        raise MetricInputError(
            f"a has {ta.shape[0]} queries and b has {tb.shape[0]}; a paired bootstrap needs both "
            f"models' values on the same queries in the same order")
    keep = torch.isfinite(ta) & torch.isfinite(tb)
    return _summarise(ta[keep] - tb[keep], n_boot, seed, ci)


# ----------------------------------------------------------------------------------------- slicing
@dataclass(frozen=True)
class SliceResult:
    """A per-query metric averaged within groups (e.g. category, price band).

    Attributes:
        groups: the group labels, sorted.
        means: ``[G]`` float64 mean of the metric in each group.
        counts: ``[G]`` int64 number of scored queries in each group.
        worst_best_ratio: worst group mean / best group mean over groups with at least
            ``min_count`` queries (1.0 when the best mean is 0; NaN when no group qualifies).
        threshold: the ratio below which the slice is flagged.
        flagged: ``worst_best_ratio < threshold``.
        worst, best: labels of the worst and best qualifying groups (``None`` if none).
        n_unlabelled: scored queries whose group label is missing (not in any group).
    """

    groups: list[Hashable]
    means: Tensor
    counts: Tensor
    worst_best_ratio: float
    threshold: float
    flagged: bool
    worst: Hashable | None
    best: Hashable | None
    n_unlabelled: int

    def to_frame(self) -> pd.DataFrame:
        """One row per group: ``group``, ``mean``, ``count``."""
        return pd.DataFrame({"group": self.groups, "mean": self.means.numpy(),
                             "count": self.counts.numpy()})


def stratified_bootstrap(values: Sequence[Tensor], n_boot: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Bootstrap of a mean over seeds, resampling queries within each seed (stratified by seed).

    Args:
        values: one float ``[Q_s]`` tensor of per-query values per seed (NaN queries are dropped).
        n_boot: bootstrap replicates.
        generator: the random stream (shared across calls, so a table's CIs are reproducible).

    Returns:
        ``(means, boot)``: float64 ``[S]`` per-seed means (NaN for a seed without values) and
        ``[n_boot]`` bootstrap replicates of their average.
    """
    means, boots = [], []
    for v in values:
        v = v[torch.isfinite(v)]
        if v.numel() == 0:
            means.append(torch.tensor(math.nan, dtype=torch.float64))
            boots.append(torch.full((n_boot,), math.nan, dtype=torch.float64))
            continue
        means.append(v.mean())
        boots.append(v[torch.randint(0, v.numel(), (n_boot, v.numel()), generator=generator)].mean(1))
    return torch.stack(means), torch.stack(boots).mean(0)


def slice_metric(per_query: Tensor | RankingResult | Sequence[float], groups: Any,
                 threshold: float = 0.8, min_count: int = 1) -> SliceResult:
    """Mean of a per-query metric within each group, and the worst/best group ratio.

    Args:
        per_query: ``[Q]`` values (or a :class:`RankingResult`); ``NaN`` (skipped) queries are left
            out of every group.
        groups: ``[Q]`` labels aligned with the queries (list, numpy array, pandas Series or
            tensor); missing labels (``None`` / ``NaN``) are counted in ``n_unlabelled``.
        threshold: flag the slice when ``worst_best_ratio < threshold`` (0.8 is the
            "four-fifths" rule of thumb).
        min_count: groups with fewer scored queries are reported but left out of the ratio.

    Raises:
        MetricInputError: ``groups`` does not have one label per query.
    """
    values = _as_values(per_query, "per_query")
    labels = groups.detach().cpu().numpy() if isinstance(groups, Tensor) else np.asarray(
        groups, dtype=object)
    if labels.ndim != 1 or labels.shape[0] != values.shape[0]:
        raise MetricInputError(
            f"groups has shape {labels.shape} but per_query has {values.shape[0]} queries; "
            f"pass one group label per query")
    codes, uniques = pd.factorize(pd.Series(labels), sort=True)
    codes_t = torch.from_numpy(np.asarray(codes, dtype=np.int64))
    scored = torch.isfinite(values)
    labelled = codes_t >= 0
    use = scored & labelled
    g = len(uniques)
    counts = torch.bincount(codes_t[use], minlength=g)
    sums = torch.bincount(codes_t[use], weights=values[use], minlength=g)
    means = sums / counts.clamp(min=1)
    means = torch.where(counts > 0, means, torch.tensor(float("nan"), dtype=torch.float64))
    qualify = counts >= max(min_count, 1)
    worst = best = None
    ratio = float("nan")
    if bool(qualify.any()):
        idx = qualify.nonzero().flatten()
        w = int(idx[means[idx].argmin()])
        bst = int(idx[means[idx].argmax()])
        worst, best = uniques[w], uniques[bst]
        ratio = 1.0 if float(means[bst]) == 0.0 else float(means[w] / means[bst])
    return SliceResult(groups=list(uniques), means=means, counts=counts, worst_best_ratio=ratio,
                       threshold=threshold, flagged=(not math.isnan(ratio)) and ratio < threshold,
                       worst=worst, best=best, n_unlabelled=int((scored & ~labelled).sum()))
