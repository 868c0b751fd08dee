"""The first pass of an out-of-core build: check each batch of the edge table and turn its kept rows
into fixed-size records (row, source code, destination code, edge attributes).

The checks are the in-memory builder's own functions (consent, null and unknown ids, edge
attributes), applied batch by batch with a :class:`StreamChecker`, which counts across batches and,
in ``raise`` mode, raises after the pass the error the in-memory builder raises first: its checks
run in a fixed order over the whole table, so the first failing *kind* of check wins, not the first
bad row.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..build_report import EDGE_ROWS, BuildReport
from ..checks import Checker, lookup_ids
from ..errors import BuildError, SchemaError
from ..row_filters import apply_consent, check_null_ids, check_unknown_ids, edge_attr_tensors
from .ids import IdDictionary, id_type
from .source import POSITION

__all__ = ["StreamChecker", "ScanPlan", "check_order", "record_dtype", "scan_batch"]

_ATTR_DTYPES = {"weight": np.float32, "timestamp": np.int64, "order": np.int64}


class StreamChecker(Checker):
    """A :class:`Checker` for a table read in batches: :meth:`check` only records (counts and the
    first ten row labels of each reason); :meth:`finish` then raises the first failing check in
    ``order`` (``raise`` mode) or counts every reason in the report (``skip`` mode).

    Args:
        on_error: ``"raise"`` or ``"skip"``.
        report: the build's report.
        order: reasons in the order the in-memory builder checks them.
    """

    def __init__(self, on_error: str, report: BuildReport, order: Sequence[str]) -> None:
        super().__init__(on_error, report)
        self.order = {r: i for i, r in enumerate(order)}
        self.seen: dict[str, dict[str, Any]] = {}

    def check(self, df: pd.DataFrame, bad: np.ndarray, exc: type[BuildError], what: str, column: str | None,
              fix: str, reason: str | None = None, *, scope: str = EDGE_ROWS, detail: str = "") -> np.ndarray:
        n = int(bad.sum())
        if n == 0:
            return ~bad
        key = reason or exc.reason
        s = self.seen.get(key)
        if s is None:
            s = self.seen[key] = {"df": df.iloc[:0], "labels": [], "n": 0,
                                  "args": (exc, what, column, fix, reason), "scope": scope, "detail": detail}
        s["n"] += n
        s["labels"].extend(df.index[bad][:10 - len(s["labels"])].tolist())
        return ~bad

    def finish(self) -> None:
        """Raise the first failing check (``raise`` mode), or add every reason to the report."""
        for _, s in sorted(self.seen.items(), key=lambda kv: self.order.get(kv[0], len(self.order))):
            self.handle(s["df"], s["labels"], s["n"], *s["args"], scope=s["scope"], detail=s["detail"])
        self.seen.clear()


def check_order(src: str, dst: str, tabled: Sequence[str], consent: str | None,
                attrs: Sequence[str | None]) -> list[str]:
    """The reasons of an edge-table build in the order the in-memory builder checks them:
    consent, null ids, each node table's rows and unknown ids, then the edge attributes."""
    out = [f"malformed_{consent}"] if consent else []
    out += [f"null_{src}_id", f"null_{dst}_id"]
    for t in (src, dst):
        if t in tabled:
            out += [f"null_{t}_table_id", f"duplicate_{t}_row", f"unknown_{t}"]
    for col in attrs:
        if col:
            out += [f"nonfinite_{col}", f"malformed_{col}"]
    return out


def record_dtype(max_rows: int, max_src: int, max_dst: int, attrs: Sequence[str]) -> np.dtype:
    """The spill record: ``row`` (position in the table), ``s``, ``d`` (codes) and the edge attributes."""
    def idx(n: int) -> type:
        return np.int32 if n < 2**31 else np.int64
    fields = [("row", np.uint32 if max_rows < 2**32 else np.int64), ("s", idx(max_src)), ("d", idx(max_dst))]
    return np.dtype(fields + [(a, _ATTR_DTYPES[a]) for a in attrs])


@dataclass
class ScanPlan:
    """What :func:`scan_batch` needs: the two sides ``(ntype, column)``, their node tables' ids
    (``None``: codes come from an :class:`IdDictionary`), the edge attribute columns by name, the
    consent column, the checker and the record dtype."""

    sides: tuple[tuple[str, str], tuple[str, str]]
    table_ids: dict[str, pd.Index | None]
    attrs: dict[str, str | None]
    consent: str | None
    checker: StreamChecker
    dtype: np.dtype
    dictionaries: dict[str, IdDictionary] = field(default_factory=dict)

    def codes(self, ntype: str, col: str, values: pd.Series, codes: np.ndarray, uniques: pd.Index,
              all_kept: bool = False) -> np.ndarray:
        """Codes of the kept rows' ids (``codes`` index ``uniques``, all non-null): table positions,
        or dictionary codes in order of first appearance (``all_kept``: every row of the batch is
        kept, so ``uniques`` are already in that order)."""
        ids = self.table_ids.get(ntype)
        if ids is not None:
            return lookup_ids(ids, codes, uniques)
        kind = id_type(values, col)
        d = self.dictionaries.setdefault(ntype, IdDictionary(ntype, kind, col))
        if kind != d.kind:
            raise SchemaError(f"column {col!r} holds {kind} ids in rows from {values.index[0]} on, and "
                              f"{d.kind} ids before", column=col, fix="give every shard the same id type")
        if all_kept:
            return d.encode(uniques)[codes]
        inverse, used = pd.factorize(codes)
        return d.encode(uniques.take(used))[inverse]


def scan_batch(df: pd.DataFrame, plan: ScanPlan, report: BuildReport) -> np.ndarray:
    """The records (``plan.dtype``) of the rows of batch ``df`` that pass every row check, in row
    order; the rows that fail are recorded by ``plan.checker`` (and ``no_consent`` in ``report``)."""
    checker = plan.checker
    if plan.consent is not None:
        df = apply_consent(df, plan.consent, checker, report)
    keep = np.ones(len(df), bool)
    local = []
    for ntype, col in plan.sides:
        c, u = pd.factorize(df[col])
        local.append((c, pd.Index(u)))
        keep = check_null_ids(df, col, ntype, c, local[-1][1], checker, keep)
    for (ntype, col), (c, u) in zip(plan.sides, local):
        if plan.table_ids.get(ntype) is not None:
            keep = check_unknown_ids(df, col, ntype, c, u, plan.table_ids[ntype], checker, keep)
    attrs, keep = edge_attr_tensors(df, plan.attrs.get("weight"), plan.attrs.get("timestamp"),
                                    plan.attrs.get("order"), checker, keep)
    rows = np.flatnonzero(keep)
    recs = np.empty(len(rows), plan.dtype)
    pos = df[POSITION].to_numpy() if POSITION in df.columns else df.index.to_numpy()
    recs["row"] = pos[rows]
    for field_, (ntype, col), (c, u) in zip(("s", "d"), plan.sides, local):
        recs[field_] = plan.codes(ntype, col, df[col], c[rows], u, all_kept=len(rows) == len(c)) if len(rows) else 0
    for name, t in attrs.items():
        recs[name] = t.numpy()[rows]
    return recs

