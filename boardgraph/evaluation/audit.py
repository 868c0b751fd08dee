"""Bias audit: a per-query metric sliced by an attribute, with bootstrap CIs and a worst/best flag.

:func:`audit` takes per-query values and one group label per query, and reports every group's
count, mean and bootstrap confidence interval, plus the ratio of the worst to the best group mean
(:func:`boardgraph.evaluation.stats.slice_metric`); the slice is flagged when the ratio falls below
``threshold`` (0.8, the "four-fifths" rule of thumb).

:func:`audit_board_completion` slices a :class:`~boardgraph.evaluation.completion.BoardCompletion` by an
attribute of the held-out pins: a category, a brand, or a numeric column such as price cut into
quantile bands. When the result carries the rank of every held-out membership
(``warm_pairs`` / ``cold_pairs``), each held-out pin is one unit labelled by its own attribute
(``recall@K`` and ``hit_rate@K`` become ``rank <= K``, ``mrr`` ``1 / rank``, ``ndcg@K``
``1 / log2(1 + rank)`` within the cut-off). Otherwise the unit is the query board, which can hold
out several pins: a board whose held-out pins disagree on the attribute is labelled ``"mixed"``
(default), dropped, or counted once in each of its groups (``mixed="expand"``; its values are then
not independent).
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from boardgraph.evaluation.metrics import MetricInputError, RankingResult
from boardgraph.evaluation.stats import SliceResult, bootstrap_ci, slice_metric

if TYPE_CHECKING:
    from boardgraph.evaluation.splits import DataSplit
    from boardgraph.evaluation.completion import BoardCompletion

__all__ = [
    "MIXED",
    "AuditResult",
    "attribute_labels",
    "matching_labels",
    "majority_board_label",
    "audit",
    "audit_board_completion",
    "audit_frame",
]

MIXED = "mixed"
"""Label of a board whose held-out pins fall in different groups (``mixed="mixed"``)."""

_COLUMNS = ["metric", "group", "n", "mean", "ci_low", "ci_high", "ratio_to_best"]


@dataclass(frozen=True)
class AuditResult:
    """One metric sliced by one attribute.

    Attributes:
        metric: the metric's name, e.g. ``"cold_recall@10"``.
        table: one row per group, sorted by label: ``metric``, ``group``, ``n`` (scored
            queries), ``mean``, ``ci_low``, ``ci_high`` (bootstrap interval of the group mean;
            NaN for an empty group), ``ratio_to_best`` (group mean / best qualifying group mean).
        slice: the :class:`~boardgraph.evaluation.stats.SliceResult` behind it (ratio, worst and best).
        attribute: what the groups are (e.g. ``"category"``), for reports.
        unit: what one value is: ``"query"`` (:func:`audit`), ``"pin"`` or ``"board"``
            (:func:`audit_board_completion`).
    """

    metric: str
    table: pd.DataFrame
    slice: SliceResult
    attribute: str = ""
    unit: str = "query"

    @property
    def flagged(self) -> bool:
        """``True`` when worst / best group mean is below the threshold."""
        return self.slice.flagged

    @property
    def worst_best_ratio(self) -> float:
        return self.slice.worst_best_ratio

    def summary(self) -> str:
        """One line: ratio, worst and best groups, and whether the slice is flagged."""
        s = self.slice
        by = f" by {self.attribute}" if self.attribute else ""
        by += f" (per {self.unit})" if self.unit != "query" else ""
        verdict = f"FLAGGED (< {s.threshold:g})" if s.flagged else f"ok (>= {s.threshold:g})"
        return (f"{self.metric}{by}: worst/best = {s.worst_best_ratio:.3f} "
                f"(worst {s.worst!r}, best {s.best!r}) {verdict}")


def audit(per_query: RankingResult | Tensor | Sequence[float], groups: Any, metric_name: str,
          threshold: float = 0.8, *, min_count: int = 1, n_boot: int = 1000, seed: int = 0,
          ci: float = 0.95, attribute: str = "", unit: str = "query") -> AuditResult:
    """Slice a per-query metric by group labels: per-group n, mean and CI, and the worst/best flag.

    Args:
        per_query: ``[Q]`` values (or a :class:`RankingResult`); NaN (skipped) queries count in
            no group.
        groups: ``[Q]`` labels aligned with the queries (list, array, Series or tensor); missing
            labels (None / NaN) are left out and counted in ``slice.n_unlabelled``.
        metric_name: the name shown in the table.
        threshold: flag when worst / best group mean ``< threshold``.
        min_count: groups with fewer scored queries are reported but take no part in the ratio.
        n_boot, seed, ci: bootstrap of each group's mean
            (:func:`boardgraph.evaluation.stats.bootstrap_ci`; the same seed for every group).
        attribute, unit: kept for reports (see :class:`AuditResult`).

    Raises:
        MetricInputError: ``groups`` does not have one label per query, or as in
            :func:`~boardgraph.evaluation.stats.bootstrap_ci`.
    """
    values = per_query.per_query if isinstance(per_query, RankingResult) else per_query
    values = torch.as_tensor(values).detach().to("cpu", torch.float64)
    sl = slice_metric(values, groups, threshold=threshold, min_count=min_count)
    labels = groups.detach().cpu().numpy() if isinstance(groups, Tensor) else np.asarray(groups, dtype=object)
    codes, _ = pd.factorize(pd.Series(labels), sort=True)  # the group order of slice_metric
    finite = torch.isfinite(values).numpy()
    best = float(sl.means[sl.groups.index(sl.best)]) if sl.best is not None else float("nan")
    rows = []
    for g, label in enumerate(sl.groups):
        v = values[torch.from_numpy((codes == g) & finite)]
        lo = hi = float("nan")
        if v.numel():
            b = bootstrap_ci(v, n_boot=n_boot, seed=seed, ci=ci)
            lo, hi = b.low, b.high
        mean = float(sl.means[g])
        rows.append((metric_name, label, int(sl.counts[g]), mean, lo, hi,
                     mean / best if best > 0 else float("nan")))
    return AuditResult(metric_name, pd.DataFrame(rows, columns=_COLUMNS), sl, attribute, unit)


# ------------------------------------------------------------------------- board completion
def attribute_labels(graph: Any, attribute: str | pd.Series | np.ndarray | Sequence[Any], *,
                     bins: int | None = None) -> np.ndarray:
    """One label per pin (``[N_pins]`` object array, ``None`` where missing) of an attribute.

    Args:
        graph: the ``PinBoardGraph`` whose pin indices the labels follow.
        attribute: a pin feature column of ``graph`` by name (categorical, text, numeric or
            label); a pandas Series indexed by external pin id (e.g.
            ``items.set_index("pin_id")["brand"]``; pins it lacks are missing); or an array with
            one value per pin index.
        bins: cut a numeric attribute into this many quantile bands (over all pins with a value,
            so every model and group shares the bands), labelled ``"Q1 [lo, hi]"``, ``"Q2 (lo,
            hi]"``, ...; equal quantiles merge, so there may be fewer. Default: 4 for a numeric
            attribute; pass ``bins=0`` to keep numeric values as labels.

    Raises:
        KeyError: the graph has no pin feature of that name.
        MetricInputError: an array does not have one value per pin, a tensor feature is not
            1-D, or ``bins`` is negative.
    """
    n = graph.num_nodes("pin")
    if isinstance(attribute, str):
        col = graph.features("pin")[attribute]
        if isinstance(col, Tensor):
            if col.dim() != 1:
                raise MetricInputError(f"pin feature {attribute!r} is a tensor of shape "
                                       f"{tuple(col.shape)}; audit a 1-D attribute")
            col = col.detach().cpu().numpy()
        series = pd.Series(col).reset_index(drop=True)
    elif isinstance(attribute, pd.Series):
        series = attribute.reindex(pd.Index(graph.ids("pin"))).reset_index(drop=True)
    else:
        arr = attribute.detach().cpu().numpy() if isinstance(attribute, Tensor) else np.asarray(attribute)
        series = pd.Series(arr)
    if len(series) != n:
        raise MetricInputError(f"attribute has {len(series)} values but the graph has {n} pins; "
                               f"give one value per pin index, or a Series indexed by pin id")
    if bins is not None and bins < 0:
        raise MetricInputError(f"bins must be >= 0, got {bins!r}")
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if numeric and bins != 0:
        series = _quantile_bands(series.astype("float64"), 4 if bins is None else bins)
    out = series.astype(object).to_numpy(copy=True)
    out[pd.isna(out)] = None
    return out


def matching_labels(graph: Any, name: str) -> tuple[Tensor, Tensor]:
    """``(board_label int64 [N_boards], pin_label int64 [N_pins])``: the column ``name`` of both the
    board and the pin features, coded on one shared vocabulary (``-1`` where missing), for
    :func:`~boardgraph.evaluation.completion.label_precision` (e.g. ``"style"`` on the synthetic
    lookbooks: a board's style and each pin's).

    Raises:
        KeyError: the boards or the pins have no feature ``name`` (the message lists what they have).
    """
    cols = []
    for kind in ("board", "pin"):
        feats = graph.features(kind)
        if name not in feats.names():
            raise KeyError(f"{kind}s have no feature {name!r} to match on (they have {sorted(feats.names())}); "
                           f"label precision needs the same column on boards and pins")
        col = feats[name]
        cols.append(pd.Series(col.detach().cpu().numpy() if isinstance(col, Tensor) else np.asarray(col)))
    codes, _ = pd.factorize(pd.concat(cols, ignore_index=True).astype(object), use_na_sentinel=True)
    codes = torch.as_tensor(codes.astype(np.int64))
    return codes[: len(cols[0])], codes[len(cols[0]):]


def majority_board_label(graph: Any, name: str) -> np.ndarray:
    """The most common value of pin feature ``name`` among each board's pins (``[N_boards]`` object
    array; the smallest value on ties, ``None`` for a board without labelled pins), e.g. a user
    history's main taste group: add it as a board label to score
    :func:`~boardgraph.evaluation.completion.label_precision` against it.

    Raises:
        KeyError: the pins have no feature ``name``.
    """
    pin = pd.Series(attribute_labels(graph, name, bins=0))
    indptr, indices, _ = graph.csr(("board", "has", "pin"))
    lens = (indptr[1:] - indptr[:-1]).numpy()
    frame = pd.DataFrame({"board": np.repeat(np.arange(len(lens)), lens), "value": pin.iloc[indices.numpy()].to_numpy()})
    counts = frame.dropna().groupby(["board", "value"]).size().reset_index(name="n")
    best = counts.sort_values(["board", "n", "value"], ascending=[True, False, True]).drop_duplicates("board")
    out = np.full(len(lens), None, dtype=object)
    out[best["board"].to_numpy()] = best["value"].to_numpy()
    return out


def _quantile_bands(values: pd.Series, q: int) -> pd.Series:
    cut = pd.qcut(values, q=q, duplicates="drop")
    cats = cut.cat.categories
    width = len(str(len(cats)))
    names = [f"Q{i + 1:0{width}d} {'[' if i == 0 else '('}{iv.left:.4g}, {iv.right:.4g}]"
             for i, iv in enumerate(cats)]
    # qcut widens the lowest edge a little below the minimum; show the real minimum instead
    if len(cats):
        names[0] = f"Q{1:0{width}d} [{values.min():.4g}, {cats[0].right:.4g}]"
    return cut.cat.rename_categories(names).astype(object)


def _board_labels(boards: Tensor, pairs: tuple[Tensor, Tensor], pin_labels: np.ndarray,
                  mixed: str) -> tuple[np.ndarray, np.ndarray]:
    """(query row ``[R]``, label ``[R]``) for query boards ``[Q]`` from their held-out pins."""
    pin, board = (t.detach().cpu().numpy() for t in pairs)
    q_boards = boards.detach().cpu().numpy()
    row_of = pd.Series(np.arange(q_boards.size), index=q_boards)
    keep = np.isin(board, q_boards)
    df = pd.DataFrame({"row": row_of.reindex(board[keep]).to_numpy(),
                       "label": pin_labels[pin[keep]]}).dropna(subset=["label"])
    df = df.drop_duplicates()
    if mixed == "expand":
        rows, labels = df["row"].to_numpy(np.int64), df["label"].to_numpy(object)
        unlabelled = np.setdiff1d(np.arange(q_boards.size), rows)   # kept, counted as unlabelled
        return (np.concatenate([rows, unlabelled]),
                np.concatenate([labels, np.full(unlabelled.size, None, dtype=object)]))
    n_labels = df.groupby("row")["label"].transform("size")
    single = df[n_labels == 1].set_index("row")["label"]
    out = np.full(q_boards.size, None, dtype=object)
    out[single.index.to_numpy(np.int64)] = single.to_numpy(object)
    if mixed == "mixed":
        out[np.unique(df.loc[n_labels > 1, "row"].to_numpy(np.int64))] = MIXED
    return np.arange(q_boards.size), out


def _pair_values(pairs: Any, metric: str) -> Tensor:
    """float64 ``[H]`` per held-out membership from its rank (see the module docstring)."""
    ranks = pairs.ranks.detach().cpu().double()
    name, _, k = metric.partition("@")
    if name == "mrr" and not k:
        return 1.0 / ranks
    if k.isdigit() and name in ("recall", "hit_rate"):
        return (ranks <= int(k)).double()
    if k.isdigit() and name == "ndcg":
        return torch.where(ranks <= int(k), 1.0 / torch.log2(ranks + 1.0), 0.0)
    raise MetricInputError(f"metric {metric!r} has no per-pin form; use recall@K, hit_rate@K, "
                           f"ndcg@K or mrr, or per='board'")


def audit_board_completion(result: BoardCompletion, split: DataSplit,
                           attribute: str | pd.Series | np.ndarray | Sequence[Any], *,
                           group: Literal["warm", "cold", "cold_all"] = "cold", metric: str = "recall@10",
                           per: Literal["auto", "pin", "board"] = "auto", bins: int | None = None,
                           mixed: Literal["mixed", "drop", "expand"] = "mixed",
                           threshold: float = 0.8, min_count: int = 1, n_boot: int = 1000,
                           seed: int = 0, ci: float = 0.95) -> AuditResult:
    """Audit board completion by an attribute of the held-out pins (see the module docstring).

    Args:
        result: :func:`boardgraph.evaluation.completion.board_completion` of one model on ``split``.
        split: the split it was computed on (pin indices of ``split.graph``; its ``heldout`` /
            ``cold_edges`` give each query board's held-out pins).
        attribute: as in :func:`attribute_labels` (a pin feature name, a Series by pin id, or an
            array per pin index), e.g. ``"category"``, ``"brand"``, ``"price"``.
        group: ``"warm"``, ``"cold"`` (among new items) or ``"cold_all"`` (among all pins) queries.
        metric: e.g. ``"recall@10"`` or ``"mrr"``; per pin any ``recall@K``, ``hit_rate@K``,
            ``ndcg@K`` or ``mrr``, per board a metric the result holds.
        per: ``"pin"``: one value per held-out membership, from ``result.<group>_pairs`` (their
            ranks); ``"board"``: the per-board values, labelled through ``mixed``; ``"auto"``
            (default): ``"pin"`` when the result has the pairs, else ``"board"``.
        bins: quantile bands of a numeric attribute (default 4; see :func:`attribute_labels`).
        mixed: with ``per="board"``, a board whose held-out pins carry different labels is
            labelled :data:`MIXED` (``"mixed"``), left unlabelled (``"drop"``) or counted in each
            of its groups (``"expand"``).
        threshold, min_count, n_boot, seed, ci: as in :func:`audit`.

    Returns:
        :class:`AuditResult` named ``f"{group}_{metric}"`` with ``unit`` ``"pin"`` or ``"board"``.

    Raises:
        MetricInputError: unknown ``group``, ``metric``, ``per`` or ``mixed``; ``per="pin"``
            without the pairs in the result; or as in :func:`audit`.
    """
    if group not in ("warm", "cold", "cold_all"):
        raise MetricInputError(f"group must be 'warm', 'cold' or 'cold_all', got {group!r}")
    if mixed not in ("mixed", "drop", "expand"):
        raise MetricInputError(f"mixed must be 'mixed', 'drop' or 'expand', got {mixed!r}")
    if per not in ("auto", "pin", "board"):
        raise MetricInputError(f"per must be 'auto', 'pin' or 'board', got {per!r}")
    pairs = getattr(result, f"{group}_pairs", None)
    if per == "pin" and pairs is None:
        raise MetricInputError(f"the result has no {group}_pairs (ranks of the held-out "
                               f"memberships); use per='board' or a newer board_completion")
    labels = attribute_labels(split.graph, attribute, bins=bins)
    name = attribute if isinstance(attribute, str) else str(getattr(attribute, "name", "") or "")
    if per == "pin" or (per == "auto" and pairs is not None):
        values = _pair_values(pairs, metric)
        pin_labels = labels[pairs.pins.detach().cpu().numpy()]
        return audit(values, pin_labels, f"{group}_{metric}", threshold, min_count=min_count,
                     n_boot=n_boot, seed=seed, ci=ci, attribute=name, unit="pin")
    metrics = result.warm if group == "warm" else result.cold
    if metric not in metrics:
        raise MetricInputError(f"no metric {metric!r} in the {group} results; have {sorted(metrics)}")
    boards = result.warm_boards if group == "warm" else result.cold_boards
    held = split.heldout if group == "warm" else split.cold_edges
    rows, board_labels = _board_labels(boards, held, labels, mixed)
    values = metrics[metric].per_query.detach().cpu().double()[torch.from_numpy(rows)]
    return audit(values, board_labels, f"{group}_{metric}", threshold, min_count=min_count,
                 n_boot=n_boot, seed=seed, ci=ci, attribute=name, unit="board")


def audit_frame(audits: dict[Hashable, AuditResult], key: str = "model") -> pd.DataFrame:
    """Stack the tables of several audits (e.g. one per model) under a leading ``key`` column,
    with each audit's ``flagged`` verdict on its rows."""
    cols = [key, *_COLUMNS, "flagged"]
    frames = [a.table.assign(flagged=a.flagged, **{key: k}) for k, a in audits.items()]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)
