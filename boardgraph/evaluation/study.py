"""One evaluation study end to end: run models on seeded splits, compare them, write the report.

:func:`evaluate_graph` is what ``boardgraph evaluate``, ``boardgraph demo`` and
``examples/reproduce_results.py`` call: it runs :func:`~boardgraph.evaluation.harness.run_experiment`,
builds the main table (models x metrics, warm and cold, with paired differences to the reference
models), the Recall@K curves, the similarity histograms, the cross-modal retrieval, an optional
bias audit and optional extra scores (e.g. fill-in-the-blank), and writes them with
:func:`~boardgraph.evaluation.report.write_report`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
from torch import Tensor

from boardgraph.evaluation.audit import audit_board_completion, audit_frame
from boardgraph.evaluation.harness import Experiment, MakeConfig, SplitFn, run_experiment
from boardgraph.evaluation.report import markdown_table, similarity_samples, write_report
from boardgraph.evaluation.sanity import sanity_checks
from boardgraph.evaluation.tables import results_table
from boardgraph.graph import PinBoardGraph
from boardgraph.models import MODEL_KINDS
from boardgraph.schema import GROUP_LABELS, GROUPS

__all__ = ["StudyResult", "evaluate_graph"]

log = logging.getLogger(__name__)

#: ``(model, embeddings [N_pins, E], experiment, seed) -> {column: value}``: extra per-model scores
#: (averaged over seeds) added to the main table, e.g. fill-in-the-blank accuracy.
ExtraScore = Callable[[str, Tensor, Experiment, int], dict[str, float]]


@dataclass
class StudyResult:
    """What :func:`evaluate_graph` produced.

    Attributes:
        experiment: every run (per model and seed), with per-query values.
        table: the main table as written in the report (one row per model).
        report: path of ``report.md``.
        extra: model -> the extra scores averaged over seeds.
        checks: the protocol's sanity checks (:func:`~boardgraph.evaluation.sanity.sanity_checks`), one
            line each, ``"ok: ..."`` or ``"WARNING: ..."``.
        label_table: with ``label=``, the table of label precision@10 (same rows, groups and
            paired differences as ``table``), else None.
    """

    experiment: Experiment
    table: pd.DataFrame
    report: Path
    extra: dict[str, dict[str, float]] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    label_table: pd.DataFrame | None = None


def _cross_modal_table(exp: Experiment) -> pd.DataFrame | None:
    rows = {}
    for m in exp.models:
        runs = [exp.run(m, s).cross_modal for s in exp.seeds]
        if all(r is not None for r in runs):
            sums = [r.summary() for r in runs]  # type: ignore[union-attr]
            rows[m] = {k: sum(s[k] for s in sums) / len(sums) for k in sums[0]}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model") if rows else None


def _audit_section(exp: Experiment, attribute: str, models: Sequence[str], threshold: float) -> str:
    seed = exp.seeds[0]
    split = exp.splits[seed]
    parts = []
    for group in GROUPS:
        audits = {}
        for m in models:
            c = exp.run(m, seed).completion
            if c.metrics(group)["recall@10"].n_scored == 0:
                continue
            audits[m] = audit_board_completion(c, split, attribute, group=group, threshold=threshold)
        if not audits:
            continue
        parts.append(f"**{GROUP_LABELS[group]}**, Recall@10 by `{attribute}` (seed {seed}):\n")
        for m, a in audits.items():
            parts.append(f"- {m}: {a.summary()}")
        frame = audit_frame(audits)
        keep = [c for c in ("model", "group", "n", "mean", "ci_low", "ci_high", "ratio_to_best") if c in frame.columns]
        parts.append("\n" + markdown_table(frame[keep].reset_index(drop=True)) + "\n")
    return "\n".join(parts) if parts else "No scored queries to audit."


def evaluate_graph(graph: PinBoardGraph, out_dir: str | Path, *, models: Sequence[str], seeds: Sequence[int],
                   make_config: MakeConfig | None, title: str, holdout: float = 0.2, cold: float = 0.1,
                   split_fn: SplitFn | None = None, audit_by: Sequence[str] = (), audit_threshold: float = 0.8,
                   extra_score: ExtraScore | None = None, extra_section: Callable[[dict], str] | None = None,
                   notes: str = "", metric: str = "recall@10", versus: Sequence[str] = ("content", "coboard"),
                   **experiment_kwargs: Any) -> StudyResult:
    """Run ``models`` on one split per seed and write ``<out_dir>/report.md`` with its figures.

    Args:
        graph: the full graph.
        out_dir: where the report goes (also the parent of the training runs, unless
            ``make_config`` puts them elsewhere).
        models, seeds, make_config, holdout, cold, split_fn: as in
            :func:`~boardgraph.evaluation.harness.run_experiment`.
        title, notes: the report's heading and introduction (say the data and the command).
        audit_by: pin attributes (feature names) to slice Recall@10 by, for the trained models
            and the first seed; groups whose worst/best ratio is below ``audit_threshold`` are flagged.
        extra_score: per-model scores added as table columns (see :data:`ExtraScore`).
        extra_section: ``extra -> Markdown`` appended as a report section (e.g. FITB counts).
        metric: the headline metric; versus: models every other model is compared with.
        experiment_kwargs: passed on to :func:`~boardgraph.evaluation.harness.run_experiment`;
            its ``label`` also adds a label precision@10 section (``StudyResult.label_table``).
    """

    exp = run_experiment(graph, models, seeds, make_config, holdout=holdout, cold=cold, split_fn=split_fn,
                         **experiment_kwargs)
    table = results_table(exp, metric, versus)
    extra: dict[str, dict[str, float]] = {}
    if extra_score is not None:
        for m in exp.models:
            per_seed = [extra_score(m, exp.run(m, s).embeddings, exp, s) for s in exp.seeds
                        if exp.run(m, s).embeddings is not None]
            if per_seed:
                extra[m] = {k: sum(d[k] for d in per_seed) / len(per_seed) for k in per_seed[0]}
        for m, scores in extra.items():
            for k, v in scores.items():
                table.loc[m, k] = v
    curves = {}
    for g in GROUPS:
        if exp.models and exp.scored(exp.models[0], g, metric):
            for m, row in exp.curves(g).iterrows():
                curves.setdefault(str(m), {})[g] = {int(k): float(v) for k, v in row.items()}
    split0 = exp.splits[exp.seeds[0]]
    sims = {m: similarity_samples(exp.run(m, exp.seeds[0]).embeddings, split0)
            for m in exp.models if exp.run(m, exp.seeds[0]).embeddings is not None}
    sections: dict[str, str | pd.DataFrame] = {}
    label = experiment_kwargs.get("label")
    label_table = results_table(exp, "label_precision@10", versus, also=()) if label is not None else None
    if label_table is not None:
        sections[f"Label precision@10: share of a board's top 10 with the board's {label}"] = label_table
    cm = _cross_modal_table(exp)
    if cm is not None:
        sections["Cross-modal retrieval (image <-> text, mean over seeds)"] = cm
    trained = [m for m in exp.models if m in MODEL_KINDS.names("trained")]
    for attribute in audit_by:
        sections[f"Bias audit by {attribute}"] = _audit_section(exp, attribute, trained, audit_threshold)
    if extra_section is not None and extra:
        sections["Additional scores"] = extra_section(extra)
    if exp.skipped:
        sections["Skipped models"] = "\n".join(f"- {m}: {why}" for m, why in exp.skipped.items())
    checks = sanity_checks(exp, metric)
    for c in checks:
        (log.warning if c.startswith("WARNING") else log.info)("sanity check: %s", c)
    if checks:
        sections["Sanity checks"] = "\n".join(f"- {c}" for c in checks)
    n_q = exp.queries_per_seed(metric)
    how = (f"{len(exp.seeds)} seed(s) {list(exp.seeds)}; per seed about {n_q['warm']:.0f} warm and "
           f"{n_q['cold']:.0f} cold query boards. Warm queries rank every pin that is not cold; "
           f"'cold among new' ranks only the cold pins (new items), 'cold among all' ranks the whole "
           f"catalogue; a board's own training pins never compete. Metric CIs: bootstrap over the "
           f"query boards within seeds; differences (`warm - content` ...): paired bootstrap over the "
           f"query boards of all seeds.")
    report = write_report(out_dir, table, title=title, recall_curves=curves or None, similarity=sims or None,
                          graph=graph, sections=sections, notes=(notes + "\n\n" + how).strip())
    return StudyResult(exp, table, report, extra, checks, label_table)
