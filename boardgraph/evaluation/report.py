"""The evaluation report: one Markdown file with the results table, extra sections and figures.

:func:`write_report` renders a models x metrics table (e.g. ``Experiment.table()``), optional
extra sections (FITB, bias audit, cross-modal retrieval: text or DataFrames) and up to three
figures next to it:

* ``recall_at_k.png``: Recall@K against K per model, one panel per group (warm, cold);
* ``similarity_hist.png``: cosine of held-out pins to their board's centroid against random
  (pin, board) pairs, per model (:func:`similarity_samples` draws both);
* ``degree_distribution.png``: boards per pin and pins per board, log-log.

Figures are drawn with matplotlib's Agg canvas on :class:`matplotlib.figure.Figure` objects,
never through ``pyplot``: nothing is displayed and no global backend is switched. Everything is
written into a temporary folder inside ``out_dir`` first and then moved into place with
``os.replace``, figures first and ``report.md`` last, so a failure leaves the previous report
untouched and a reader never sees a half-written file.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from boardgraph.evaluation.report_html import report_page
from boardgraph.schema import GROUP_LABELS, GROUPS
from boardgraph.graph import MEMBER
from boardgraph.errors import BoardgraphError
from boardgraph.inference.embed import board_centroids

if TYPE_CHECKING:
    from boardgraph.evaluation.splits import DataSplit
    from boardgraph.graph import PinBoardGraph

__all__ = [
    "FIGURES",
    "ReportError",
    "markdown_table",
    "separation_table",
    "similarity_samples",
    "write_report",
]

log = logging.getLogger(__name__)

FIGURES = {"recall": "recall_at_k.png", "similarity": "similarity_hist.png",
           "graph": "degree_distribution.png"}
"""File names of the figures :func:`write_report` may write."""

GROUP_ORDER = GROUPS  # curves are drawn in this order; other groups follow, sorted


class ReportError(BoardgraphError, ValueError):
    """Bad input to the report: malformed curves or score arrays, a split without held-out pairs."""


# ----------------------------------------------------------------------------------- Markdown
def _cell(v: Any, float_format: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return format(float(v), float_format)
    return str(v).replace("|", "\\|").replace("\n", " ")


def markdown_table(df: pd.DataFrame, float_format: str = ".3f") -> str:
    """A DataFrame as a GitHub Markdown table.

    The index becomes the first column unless it is a default ``RangeIndex`` (its header is the
    index name, or ``"model"`` when unnamed); MultiIndex columns are joined with ``" / "``;
    floats use ``float_format``, NaN / None print as ``–``, pipes are escaped.
    """
    show_index = not (isinstance(df.index, pd.RangeIndex) and df.index.name is None
                      and df.index.start == 0 and df.index.step == 1)
    cols = [" / ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in df.columns]
    header = ([str(df.index.name or "model")] if show_index else []) + cols
    lines = ["| " + " | ".join(h.replace("|", "\\|") for h in header) + " |",
             "| " + " | ".join("---" for _ in header) + " |"]
    for idx, row in zip(df.index, df.itertuples(index=False, name=None)):
        cells = ([_cell(" / ".join(map(str, idx)) if isinstance(idx, tuple) else idx, float_format)]
                 if show_index else []) + [_cell(v, float_format) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ inputs
def _check_curves(curves: Mapping[str, Mapping[str, Mapping[int, float]]]) -> list[str]:
    groups: set[str] = set()
    for model, by_group in curves.items():
        if not isinstance(by_group, Mapping) or not by_group:
            raise ReportError(f"recall_curves[{model!r}] must map a group ('warm'/'cold') to "
                              f"{{k: recall}}, got {type(by_group).__name__}")
        for grp, curve in by_group.items():
            if not isinstance(curve, Mapping) or not curve or any(
                    isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in curve):
                raise ReportError(f"recall_curves[{model!r}][{grp!r}] must map positive int k to "
                                  f"recall, got {curve!r}")
            groups.add(str(grp))
    return [g for g in GROUP_ORDER if g in groups] + sorted(groups - set(GROUP_ORDER))


def _check_similarity(similarity: Mapping[str, tuple[Any, Any]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for model, pair in similarity.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ReportError(f"similarity[{model!r}] must be (pos_scores, neg_scores), got "
                              f"{type(pair).__name__}")
        pos, neg = (np.asarray(p.detach().cpu() if isinstance(p, Tensor) else p, dtype=np.float64)
                    .ravel() for p in pair)
        if pos.size == 0 or neg.size == 0 or not (np.isfinite(pos).all() and np.isfinite(neg).all()):
            raise ReportError(f"similarity[{model!r}] needs non-empty finite positive and negative "
                              f"scores, got {pos.size} and {neg.size} values")
        out[str(model)] = (pos, neg)
    return out


def separation_table(similarity: Mapping[str, tuple[Any, Any]]) -> pd.DataFrame:
    """Per model: sample sizes, mean positive and negative cosine and their AUC.

    AUC = P(positive score > negative score) + 0.5 P(equal), from the two samples.
    """
    rows = []
    for model, (pos, neg) in _check_similarity(similarity).items():
        srt = np.sort(neg)
        below = np.searchsorted(srt, pos, side="left")
        equal = np.searchsorted(srt, pos, side="right") - below
        auc = float((below + 0.5 * equal).sum() / (pos.size * neg.size))
        rows.append((model, pos.size, neg.size, pos.mean(), neg.mean(), auc))
    return pd.DataFrame(rows, columns=["model", "n_pos", "n_neg", "mean_pos", "mean_neg",
                                       "auc"]).set_index("model")


# ----------------------------------------------------------------------------------- figures
def _figure(n_panels: int, width: float = 4.2, height: float = 3.4) -> tuple[Figure, list[Any]]:
    ncols = min(n_panels, 3)
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(width * ncols, height * nrows))
    FigureCanvasAgg(fig)
    # fixed margins: a layout engine draws every figure twice (a third of the report's time)
    fig.subplots_adjust(left=0.8 / (width * ncols), right=1 - 0.15 / (width * ncols),
                        bottom=0.5 / (height * nrows), top=1 - 0.5 / (height * nrows),
                        wspace=0.3, hspace=0.45)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _plot_recall(path: Path, curves: Mapping[str, Mapping[str, Mapping[int, float]]],
                 groups: list[str]) -> None:
    fig, axes = _figure(len(groups))
    # ten colours, then the same colours dashed with another marker: every model stays distinct
    colours = [f"C{i}" for i in range(10)]
    styles = {str(m): (colours[i % 10], ("o", "s", "^")[i // 10 % 3], ("-", "--", ":")[i // 10 % 3])
              for i, m in enumerate(curves)}
    for ax, grp in zip(axes, groups):
        ks_all: set[int] = set()
        for model, by_group in curves.items():
            if grp in by_group:
                ks = sorted(int(k) for k in by_group[grp])
                ks_all.update(ks)
                c, mk, ls = styles[str(model)]
                ax.plot(ks, [float(by_group[grp][k]) for k in ks], color=c, marker=mk, linestyle=ls,
                        markersize=4, label=str(model))
        if ks_all and max(ks_all) >= 10 * min(ks_all):
            ax.set_xscale("log")
        ax.set(title=GROUP_LABELS.get(grp, grp), xlabel="K", ylabel="Recall@K", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:   # models missing from the first panel
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h), labels.append(lab)
    width = fig.get_figwidth()
    fig.set_figwidth(width + 1.8)   # room for one legend on the right
    fig.subplots_adjust(left=0.8 / (width + 1.8), right=(width - 0.15) / (width + 1.8))
    fig.legend(handles, labels, loc="center right", fontsize="small", frameon=False)
    fig.savefig(path, format="png", dpi=110)


def _plot_similarity(path: Path, sims: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    fig, axes = _figure(len(sims))
    lo = min(min(p.min(), n.min()) for p, n in sims.values())
    hi = max(max(p.max(), n.max()) for p, n in sims.values())
    bins = np.linspace(lo, hi if hi > lo else lo + 1e-6, 41)
    for ax, (model, (pos, neg)) in zip(axes, sims.items()):
        # stepfilled: one polygon per histogram instead of a patch per bin (much faster)
        ax.hist(neg, bins=bins, density=True, histtype="stepfilled", alpha=0.5,
                label=f"random pairs (n={neg.size})")
        ax.hist(pos, bins=bins, density=True, histtype="stepfilled", alpha=0.5,
                label=f"held-out pin, own board (n={pos.size})")
        ax.set(title=model, xlabel="cosine to board centroid", ylabel="density")
        ax.legend(fontsize="small")
    fig.savefig(path, format="png", dpi=110)


def _plot_degrees(path: Path, graph: PinBoardGraph) -> None:
    fig, axes = _figure(2)
    for ax, (etype, what) in zip(axes, ((MEMBER, "boards per pin (pin degree)"),
                                        (("board", "has", "pin"), "pins per board (board size)"))):
        deg = graph.degree(etype).detach().cpu().numpy()
        values, counts = np.unique(deg[deg > 0], return_counts=True)
        ax.loglog(values, counts, marker="o", linestyle="none", markersize=3)
        ax.set(title=f"{what}\n{int((deg == 0).sum()):,} nodes with degree 0 not shown", xlabel="degree",
               ylabel="number of nodes")
        ax.grid(alpha=0.3, which="both")
    fig.savefig(path, format="png", dpi=110)


# ------------------------------------------------------------------------------------ report
def write_report(out_dir: str | os.PathLike[str], table: pd.DataFrame, *, title: str,
                 recall_curves: Mapping[str, Mapping[str, Mapping[int, float]]] | None = None,
                 similarity: Mapping[str, tuple[Any, Any]] | None = None,
                 graph: PinBoardGraph | None = None,
                 sections: Mapping[str, str | pd.DataFrame] | None = None, notes: str = "",
                 float_format: str = ".3f") -> Path:
    """Write ``report.md`` and its figures into ``out_dir`` (created if needed), atomically, and
    ``report.html``: the same page for a browser, with the plots embedded.

    Args:
        out_dir: the folder; other files in it are left alone, except that figures of a
            previous report this one does not draw are removed (they would be stale).
        table: the main results, one row per model (index = model names), one column per
            metric, warm and cold (e.g. ``Experiment.table()``); rendered by
            :func:`markdown_table`.
        title: the report's heading.
        recall_curves: ``{model: {group: {k: recall}}}`` with groups such as ``"warm"`` and
            ``"cold"`` -> ``recall_at_k.png``.
        similarity: ``{model: (pos_scores, neg_scores)}`` 1-D arrays or tensors (see
            :func:`similarity_samples`) -> ``similarity_hist.png`` and a separation table.
        graph: a ``PinBoardGraph`` -> ``degree_distribution.png`` (boards per pin, pins per
            board, log-log).
        sections: extra ``{heading: Markdown text or DataFrame}`` appended in order (FITB,
            bias audit, cross-modal retrieval, ...).
        notes: a paragraph under the title (data, seeds, commands).
        float_format: format spec of floats in every table.

    Returns:
        The path of ``report.md``.

    Raises:
        ReportError: malformed ``recall_curves`` or ``similarity``; nothing is written then.
        TypeError: ``table`` is not a DataFrame.
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame (models x metrics), got "
                        f"{type(table).__name__}")
    groups = _check_curves(recall_curves) if recall_curves else []
    sims = _check_similarity(similarity) if similarity else {}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".report-", dir=out))
    try:
        figures: dict[str, str] = {}
        if groups:
            _plot_recall(tmp / FIGURES["recall"], recall_curves, groups)  # type: ignore[arg-type]
            figures["recall"] = FIGURES["recall"]
        if sims:
            _plot_similarity(tmp / FIGURES["similarity"], sims)
            figures["similarity"] = FIGURES["similarity"]
        if graph is not None:
            _plot_degrees(tmp / FIGURES["graph"], graph)
            figures["graph"] = FIGURES["graph"]
        md = _markdown(title, notes, table, figures, sims, graph, sections or {}, float_format)
        (tmp / "report.md").write_text(md, encoding="utf-8")
        (tmp / "report.html").write_text(report_page(md, tmp), encoding="utf-8")   # the same, plots embedded
        for name in figures.values():
            os.replace(tmp / name, out / name)
        os.replace(tmp / "report.html", out / "report.html")
        os.replace(tmp / "report.md", out / "report.md")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for key, name in FIGURES.items():
        if key not in figures and (out / name).exists():
            (out / name).unlink()
    log.info("report written to %s (%d figures)", out / "report.md", len(figures))
    return out / "report.md"


