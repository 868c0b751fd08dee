"""Checks of the evaluation protocol that every results table prints.

Numbers must be able to disappoint: ``random`` must land at ``K / |candidates|`` in every query
group (:func:`random_expectation`, within four standard errors of the hypergeometric null), no
model may exceed the Recall@K ceiling the number of positives allows (:func:`recall_ceiling`), and
a table where ``popularity`` beats every trained kind says so (:func:`sanity_checks`), and so does
a model whose new (cold) pins crowd warm pins out of a joint ranking (:func:`joint_warm_recall`):
the warm and the cold groups rank their candidates apart, and would not show it.
"""
from __future__ import annotations

import dataclasses
import math

import torch

from boardgraph.evaluation.completion import BoardCompletion, Scorer, board_completion, candidate_masks
from boardgraph.evaluation.harness import Experiment
from boardgraph.evaluation.splits import DataSplit
from boardgraph.models import MODEL_KINDS
from boardgraph.schema import GROUP_LABELS, MEMBER

__all__ = ["random_expectation", "recall_ceiling", "joint_warm_recall", "sanity_checks"]


def random_expectation(split: DataSplit, completion: BoardCompletion, group: str, k: int) -> float:
    """Mean over ``group``'s scored query boards of ``min(k, N_q) / N_q``, the Recall@k of random
    scores, where ``N_q`` is the number of pins query ``q`` ranks (its group's candidates minus its
    training pins and, for ``cold_all``, its own warm held-out pins); NaN without queries."""
    return _random_null(split, completion, group, k)[0]


def _random_null(split: DataSplit, completion: BoardCompletion, group: str, k: int) -> tuple[float, float]:
    """``(mean, variance of the mean)`` of random scores' Recall@k over ``group``'s scored queries:
    a query with ``n`` positives among ``N`` ranked pins has hypergeometric hits in its top ``k``
    (mean ``k n / N``, variance ``k (n / N) (1 - n / N) (N - k) / (N - 1)``), divided by ``n``."""
    boards = completion.boards(group)
    if not boards.numel():
        return math.nan, math.nan
    valid = completion.metrics(group)[f"recall@{k}"].valid.cpu()
    if not bool(valid.any()):
        return math.nan, math.nan
    cand = candidate_masks(split)[group]
    pin, board = split.train_graph.edges(MEMBER)
    own = torch.zeros(split.graph.num_nodes("board"), dtype=torch.long)
    own.index_add_(0, board.cpu(), cand[pin.cpu()].long())          # training pins that are candidates
    big_n = cand.sum() - own[boards]
    if group == "cold_all":
        wb = split.heldout[1].cpu()
        mine = torch.zeros_like(own)
        mine.index_add_(0, wb, torch.ones_like(wb))
        big_n = big_n - mine[boards]
    big_n = big_n[valid].double().clamp(min=1)
    n_pos = torch.tensor(completion.per_query(group)["n_heldout"].to_numpy(), dtype=torch.float64)[valid].clamp(min=1)
    kk = big_n.clamp(max=k)
    frac = n_pos / big_n
    var_hits = kk * frac * (1 - frac) * (big_n - kk) / (big_n - 1).clamp(min=1)
    q = big_n.numel()
    return float((kk / big_n).mean()), float((var_hits / n_pos ** 2).sum() / q ** 2)


def recall_ceiling(completion: BoardCompletion, group: str, k: int) -> float:
    """Mean over ``group``'s scored query boards of ``min(k, n_pos) / n_pos``: the highest
    Recall@k any model can reach with ``n_pos`` held-out pins per board; NaN without queries."""
    q = completion.per_query(group)
    valid = completion.metrics(group)[f"recall@{k}"].valid.cpu().numpy()
    if "n_heldout" not in q or not valid.any():
        return math.nan
    n = q["n_heldout"].to_numpy()[valid].clip(min=1)
    return float((n.clip(max=k) / n).mean())


def joint_warm_recall(emb: "torch.Tensor | Scorer", split: DataSplit, k: int = 10) -> float:
    """Warm Recall@k of embeddings ``emb [N_pins, E]`` (or of a scorer) when the cold pins are candidates too: the
    ranking a deployment that mixes new and known pins would serve (the ``warm`` group leaves
    cold pins out). Far below the warm figure, cold pins crowd warm pins out of the top k."""
    none = split.cold_edges[0][:0]
    joint = dataclasses.replace(split, candidates=torch.ones(split.graph.num_nodes("pin"), dtype=torch.bool),
                                cold_edges=(none, split.cold_edges[1][:0]))   # only the warm queries are scored
    return float(board_completion(emb, joint, ks=(k,)).warm[f"recall@{k}"].mean)


