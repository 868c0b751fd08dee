"""Checking the rows of a builder's input tables: the raise-or-skip :class:`Checker`, ids, numbers.

In ``raise`` mode the first bad value raises a specific
:class:`~boardgraph.graph.errors.BuildError` naming the column, the rows (and, for a CSV, the file
lines) and the fix; in ``skip`` mode the rows are dropped (or the values set missing) and counted
in the :class:`~boardgraph.graph.build_report.BuildReport`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .build_report import EDGE_ROWS, BuildReport
from .errors import BuildError, SchemaError, format_rows

__all__ = ["Checker", "F32_MAX", "require_columns", "null_ids", "lookup_ids", "id_kind", "parse_numeric",
           "nonfinite_fix"]

_CURRENCY = r"[\s$€£¥,]|USD|EUR|GBP"
#: The largest float32: weights and numeric features beyond it are refused (the models read float32).
F32_MAX = float(np.finfo(np.float32).max)


class Checker:
    """Raises (``on_error="raise"``) or drops-and-counts (``"skip"``) bad rows of one table."""

    def __init__(self, on_error: str, report: BuildReport) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.skip = on_error == "skip"
        self.report = report

    def where(self, df: pd.DataFrame, labels: list[Any], n: int) -> str:
        """``rows 3, 7 (line 5, 9 of pins.csv)``: the offending rows, and their lines in a CSV file."""
        s = format_rows(labels, n)
        src = df.attrs.get("source_csv")
        # read_table gives a CSV a RangeIndex; subsets keep those labels, so line = label + 2
        if src is not None and pd.api.types.is_integer_dtype(df.index.dtype):
            lines = ", ".join(str(int(i) + 2) for i in labels[:5])
            s += f" (line {lines} of {Path(src).name})"
        return s

    def check(self, df: pd.DataFrame, bad: np.ndarray, exc: type[BuildError], what: str, column: str | None,
              fix: str, reason: str | None = None, *, scope: str = EDGE_ROWS, detail: str = "") -> np.ndarray:
        """Handle rows where ``bad`` (bool ``[len(df)]``) is set; returns the mask of rows to keep.

        ``scope`` says what a skipped row costs (see :class:`BuildReport`); ``detail`` follows the
        row list in the message (e.g. why the first image cannot be read).
        """
        n = int(bad.sum())
        if n == 0:
            return ~bad
        self.handle(df, df.index[bad][:10].tolist(), n, exc, what, column, fix, reason, scope=scope, detail=detail)
        return ~bad

    def handle(self, df: pd.DataFrame, labels: list[Any], n: int, exc: type[BuildError], what: str,
               column: str | None, fix: str, reason: str | None = None, *, scope: str = EDGE_ROWS,
               detail: str = "") -> None:
        """Raise (``raise`` mode) or count under ``reason`` (``skip`` mode) ``n`` bad rows of ``df``,
        the first of which are ``labels``; the arguments are :meth:`check`'s."""
        msg = f"{what} in {self.where(df, labels, n)}" + (f": {detail}" if detail else "")
        if not self.skip:
            raise exc(msg, column=column, rows=labels, fix=fix + " (or pass on_error='skip' to drop and count them)")
        reason = reason or exc.reason
        if self.report.scopes.get(reason, scope) != scope:  # one column both an edge attribute and a feature
            reason = f"{reason}_{scope}"
        self.report.add(reason, n, labels, msg, scope=scope)


def require_columns(df: pd.DataFrame, cols: Sequence[str | None], what: str, hint: str) -> None:
    """Raise :class:`SchemaError` naming the first of ``cols`` (``None`` entries skipped) not in ``df``."""
    missing = [c for c in cols if c is not None and c not in df.columns]
    if missing:
        raise SchemaError(f"{what} table has no column {missing[0]!r} (it has {list(df.columns)})",
                          column=missing[0], fix=hint)


def null_ids(codes: np.ndarray, uniques: pd.Index) -> np.ndarray:
    """Rows whose id is null (code -1) or an empty / blank string (checked once per distinct id)."""
    bad = codes < 0
    if uniques.dtype == object:  # mixed values: only strings can be blank
        blank = np.fromiter((isinstance(v, str) and not v.strip() for v in uniques), bool, len(uniques))
    elif pd.api.types.is_string_dtype(uniques.dtype):
        blank = np.asarray((pd.Series(uniques, copy=False).str.strip() == "").fillna(False), bool)
    else:
        return bad
    if blank.any():
        bad |= np.isin(codes, np.flatnonzero(blank))
    return bad


def lookup_ids(index: pd.Index, codes: np.ndarray, uniques: pd.Index) -> np.ndarray:
    """Position in ``index`` of each row's id (int64 ``[len(codes)]``; -1 for null or unknown ids)."""
    out = np.full(len(codes), -1, np.int64)
    have = codes >= 0
    out[have] = index.get_indexer(uniques)[codes[have]]
    return out


def id_kind(values: pd.Series | pd.Index) -> str:
    """``"strings"`` for text ids, else the dtype's name (``"int64"``): names mismatched id columns."""
    if pd.api.types.is_string_dtype(values.dtype) or pd.api.types.infer_dtype(values, skipna=True) == "string":
        return "strings"
    return str(values.dtype)


def parse_numeric(col: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse a numeric column ("$8.99" and "1,200" accepted).

    Returns:
        ``(values, malformed, nonfinite)``, fresh writable arrays ``[n]``: float64 values (NaN where
        missing, malformed or not finite), the bool mask of text that is not a number, and the bool
        mask of ``inf`` / ``-inf`` / overflowing values such as ``"1e400"``.
    """
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        val = col.to_numpy(dtype="float64", na_value=np.nan, copy=True)
        malformed = np.zeros(len(col), bool)
    else:
        if col.dtype == object:  # bytes and other objects are not numbers (and must not be decoded)
            col = col.map(lambda v: v if v is None or v is pd.NA or isinstance(v, (str, int, float, np.number))
                          else "<not a number>")
        s = col.astype("string").str.replace(_CURRENCY, "", regex=True).str.strip()
        blank = s.isna() | (s == "")
        num = pd.to_numeric(s.mask(blank), errors="coerce")
        val = num.to_numpy(dtype="float64", na_value=np.nan, copy=True)
        malformed = np.array(num.isna() & ~blank, dtype=bool)
    nonfinite = np.isinf(val)
    val[nonfinite] = np.nan
    return val, malformed, nonfinite


def nonfinite_fix(col: str) -> str:
    """The fix sentence of a non-finite value in numeric column ``col``."""
    return (f"write finite numbers in {col!r}: inf, -inf and numbers beyond ±3.4e38 (the float32 range the "
            f"models read, which 1e400 overflows) are refused; leave a cell empty if the value is unknown")
