"""The results table of an :class:`~boardgraph.evaluation.harness.Experiment`, built once.

:func:`results_table` is the frame (models x columns, cells formatted as in the reports);
:func:`format_table` renders it as Markdown with the notes under it (seeds, query boards,
skipped models) and the protocol's sanity checks (:func:`~boardgraph.evaluation.sanity.sanity_checks`).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from boardgraph.evaluation.harness import Experiment
from boardgraph.evaluation.report import markdown_table
from boardgraph.evaluation.sanity import sanity_checks
from boardgraph.schema import GROUP_LABELS, GROUPS

__all__ = ["results_table", "format_table"]


def _fmt_ci(est: float, lo: float, hi: float, signed: bool = False) -> str:
    if not math.isfinite(est):
        return "-"
    f = "+.3f" if signed else ".3f"
    return f"{est:{f}} [{lo:{f}}, {hi:{f}}]"


def results_table(exp: Experiment, metric: str = "recall@10", versus: Sequence[str] = ("content", "coboard"),
                  n_boot: int = 1000, also: Sequence[str] = ("recall@50", "mrr")) -> pd.DataFrame:
    """Models x metrics: ``metric`` (mean over seeds [95% CI]) for every scored group, named by
    :data:`~boardgraph.schema.GROUP_LABELS` (``warm``, ``cold among new items``, ``cold among all
    pins``), the means of the ``also`` metrics, the cold-among-all / warm ratio (for a recall
    ``metric``), and the paired difference of ``metric`` to each model of ``versus`` that ran
    (pooled over seeds [95% CI]; ``-`` against itself). Groups without scored queries (e.g. no
    warm hold-out) are left out."""
    t = exp.table(metrics=(metric, *also), ratio=metric, n_boot=n_boot)
    groups = exp.scored_groups(metric)
    others = list(dict.fromkeys(o for o in versus if o in exp.models))
    lab = GROUP_LABELS
    rows = {}
    for model in exp.models:
        r, row = t.loc[model], {}
        for g in groups:
            row[f"{lab[g]} {metric}"] = _fmt_ci(*(r[(f"{g} {metric}", s)] for s in ("mean", "low", "high")))
        for m in also:
            for g in groups:
                if m != metric and (f"{g} {m}", "mean") in t.columns:
                    row[f"{lab[g]} {m}"] = float(r[(f"{g} {m}", "mean")])
        if {"warm", "cold_all"} <= set(groups) and metric.startswith("recall@"):
            row[f"cold among all pins / warm {metric}"] = float(r[(f"cold_all/warm {metric}", "mean")])
        for o in others:
            for g in groups:
                if o == model:
                    row[f"{lab[g]} - {o}"] = "-"
                else:
                    d = exp.paired(model, o, metric, g, n_boot=n_boot)
                    row[f"{lab[g]} - {o}"] = _fmt_ci(d.estimate, d.low, d.high, signed=True)
        rows[model] = row
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "model"
    return df


def format_table(exp: Experiment, metric: str = "recall@10", reference: str = "content",
                 versus: Sequence[str] = ("coboard",), n_boot: int = 1000) -> str:
    """:func:`results_table` against ``reference`` and ``versus`` as Markdown, then one line with the
    seeds and the query boards per seed, the skipped models, and the sanity checks."""
    lines = [markdown_table(results_table(exp, metric, (reference, *versus), n_boot))]
    nq = exp.queries_per_seed(metric)
    lines.append("")
    lines.append(f"{len(exp.seeds)} seed(s) {exp.seeds}; per seed "
                 + ", ".join(f"{nq[g]:.0f} {GROUP_LABELS[g]}" for g in GROUPS) + " query boards; metric CIs: "
                 "bootstrap over query boards within seeds; differences: paired bootstrap over the query boards "
                 "of all seeds.")
    lines.extend(f"Skipped {m}: {why}." for m, why in exp.skipped.items())
    checks = sanity_checks(exp, metric)
    if checks:
        lines.append("")
        lines.extend(f"- {c}" for c in checks)
    return "\n".join(lines)