def _joint_check(exp: Experiment, k: int) -> list[str]:
    """One line on the trained models' warm Recall@k when cold pins are ranked too: a warning for
    each model whose figure halves, else an ``ok`` line with every model's two figures."""
    figures, out = [], []
    for m in (m for m in exp.models if m in MODEL_KINDS.names("trained")):
        runs = [exp.run(m, s) for s in exp.seeds]
        if any(r.embeddings is None for r in runs) or not exp.splits[exp.seeds[0]].cold_pins.numel():
            continue
        warm = sum(float(r.completion.warm[f"recall@{k}"].mean) for r in runs) / len(runs)
        joint = sum(joint_warm_recall(r.scorer if r.scorer is not None else r.embeddings, exp.splits[r.seed], k)
                    for r in runs) / len(runs)
        figures.append(f"{m} {joint:.3f} of {warm:.3f}")
        if joint < 0.5 * warm:
            out.append(f"WARNING: {m}'s warm Recall@{k} falls from {warm:.3f} to {joint:.3f} when cold pins are "
                       f"ranked too: its new pins crowd known pins out of a joint top {k}, so its cold among all "
                       f"pins figure overstates what a mixed catalogue would serve")
    if figures and not out:
        out.append(f"ok: warm Recall@{k} with the cold pins ranked too (a joint catalogue): {', '.join(figures)}")
    return out


def sanity_checks(exp: Experiment, metric: str = "recall@10") -> list[str]:
    """Checks of the protocol that every results table prints, one line each.

    * ``random`` lands at ``K / |candidates|`` (:func:`random_expectation`) in every group, within
      four standard errors of the mean that random scores would give (hypergeometric hits per
      query; else: a bug in the protocol).
    * No model exceeds the Recall@K ceiling that the number of positives allows (:func:`recall_ceiling`).
    * A warning when ``popularity`` beats every trained model on warm ``metric``.
    * A warning when a trained model's warm Recall@K halves once cold pins are candidates too
      (:func:`joint_warm_recall`; needs the runs' embeddings).
    """
    k = int(metric.split("@")[1]) if metric.startswith("recall@") else 10
    name = f"recall@{k}"
    out: list[str] = []
    if "random" in exp.models:
        for g in exp.scored_groups(name):
            null = [_random_null(exp.splits[s], exp.run("random", s).completion, g, k) for s in exp.seeds]
            want = sum(m for m, _ in null) / len(null)
            se = math.sqrt(sum(v for _, v in null)) / len(null)   # of the mean of the per-seed means
            got = sum(float(exp.run("random", s).completion.metrics(g)[name].mean) for s in exp.seeds) / len(exp.seeds)
            ok = abs(got - want) <= 4 * se + 1e-9
            out.append(f"{'ok' if ok else 'WARNING'}: random {GROUP_LABELS[g]} Recall@{k} {got:.4f} vs "
                       f"K / |candidates| {want:.4f}" + ("" if ok else " (more than 4 standard errors apart: "
                                                         "check the protocol)"))
    for g in exp.scored_groups(name):
        ceil = sum(recall_ceiling(exp.run(exp.models[0], s).completion, g, k) for s in exp.seeds) / len(exp.seeds)
        over = [m for m in exp.models
                if sum(float(exp.run(m, s).completion.metrics(g)[name].mean) for s in exp.seeds) / len(exp.seeds)
                > ceil + 1e-9]
        if over:
            out.append(f"WARNING: {', '.join(over)} exceed the {GROUP_LABELS[g]} Recall@{k} ceiling {ceil:.3f} that "
                       f"the number of held-out pins per board allows: a bug in the protocol")
    trained = [m for m in exp.models if m in MODEL_KINDS.names("trained")]
    if "popularity" in exp.models and trained and "warm" in exp.scored_groups(name):
        mean = lambda m: sum(exp.run(m, s).completion.warm[name].mean for s in exp.seeds) / len(exp.seeds)  # noqa: E731
        best = max(trained, key=mean)
        if mean("popularity") > mean(best):
            out.append(f"WARNING: popularity ({mean('popularity'):.3f}) beats every trained model on warm "
                       f"Recall@{k} (best: {best} {mean(best):.3f})")
    return out + _joint_check(exp, k)