def _markdown(title: str, notes: str, table: pd.DataFrame, figures: dict[str, str],
              sims: dict[str, tuple[np.ndarray, np.ndarray]], graph: PinBoardGraph | None,
              sections: Mapping[str, str | pd.DataFrame], float_format: str) -> str:
    parts = [f"# {title}"]
    if notes:
        parts.append(notes.strip())
    parts += ["## Results", markdown_table(table, float_format)]
    if "recall" in figures:
        parts += ["## Recall@K", f"![Recall@K per model, warm and cold]({figures['recall']})"]
    if "similarity" in figures:
        parts += ["## Held-out pins vs random pairs",
                  ("Cosine of each held-out pin to its board's training-pin centroid, against "
                   "random (pin, board) pairs; AUC = P(held-out > random)."),
                  f"![Cosine similarity histograms]({figures['similarity']})",
                  markdown_table(separation_table(sims), float_format)]
    if "graph" in figures and graph is not None:
        n_p, n_b = graph.num_nodes("pin"), graph.num_nodes("board")
        n_e = graph.num_edges(MEMBER)
        parts += ["## Graph", f"{n_p:,} pins, {n_b:,} boards, {n_e:,} memberships.",
                  f"![Degree distributions, log-log]({figures['graph']})"]
    for heading, body in sections.items():
        parts.append(f"## {heading}")
        parts.append(markdown_table(body, float_format) if isinstance(body, pd.DataFrame)
                     else str(body).strip())
    return "\n\n".join(parts) + "\n"


