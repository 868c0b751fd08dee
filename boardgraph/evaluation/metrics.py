"""Ranking metrics for retrieval, bootstrap confidence intervals and slicing for the bias audit.

Every query has a score for every candidate (``scores [Q, N]``) and a set of positive candidates
(``positives [Q, N]`` bool). All metrics are computed without a Python loop over queries, in chunks
of ``chunk_size`` queries so that the intermediates stay about the size of one chunk of scores.

**Rank of a positive (filtered setting).** The rank of a positive candidate ``j`` of query ``q`` is

    rank(q, j) = 1 + #{ i : i is a negative of q, i is not excluded, scores[q, i] >= scores[q, j] }

* Ties are counted against the positive: a positive tied with negatives is ranked below all of them.
* Other positives do not push a positive down (the standard "filtered" protocol of link
  prediction), so two positives above every negative both have rank 1.
* Excluded candidates (``exclude[q, i]``, e.g. the query itself or its training board-mates) take
  no part: an excluded negative never counts, an excluded positive is not scored.

**Position in the list.** Recall@K and NDCG@K are read off one ranked list per query: the
positives are laid out in order of their ranks, so the ``i``-th best positive (0-based) sits at
position ``rank_i + i``, its position in the full list with ties broken against it.

* Recall@K = (positives at positions ``<= K``) / (positives of the query): the share of the
  query's positives in its top-K list, as recommender libraries (RecBole, Microsoft Recommenders)
  define it. It cannot exceed ``min(K, n_pos) / n_pos``, and random scores give ``K / N`` for
  ``N`` non-excluded candidates.
* Hit-rate@K (a positive in the top K) and MRR (``1 / rank`` of the best positive) read the first
  position, which is the same in both views. NDCG@K stays in ``[0, 1]``.
* The filtered rank of each positive (:func:`positive_ranks`) is kept for per-positive analyses
  (e.g. the bias audit's per-pin hit@K).

Queries without any (non-excluded) positive are skipped: their per-query value is ``NaN``,
``RankingResult.valid`` is ``False`` for them and ``RankingResult.n_skipped`` counts them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
from torch import Tensor

from boardgraph.errors import BoardgraphError

__all__ = [
    "MetricInputError",
    "RankingResult",
    "padded_to_mask",
    "positive_ranks",
    "ranking_metrics",
    "recall_at_k",
    "hit_rate_at_k",
    "mrr",
    "ndcg_at_k",
]


class MetricInputError(BoardgraphError, ValueError):
    """Bad input to a metric: wrong shape or dtype, ids out of range, non-finite scores, bad k."""


@dataclass(frozen=True)
class RankingResult:
    """One metric over a set of queries.

    Attributes:
        name: e.g. ``"recall@10"``, ``"mrr"``.
        per_query: ``[Q]`` float64 value per query; ``NaN`` for skipped queries (no positive).
        valid: ``[Q]`` bool, ``True`` where the query had at least one positive and was scored.
    """

    name: str
    per_query: Tensor
    valid: Tensor

    @property
    def mean(self) -> float:
        """Mean over the scored queries (``NaN`` when none was scored)."""
        if self.n_scored == 0:
            return float("nan")
        return float(self.per_query[self.valid].mean())

    @property
    def n_scored(self) -> int:
        """Number of queries with at least one positive."""
        return int(self.valid.sum())

    @property
    def n_skipped(self) -> int:
        """Number of queries skipped because they had no (non-excluded) positive."""
        return int((~self.valid).sum())

    def __repr__(self) -> str:
        return (f"RankingResult({self.name}={self.mean:.4f}, n_scored={self.n_scored}, "
                f"n_skipped={self.n_skipped})")


def padded_to_mask(padded: Tensor, num_candidates: int) -> Tensor:
    """Turn padded positive ids ``[Q, P]`` (int, ``-1`` = padding) into a bool mask ``[Q, N]``.

    Args:
        padded: ``[Q, P]`` integer tensor of candidate indices in ``[0, num_candidates)``, ``-1``
            where a query has fewer than ``P`` positives. Duplicates are allowed.
        num_candidates: ``N``.

    Returns:
        ``[Q, N]`` bool on the device of ``padded``.

    Raises:
        MetricInputError: ``padded`` is not a 2-D integer tensor, or holds an index outside
            ``[-1, num_candidates)``.
    """
    if not isinstance(padded, Tensor) or padded.dim() != 2 or padded.is_floating_point() \
            or padded.dtype == torch.bool:
        raise MetricInputError(
            f"padded positives must be a 2-D integer tensor [Q, P], got "
            f"{getattr(padded, 'dtype', type(padded).__name__)} of shape "
            f"{tuple(getattr(padded, 'shape', ()))}; pass candidate indices padded with -1")
    bad = (padded < -1) | (padded >= num_candidates)
    if bool(bad.any()):
        q, p = (int(v) for v in bad.nonzero()[0])
        raise MetricInputError(
            f"padded positives hold index {int(padded[q, p])} at [{q}, {p}], outside "
            f"[0, {num_candidates}) (and -1 for padding); check num_candidates={num_candidates}")
    mask = torch.zeros(padded.shape[0], num_candidates + 1, dtype=torch.bool, device=padded.device)
    # Padding (-1) lands in the extra last column, which is dropped.
    mask.scatter_(1, padded.long().remainder(num_candidates + 1), True)
    return mask[:, :num_candidates]


def _check_inputs(scores: Tensor, positives: Tensor, exclude: Tensor | None,
                  chunk_size: int) -> tuple[Tensor, Tensor | None]:
    if not isinstance(scores, Tensor) or scores.dim() != 2 or not scores.is_floating_point():
        raise MetricInputError(
            f"scores must be a 2-D float tensor [Q, N], got "
            f"{getattr(scores, 'dtype', type(scores).__name__)} of shape "
            f"{tuple(getattr(scores, 'shape', ()))}")
    if not isinstance(positives, Tensor):
        raise MetricInputError(f"positives must be a tensor, got {type(positives).__name__}")
    if positives.dtype != torch.bool:
        positives = padded_to_mask(positives, scores.shape[1])
    if positives.shape != scores.shape:
        raise MetricInputError(
            f"positives has shape {tuple(positives.shape)} but scores has {tuple(scores.shape)}; "
            f"pass a bool mask of the same shape or padded ids [Q, P] with -1")
    if exclude is not None:
        if not isinstance(exclude, Tensor) or exclude.dtype != torch.bool \
                or exclude.shape != scores.shape:
            raise MetricInputError(
                f"exclude must be a bool tensor of shape {tuple(scores.shape)}, got "
                f"{getattr(exclude, 'dtype', type(exclude).__name__)} of shape "
                f"{tuple(getattr(exclude, 'shape', ()))}")
        exclude = exclude.to(scores.device)
    nonfinite = ~torch.isfinite(scores)
    if bool(nonfinite.any()):
        q, i = (int(v) for v in nonfinite.nonzero()[0])
        raise MetricInputError(
            f"scores hold {int(nonfinite.sum())} non-finite value(s), e.g. {float(scores[q, i])} at "
            f"[{q}, {i}]; remove candidates with the `exclude` mask instead of -inf / NaN scores")
    if scores.shape[1] == 0:
        raise MetricInputError("scores has 0 candidates (shape [Q, 0]); rank at least one candidate")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise MetricInputError(f"chunk_size must be a positive int, got {chunk_size!r}")
    return positives.to(scores.device), exclude


def _check_ks(ks: int | Iterable[int]) -> list[int]:
    ks_list = [ks] if isinstance(ks, int) else list(ks)
    if not ks_list or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks_list):
        raise MetricInputError(f"ks must be positive ints (e.g. [10, 50]), got {ks!r}")
    return ks_list


def _chunk_ranks(scores: Tensor, pos: Tensor, excl: Tensor | None) -> Tensor:
    """Filtered ranks ``[C, N]`` int64 of the positives; ``N + 1`` for non-positives/excluded."""
    n = scores.shape[1]
    if excl is not None:
        pos = pos & ~excl
    negative = ~pos if excl is None else ~pos & ~excl
    # Non-negatives become -inf so they sort first and never count as ">= a (finite) positive".
    neg_sorted = scores.masked_fill(~negative, float("-inf")).sort(dim=1).values
    below = torch.searchsorted(neg_sorted, scores.contiguous(), right=False)  # #values < score
    ranks = 1 + n - below
    return ranks.masked_fill(~pos, n + 1)


def positive_ranks(scores: Tensor, positives: Tensor, exclude: Tensor | None = None,
                   chunk_size: int = 1024) -> Tensor:
    """Filtered rank of every positive (see the module docstring for the definition).

    Args:
        scores: ``[Q, N]`` float, finite.
        positives: ``[Q, N]`` bool, or padded candidate ids ``[Q, P]`` (int, ``-1`` = padding).
        exclude: optional ``[Q, N]`` bool, candidates removed from the ranking.
        chunk_size: queries per chunk.

    Returns:
        ``[Q, N]`` int64 on the device of ``scores``: the rank (``>= 1``) where the candidate is a
        non-excluded positive, ``N + 1`` elsewhere.

    Raises:
        MetricInputError: shapes or dtypes do not match, or a score is not finite.
    """
    positives, exclude = _check_inputs(scores, positives, exclude, chunk_size)
    out = [_chunk_ranks(scores[s:s + chunk_size], positives[s:s + chunk_size],
                        None if exclude is None else exclude[s:s + chunk_size])
           for s in range(0, scores.shape[0], chunk_size)]
    return torch.cat(out) if out else torch.empty_like(scores, dtype=torch.long)


def ranking_metrics(scores: Tensor, positives: Tensor, ks: int | Iterable[int] = (10, 50),
                    exclude: Tensor | None = None, chunk_size: int = 1024
                    ) -> dict[str, RankingResult]:
    """Recall@K, hit-rate@K, NDCG@K for every K and MRR, in one pass over the scores.

    Args:
        scores: ``[Q, N]`` float, finite (use ``exclude`` rather than ``-inf`` to drop candidates).
        positives: ``[Q, N]`` bool, or padded candidate ids ``[Q, P]`` (int, ``-1`` = padding).
        ks: cut-offs, positive ints.
        exclude: optional ``[Q, N]`` bool; excluded candidates are removed from the ranking.
        chunk_size: queries per chunk; peak memory is a few times ``chunk_size * N`` elements.

    Returns:
        ``{"recall@K", "hit_rate@K", "ndcg@K" for each K, "mrr"}`` -> :class:`RankingResult`,
        per-query values as float64 on the device of ``scores``.

    Raises:
        MetricInputError: shapes or dtypes do not match, a score is not finite, or a K is < 1.
    """
    ks_list = _check_ks(ks)
    positives, exclude = _check_inputs(scores, positives, exclude, chunk_size)
    q_total, n = scores.shape
    kmax = min(max(ks_list), n)
    names = [f"{m}@{k}" for k in ks_list for m in ("recall", "hit_rate", "ndcg")] + ["mrr"]
    parts: dict[str, list[Tensor]] = {name: [] for name in names}
    valid_parts: list[Tensor] = []
    for s in range(0, q_total, chunk_size):
        pos = positives[s:s + chunk_size]
        excl = None if exclude is None else exclude[s:s + chunk_size]
        ranks = _chunk_ranks(scores[s:s + chunk_size], pos, excl)
        n_pos = (ranks <= n).sum(dim=1).double()
        valid = n_pos > 0
        valid_parts.append(valid)
        denom = n_pos.clamp(min=1)
        best = torch.topk(ranks, kmax, dim=1, largest=False, sorted=True).values  # [C, kmax]
        offs = torch.arange(kmax, device=ranks.device)
        positions = (best + offs).double()
        is_pos = offs < n_pos.unsqueeze(1)
        discounts = 1.0 / torch.log2(torch.arange(kmax, device=ranks.device, dtype=torch.float64) + 2)
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=ranks.device)
        for k in ks_list:
            # Real ranks are <= N and the sentinel is N + 1, so cap k at N.
            recall = (is_pos & (positions <= k)).sum(dim=1).double() / denom
            hit = (best[:, 0] <= k).double()
            gain = torch.where(is_pos & (positions <= k), 1.0 / torch.log2(positions + 1), 0.0)
            kk = min(k, kmax)
            ideal = torch.where(is_pos[:, :kk], discounts[:kk], 0.0).sum(dim=1)
            ndcg = gain.sum(dim=1) / ideal.clamp(min=1e-12)
            parts[f"recall@{k}"].append(torch.where(valid, recall, nan))
            parts[f"hit_rate@{k}"].append(torch.where(valid, hit, nan))
            parts[f"ndcg@{k}"].append(torch.where(valid, ndcg, nan))
        parts["mrr"].append(torch.where(valid, 1.0 / best[:, 0].double(), nan))
    valid_all = torch.cat(valid_parts) if valid_parts else torch.zeros(0, dtype=torch.bool)
    return {name: RankingResult(name, torch.cat(v) if v else torch.zeros(0, dtype=torch.float64),
                                valid_all) for name, v in parts.items()}


def recall_at_k(scores: Tensor, positives: Tensor, ks: int | Iterable[int],
                exclude: Tensor | None = None, chunk_size: int = 1024) -> dict[int, RankingResult]:
    """Recall@K per K: per query, (#positives with rank <= K) / #positives.

    Shapes, arguments and errors as in :func:`ranking_metrics`. Returns ``{K: RankingResult}``.
    """
    res = ranking_metrics(scores, positives, ks, exclude, chunk_size)
    return {k: res[f"recall@{k}"] for k in _check_ks(ks)}


def hit_rate_at_k(scores: Tensor, positives: Tensor, ks: int | Iterable[int],
                  exclude: Tensor | None = None, chunk_size: int = 1024) -> dict[int, RankingResult]:
    """Hit-rate@K per K: per query, 1 if any positive has rank <= K else 0.

    Shapes, arguments and errors as in :func:`ranking_metrics`. Returns ``{K: RankingResult}``.
    """
    res = ranking_metrics(scores, positives, ks, exclude, chunk_size)
    return {k: res[f"hit_rate@{k}"] for k in _check_ks(ks)}


def ndcg_at_k(scores: Tensor, positives: Tensor, ks: int | Iterable[int],
              exclude: Tensor | None = None, chunk_size: int = 1024) -> dict[int, RankingResult]:
    """NDCG@K per K with binary relevance; the ideal DCG has ``min(#positives, K)`` hits on top.

    Positions are laid out as in the module docstring. Shapes, arguments and errors as in
    :func:`ranking_metrics`. Returns ``{K: RankingResult}``.
    """
    res = ranking_metrics(scores, positives, ks, exclude, chunk_size)
    return {k: res[f"ndcg@{k}"] for k in _check_ks(ks)}


def mrr(scores: Tensor, positives: Tensor, exclude: Tensor | None = None,
        chunk_size: int = 1024) -> RankingResult:
    """Mean reciprocal rank of the best-ranked positive of each query.

    Shapes, arguments and errors as in :func:`ranking_metrics`.
    """
    return ranking_metrics(scores, positives, 1, exclude, chunk_size)["mrr"]
