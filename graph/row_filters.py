"""The row filters of a build: usable node-table rows, edge attributes, consent and the minimum
group size. Each one raises on a bad row in ``raise`` mode, or drops it and counts it under a
reason of the :class:`~boardgraph.graph.build_report.BuildReport` in ``skip`` mode.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .build_report import TABLE_ROWS, BuildReport
from .checks import F32_MAX, Checker, id_kind, lookup_ids, nonfinite_fix, null_ids, parse_numeric, require_columns
from .errors import DuplicateIdError, MalformedValueError, NullIdError, UnknownIdError, show_value
from .feature_columns import FeatureSpec
from .privacy import CONSENT_ACCEPTED, consent_flags, filter_min_group_size

__all__ = ["valid_table_rows", "check_null_ids", "check_unknown_ids", "edge_attr_tensors", "apply_consent",
           "apply_min_group"]


def valid_table_rows(kind: str, key: str, t: pd.DataFrame, spec: FeatureSpec, checker: Checker) -> pd.DataFrame:
    """The rows of an explicit node table with a usable id; rows with a null or repeated id raise,
    or are dropped and counted as ``null_<kind>_table_id`` / ``duplicate_<kind>_row``."""
    require_columns(t, [key] + list(spec.kinds()), kind,
                    f"name the {kind} id column with the same name as in the edge table")
    tk = t[key]
    codes, uniq = pd.factorize(tk)
    keep = checker.check(t, null_ids(codes, pd.Index(uniq)), NullIdError, f"{kind} table column {key!r}: null or "
                         f"empty id", key, f"give every {kind} row an id", reason=f"null_{kind}_table_id",
                         scope=TABLE_ROWS)
    dup = np.asarray(tk.duplicated(), bool) & keep
    keep &= checker.check(t, dup, DuplicateIdError, f"{kind} table column {key!r}: id "
                          f"{show_value(tk[dup].iloc[0]) if dup.any() else ''} listed twice", key,
                          f"give each {kind} one row", reason=f"duplicate_{kind}_row", scope=TABLE_ROWS)
    return t if keep.all() else t[keep]


def check_null_ids(df: pd.DataFrame, col: str, ntype: str, codes: np.ndarray, uniques: pd.Index, checker: Checker,
                   keep: np.ndarray) -> np.ndarray:
    """``keep`` without the rows whose id in ``col`` (factorized as ``codes``, ``uniques``) is null or
    blank: they raise, or are counted as ``null_<ntype>_id``."""
    return keep & checker.check(df, null_ids(codes, uniques) & keep, NullIdError, f"column {col!r}: null or empty id",
                                col, f"give every row a {ntype} id", reason=f"null_{ntype}_id")


def check_unknown_ids(df: pd.DataFrame, col: str, ntype: str, codes: np.ndarray, uniques: pd.Index,
                      table_ids: pd.Index, checker: Checker, keep: np.ndarray) -> np.ndarray:
    """``keep`` without the kept rows whose id in ``col`` is not among ``table_ids`` (the node table's):
    they raise, or are counted as ``unknown_<ntype>``."""
    unknown = (codes >= 0) & (lookup_ids(table_ids, codes, uniques) < 0) & keep
    if not unknown.any():
        return keep
    tbl = {"pin": "items", "board": "boards", "user": "users"}[ntype]
    fix = f"add the {ntype} to the {tbl} table or remove the row"
    a, b = id_kind(df[col]), id_kind(table_ids)
    if a != b:
        fix += (f"; the edge table's {col!r} ids are {a} and the {ntype} table's are {b}: CSV ids are "
                f"read as text, so give both tables the same kind of file or convert one column")
    return keep & checker.check(df, unknown, UnknownIdError, f"column {col!r}: {ntype} id "
                                f"{show_value(df[col][unknown].iloc[0])} is not in the {ntype} table", col,
                                fix, reason=f"unknown_{ntype}")


def edge_attr_tensors(df: pd.DataFrame, weight: str | None, timestamp: str | None, order: str | None,
                      checker: Checker, keep: np.ndarray) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    """Edge attributes ``[len(df)]`` (weight float32, timestamp int64 seconds, order int64) and the
    updated keep mask: missing, malformed, non-finite or out-of-range values make their row bad."""
    attrs = {}
    for name, col, dtype, limit in (("weight", weight, torch.float32, F32_MAX),
                                    ("timestamp", timestamp, torch.int64, 2.0 ** 63),
                                    ("order", order, torch.int64, 2.0 ** 63)):
        if col is None:
            continue
        c = df[col]
        num, bad, nonfinite = parse_numeric(c)
        if name == "timestamp" and not pd.api.types.is_numeric_dtype(c.dtype):
            # a text column: numbers are epoch seconds, anything else is parsed as a date
            dates = pd.to_datetime(c.mask(~np.isnan(num) | nonfinite), errors="coerce", utc=True, format="mixed")
            is_date = np.array(dates.notna(), dtype=bool)
            secs = dates.dt.tz_localize(None).to_numpy(dtype="datetime64[s]").astype(np.int64)
            num = np.where(is_date, secs, num)
            bad &= ~is_date
        big = np.abs(np.nan_to_num(num)) >= limit
        if dtype == torch.float32:
            nonfinite |= big  # it would become inf as float32
        else:
            bad |= big
        bad |= np.isnan(num) & ~nonfinite  # missing values too: every row needs one
        vals = np.where(bad | nonfinite, 0, num)
        nonfinite &= keep
        if nonfinite.any():
            keep &= checker.check(df, nonfinite, MalformedValueError, f"column {col!r}: value "
                                  f"{show_value(c[nonfinite].iloc[0])} is not a finite number", col,
                                  nonfinite_fix(col), reason=f"nonfinite_{col}")
        bad &= keep
        if bad.any():
            keep &= checker.check(df, bad, MalformedValueError, f"column {col!r}: value "
                                  f"{show_value(c[bad].iloc[0])} is not a valid {name}", col,
                                  f"give every row a {name}", reason=f"malformed_{col}")
        attrs[name] = torch.as_tensor(np.array(vals)).to(dtype)
    return attrs, keep


def apply_consent(df: pd.DataFrame, consent: str, checker: Checker, report: BuildReport) -> pd.DataFrame:
    """The rows of ``df`` whose ``consent`` value is true; unrecognised values raise or are dropped and
    counted (``malformed_<consent>``), and false or empty ones are counted as ``no_consent``."""
    ok, bad, values = consent_flags(df[consent])
    if bad.any():
        more = f" (and {len(values) - 5} more)" if len(values) > 5 else ""
        shown = ", ".join(show_value(v) for v in values[:5]) + more
        keep = checker.check(df, bad, MalformedValueError, f"consent column {consent!r}: "
                             f"value{'s' * (len(values) > 1)} {shown} not recognised", consent,
                             f"write one of the accepted values: {CONSENT_ACCEPTED}", reason=f"malformed_{consent}")
        df, ok = df[keep], ok[keep]
    report.add("no_consent", int((~ok).sum()), rows=df.index[~ok][:10].tolist(),
               message=f"column {consent!r} is not true")
    return df[ok]


def apply_min_group(df: pd.DataFrame, keep: np.ndarray, dst: str, src: str, k: int, dst_type: str, src_type: str,
                    dst_t: pd.DataFrame | None, report: BuildReport) -> tuple[np.ndarray, pd.DataFrame | None]:
    """Drop the kept rows of groups (dst nodes) with fewer than ``k`` distinct members among the
    kept rows, and those groups' rows of the node table. Applied after every other row check, so
    the rule holds in the built graph. Returns the new keep mask and node table."""
    rows = np.flatnonzero(keep)
    sub = df.iloc[rows][[dst, src]].reset_index(drop=True)  # positions, whatever the user's index
    kept, n = filter_min_group_size(sub, dst, src, k)
    small = np.ones(len(rows), bool)
    small[kept.index.to_numpy()] = False
    what = f"{dst_type} with fewer than {k} distinct {src_type}s"
    report.add(f"{dst_type}_below_min_size", n, rows=df.index[rows[small][:10]].tolist(), message=what)
    keep = keep.copy()
    keep[rows[small]] = False
    if dst_t is not None and n:
        # a group dropped for its size must not survive as a node of its own table (with its
        # features) either: the filter is a privacy rule, not only a membership rule
        dropped = pd.Index(sub[dst].unique()).difference(pd.Index(kept[dst].unique()))
        gone = dst_t[dst].isin(dropped).to_numpy()
        report.add(f"{dst_type}_table_below_min_size", int(gone.sum()), rows=dst_t.index[gone][:10].tolist(),
                   message=f"{dst_type} table rows of {what} (removed with their memberships)", scope=TABLE_ROWS)
        dst_t = dst_t[~gone]
    return keep, dst_t