# ----------------------------------------------------------------------------- similarity
def similarity_samples(emb: Tensor, split: DataSplit, n_neg: int | None = None,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cosine scores of held-out pins to their own board and of random (pin, board) pairs.

    A board is the normalised mean of its *training* pins' normalised embeddings in
    ``split.train_graph``, as in :func:`boardgraph.evaluation.completion.board_completion`.

    Args:
        emb: ``[N_pins, E]`` float pin embeddings (rows = pin indices of ``split.graph``); the
            scores are computed on its device.
        split: a :class:`~boardgraph.evaluation.splits.DataSplit`; positives are its ``heldout`` pairs, then
            its ``cold_edges``, on boards with at least one training pin.
        n_neg: number of negatives (default: as many as positives). Each draws a board from the
            positives' boards (so both samples see the same boards) and a pin uniformly from all
            pins, rejecting pins that belong to that board in ``split.graph``.
        seed: seeds the ``torch.Generator`` of the negatives.

    Returns:
        ``(pos [P], neg [n_neg])`` float64 numpy arrays.

    Raises:
        ReportError: ``emb`` does not have one row per pin, the split has no held-out pair on a
            board with training pins, or no non-member pin can be found for the boards.
    """
    g = split.train_graph
    n_pins = g.num_nodes("pin")
    if not isinstance(emb, Tensor) or emb.dim() != 2 or emb.shape[0] != n_pins:
        raise ReportError(f"emb must be [N_pins={n_pins}, E], got "
                          f"{tuple(getattr(emb, 'shape', ())) or type(emb).__name__}")
    dev = emb.device
    en = F.normalize(emb.detach().float(), dim=1)
    deg = g.degree(("board", "has", "pin")).to(dev)
    board_emb = board_centroids(en, g)
    pin = torch.cat([split.heldout[0], split.cold_edges[0]]).to(dev).long()
    board = torch.cat([split.heldout[1], split.cold_edges[1]]).to(dev).long()
    keep = deg[board] > 0
    pin, board = pin[keep], board[keep]
    if pin.numel() == 0:
        raise ReportError("the split holds no held-out membership on a board with training pins; "
                          "split with holdout_fraction > 0 or cold_fraction > 0")
    pos = (en[pin] * board_emb[board]).sum(dim=1)
    n_neg = pin.numel() if n_neg is None else int(n_neg)
    if n_neg < 0:
        raise ReportError(f"n_neg must be >= 0, got {n_neg}")
    gen = torch.Generator().manual_seed(seed)
    boards_q = board.cpu()
    found_p: list[Tensor] = []
    found_b: list[Tensor] = []
    have = 0
    for _ in range(100):
        if have >= n_neg:
            break
        m = 2 * (n_neg - have) + 16
        b = boards_q[torch.randint(0, boards_q.numel(), (m,), generator=gen)]
        p = torch.randint(0, n_pins, (m,), generator=gen)
        gd = split.graph.device
        ok = (split.graph.edge_ids(MEMBER, p.to(gd), b.to(gd), missing="ignore") < 0).cpu()
        found_p.append(p[ok])
        found_b.append(b[ok])
        have += int(ok.sum())
    if have < n_neg:
        raise ReportError(f"found only {have} of {n_neg} (pin, board) pairs that are no "
                          f"membership; the query boards hold almost every pin")
    neg_p = torch.cat(found_p)[:n_neg].to(dev) if found_p else torch.zeros(0, dtype=torch.long, device=dev)
    neg_b = torch.cat(found_b)[:n_neg].to(dev) if found_b else torch.zeros(0, dtype=torch.long, device=dev)
    neg = (en[neg_p] * board_emb[neg_b]).sum(dim=1)
    return pos.double().cpu().numpy(), neg.double().cpu().numpy()
