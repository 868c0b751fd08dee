"""Privacy helpers applied to interaction tables before a graph is built.

Boards are curated by people, so the raw tables can carry user ids, consent flags and very small
groups (a board of two pins, an item saved by one user) that identify a person. These helpers
work on plain :class:`pandas.DataFrame` tables and never modify their input:

* :func:`pseudonymize` replaces an id column by keyed HMAC-SHA256 digests.
* :func:`filter_consent` keeps the rows whose consent flag is true.
* :func:`filter_min_group_size` drops groups with fewer than ``k`` distinct members
  (minimum board size, minimum number of users per item).
"""
from __future__ import annotations

import hmac
import logging
from typing import Any

import numpy as np
import pandas as pd

from .errors import MalformedValueError, NullIdError, SchemaError, format_rows

__all__ = ["pseudonymize", "filter_consent", "filter_min_group_size"]

log = logging.getLogger(__name__)

_TRUE_STRINGS = frozenset({"yes", "true"})
_FALSE_STRINGS = frozenset({"no", "false"})


def _require_columns(df: pd.DataFrame, *columns: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SchemaError(
            f"column(s) {missing} not in the table (it has {list(df.columns)})",
            column=missing[0],
            fix="pass the name of an existing column",
        )


def _key_bytes(key: str | bytes) -> bytes:
    if isinstance(key, str):
        key = key.encode("utf-8")
    elif not isinstance(key, (bytes, bytearray)):
        raise TypeError(f"key must be str or bytes, got {type(key).__name__}; "
                        "pass the secret as a str or bytes")
    if len(key) == 0:
        raise ValueError("key is empty; pass a non-empty secret (keep it out of the repository, "
                         "e.g. read it from an environment variable)")
    return bytes(key)


def pseudonymize(df: pd.DataFrame, column: str, key: str | bytes, *,
                 prefix: str = "") -> pd.DataFrame:
    """Return a copy of ``df`` whose ``column`` holds keyed HMAC-SHA256 digests of its values.

    Each value is rendered with ``str(value)`` and encoded as UTF-8, so ``5`` and ``"5"`` map to
    the same digest. The digest is the 64-character lowercase hex string, preceded by ``prefix``.
    The same key and value always give the same digest, so joins across tables pseudonymized
    with one key still line up; a different key gives unrelated digests. Digests are computed
    once per distinct value (:func:`pandas.factorize`), so the cost grows with the number of
    distinct values, not rows.

    The returned column is a new ``object`` column: no raw value (not even a categorical's
    category list) is kept in the returned frame. ``df`` itself is not modified.

    Args:
        df: the table.
        column: the column to replace (e.g. ``"user_id"``).
        key: the secret HMAC key, ``str`` (UTF-8 encoded) or ``bytes``.
        prefix: text put before every digest (e.g. ``"u_"``).

    Returns:
        A copy of ``df`` with ``column`` replaced; null values (``None``/``NaN``/``NA``) stay
        null (``None``).

    Raises:
        SchemaError: ``column`` is not in ``df``.
        ValueError: ``key`` is empty.
        TypeError: ``key`` is neither ``str`` nor ``bytes``.
    """
    _require_columns(df, column)
    key_bytes = _key_bytes(key)
    codes, uniques = pd.factorize(df[column], use_na_sentinel=True)
    digests = np.empty(len(uniques) + 1, dtype=object)
    digests[:-1] = [prefix + hmac.digest(key_bytes, str(v).encode("utf-8"), "sha256").hex()
                    for v in uniques]
    digests[-1] = None  # code -1 (null) indexes the last slot
    out = df.copy()
    out[column] = pd.Series(digests[codes], index=df.index, dtype=object)
    return out


def _consent_value(value: Any) -> bool | None:
    """Map one consent value to True/False, or None when it is not recognised."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer, float, np.floating)):
        if value == 1:
            return True
        if value == 0:
            return False
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE_STRINGS:
            return True
        if text in _FALSE_STRINGS:
            return False
        try:  # a CSV cell is text: "1", "0", "1.0" read as the numbers they spell, whatever the column's type
            number = float(text)
        except ValueError:
            return None
        return True if number == 1 else False if number == 0 else None
    return None


#: The consent values :func:`consent_flags` accepts, for error messages.
CONSENT_ACCEPTED = ("true/false or yes/no (any case), 1/0 (numbers or text), or a bool column; "
                    "an empty cell means no consent")


def consent_flags(col: pd.Series) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """Per row ``(consents, unrecognised)`` bool ``[n]`` and the distinct unrecognised values of a
    consent column (each distinct value classified once; a missing value means no consent)."""
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    flags = [_consent_value(v) for v in uniques]
    ok = np.array([bool(f) for f in flags] + [False], dtype=bool)   # code -1: missing -> no consent
    bad = np.array([f is None for f in flags] + [False], dtype=bool)
    return ok[codes], bad[codes], [u for u, f in zip(uniques, flags) if f is None]


def filter_consent(df: pd.DataFrame, column: str) -> tuple[pd.DataFrame, int]:
    """Keep the rows whose consent flag in ``column`` is true.

    Accepted values: ``bool``; the numbers ``0``/``1`` (also ``0.0``/``1.0``, as pandas stores
    an integer column with nulls as floats) and the same numbers as text (``"1"``, ``"1.0"``: a
    CSV cell, whatever type the rest of its column has); the strings
    ``"yes"``/``"no"``/``"true"``/``"false"`` in any case, surrounding spaces ignored. A null (missing) flag counts as no
    consent: the row is dropped and counted.

    Args:
        df: the table; not modified.
        column: the consent column.

    Returns:
        ``(kept, dropped)``: a copy of the consenting rows (original index kept) and the number
        of rows dropped (false or null flag).

    Raises:
        SchemaError: ``column`` is not in ``df``.
        MalformedValueError: a value is none of the accepted ones; the message names the first
            offending row labels and values.
    """
    _require_columns(df, column)
    keep, bad, values = consent_flags(df[column])
    if bad.any():
        labels = df.index[bad]
        shown = ", ".join(f"{lab!r}: {val!r}" for lab, val in zip(labels[:5], df[column].to_numpy()[bad][:5]))
        distinct = ", ".join(repr(v) for v in values[:5]) + (" ..." if len(values) > 5 else "")
        raise MalformedValueError(
            f"consent column {column!r} has unrecognised value(s) {distinct} in "
            f"{format_rows(list(labels), int(bad.sum()))} ({shown})",
            column=column,
            rows=list(labels),
            fix=f"accepted: {CONSENT_ACCEPTED}",
        )
    dropped = int((~keep).sum())
    log.debug("filter_consent(%r): dropped %d of %d rows", column, dropped, len(df))
    return df.loc[keep].copy(), dropped


def filter_min_group_size(df: pd.DataFrame, group: str, member: str, k: int, *,
                          nulls: str = "raise") -> tuple[pd.DataFrame, int]:
    """Drop every row of a group that has fewer than ``k`` distinct members.

    Typical uses: minimum board size (``group="board_id", member="pin_id"``) and minimum number
    of users per item (``group="item_id", member="user_id"``). This is one pass: dropping rows
    for one rule can shrink groups of another rule, so re-apply both until nothing changes when
    both must hold together.

    Args:
        df: the table; not modified.
        group: the column that names the group.
        member: the column whose distinct values are counted per group.
        k: the minimum number of distinct members, ``k >= 1``.
        nulls: ``"raise"`` (default) raises on a null ``group`` or ``member``; ``"keep"`` keeps
            such rows untouched (a null member does not count towards its group's size) so that
            a later id check, such as a builder's ``on_error="skip"``, drops and counts them.

    Returns:
        ``(kept, dropped)``: a copy of the rows of large-enough groups (original index kept) and
        the number of rows dropped.

    Raises:
        SchemaError: ``group`` or ``member`` is not in ``df``.
        NullIdError: ``nulls="raise"`` and ``group`` or ``member`` holds a null value.
        ValueError: ``k`` is not an integer ``>= 1``, or ``nulls`` is not a known mode.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if nulls not in ("raise", "keep"):
        raise ValueError(f"nulls must be 'raise' or 'keep', got {nulls!r}")
    _require_columns(df, group, member)
    if nulls == "raise":
        for col in (group, member):
            is_null = df[col].isna().to_numpy()
            if is_null.any():
                labels = list(df.index[is_null])
                raise NullIdError(
                    f"column {col!r} is null in {format_rows(labels, int(is_null.sum()))}",
                    column=col,
                    rows=labels,
                    fix="drop or fill the rows with a null id before filtering, or pass "
                        "nulls='keep' to leave them to a later id check",
                )
    # groupby drops null groups (their size is NaN -> kept below); nunique ignores null members
    sizes = df.groupby(group, sort=False, observed=True, dropna=True)[member].transform("nunique")
    keep = ((sizes >= k) | sizes.isna()).to_numpy()
    dropped = int((~keep).sum())
    log.debug("filter_min_group_size(%r, %r, k=%d): dropped %d of %d rows",
              group, member, k, dropped, len(df))
    return df.loc[keep].copy(), dropped
