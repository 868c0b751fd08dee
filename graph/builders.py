"""Build a :class:`PinBoardGraph` from the tables users have.

* :func:`from_collections` — one row per membership (wishlists, lookbooks, outfits, bundles).
* :func:`from_interactions` — one row per user action on an item (saves, purchases).

Both accept DataFrames or CSV / Parquet paths, optional item and board tables with text, image,
categorical and numeric columns, and ``on_error="raise" | "skip"``. In ``raise`` mode the first
bad value raises a specific :class:`~boardgraph.graph.errors.BuildError` naming the column, the
rows and the fix; in ``skip`` mode bad rows are dropped (bad feature values set missing) and
counted in the returned :class:`BuildReport`. Duplicate memberships are always de-duplicated and
counted. Every row of the edge table ends up either as an edge or counted under a reason:
``report.rows_in == sum(report.edges.values()) + report.n_dropped``.

What counts as bad:

* ids: a null or blank id. CSV id columns are read as the text written (``"007"``, ``"7"`` and
  ``"1e3"`` are three ids; ``"NA"``, ``"null"`` and ``"None"`` are ids); only an empty cell is a
  missing id. Parquet and DataFrame ids keep their types.
* numbers (weight, timestamp, order, numeric features): text that is not a number, and values that
  are not finite: ``inf``, ``-inf``, overflows such as ``1e400``, and beyond the float32 range for
  weights and features (the dtype the models read). Edge attributes make their row bad; a bad
  feature value is set missing and counted (its node is kept).
* images: a path that resolves outside ``image_root``, a file that is missing or that PIL cannot
  open and verify, or one over ``max_image_pixels``; set missing and counted, like other features.
"""
from __future__ import annotations

import io
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from .errors import (BuildError, DuplicateIdError, EmptyGraphError, ImageReadError, ImageTooLargeError,
                     MalformedValueError, NullIdError, PathOutsideRootError, SchemaError, TableReadError,
                     UnknownIdError, format_rows)
from .idmap import IdMap
from .build_report import EDGE_ROWS, TABLE_ROWS, VALUES, BuildReport
from .store import PinBoardGraph

__all__ = ["from_collections", "from_interactions", "read_table", "parse_feature_columns", "BuildReport",
           "DEFAULT_MAX_IMAGE_PIXELS"]

log = logging.getLogger(__name__)

_CURRENCY = r"[\s$€£¥,]|USD|EUR|GBP"
#: PIL's own decompression-bomb threshold (``Image.MAX_IMAGE_PIXELS``): about 0.25 GiB as RGBA.
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485
_F32_MAX = float(np.finfo(np.float32).max)
try:  # pandas' default missing-value spellings, kept for every column but the ids
    from pandas._libs.parsers import STR_NA_VALUES as _PD_NA
except ImportError:  # pragma: no cover - private name; the list is stable across pandas 1-3
    _PD_NA = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
              "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
_NA_STRINGS = sorted(_PD_NA)


def _one_line(text: object, limit: int = 200) -> str:
    """A library's error text squeezed onto one line (the CLI prints errors as one line)."""
    return " ".join(str(text).split())[:limit]


def _show(v: Any, limit: int = 80) -> str:
    """A value as a user wrote it: ``inf``, ``7``, ``'heavy'`` (numpy scalars unwrapped, long ones cut)."""
    r = repr(v.item() if isinstance(v, np.generic) else v)
    return r if len(r) <= limit else r[:limit - 3] + "..."


# -- reading tables ---------------------------------------------------------------------------------

def read_table(obj: Any, what: str, *, ids: Sequence[str] = (), encoding: str = "utf-8") -> pd.DataFrame:
    """A DataFrame from a DataFrame, or a path to a ``.csv``/``.tsv``/``.txt``/``.parquet``/``.pq`` file.

    Args:
        obj: a DataFrame (returned as is: its dtypes are kept) or a path.
        what: the table's role in messages (``"edge"``, ``"pin"``, ``"board"``, ``"user"``).
        ids: id columns. From a CSV they are read as the text written, with no type or missing-value
            inference: ``"007"``, ``"7"`` and ``"1e3"`` stay three distinct strings, ``"NA"``,
            ``"null"`` and ``"None"`` are ids, and only an empty cell is missing (NaN). Other
            columns get pandas' usual inference. Parquet columns keep their stored types
            (integer ids stay integers).
        encoding: text encoding of CSV files (ignored for Parquet).

    Returns:
        The table, with ``attrs["source"]`` (and, for CSV, ``attrs["source_csv"]``, used to name
        file lines in errors) set to the path.

    Raises:
        FileNotFoundError: the path does not exist.
        TableReadError: the file is empty, not text in ``encoding``, malformed CSV, or not a
            readable Parquet file; the message names the file and the fix.
        SchemaError: an unknown file suffix.
        TypeError: ``obj`` is neither a DataFrame nor a path.
    """
    if isinstance(obj, pd.DataFrame):
        return obj
    if not isinstance(obj, (str, os.PathLike)):
        raise TypeError(f"{what} must be a pandas DataFrame or a CSV/Parquet path, got {type(obj).__name__}")
    p = Path(obj)
    if not p.exists():
        raise FileNotFoundError(f"{what} table {p} does not exist; pass a DataFrame or an existing CSV/Parquet path")
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        df = _read_parquet(p, what)
    elif suffix in (".csv", ".tsv", ".txt"):
        df = _read_csv(p, "\t" if suffix == ".tsv" else ",", what, ids, encoding)
        df.attrs["source_csv"] = str(p)
    else:
        raise SchemaError(f"{what} table {p}: unknown file type {suffix!r}", fix="use .csv, .tsv or .parquet")
    df.attrs["source"] = str(p)
    return df


def _read_csv(p: Path, sep: str, what: str, ids: Sequence[str], encoding: str) -> pd.DataFrame:
    def fail(problem: str, fix: str) -> TableReadError:
        return TableReadError(f"{what} table {p.name} {problem}", path=str(p), fix=fix)

    if p.is_dir():
        raise fail("is a folder, not a file", "pass the path of the CSV file itself")
    try:
        header = pd.read_csv(p, sep=sep, nrows=0, encoding=encoding).columns
        id_cols = [c for c in header if c in set(ids)]
        # per-column NA lists: ids get only the empty cell, the rest pandas' defaults
        na = {c: ([""] if c in id_cols else _NA_STRINGS) for c in header}
        return pd.read_csv(p, sep=sep, low_memory=False, encoding=encoding, dtype={c: str for c in id_cols},
                           keep_default_na=False, na_values=na)
    except pd.errors.EmptyDataError as e:
        raise fail("is empty (no header line)", f"write a header line naming the columns and one row per "
                   f"{'membership' if what == 'edge' else what}, or pass the right file") from e
    except UnicodeDecodeError as e:
        raise fail(f"is not {encoding} text (byte 0x{e.object[e.start]:02x} at position {e.start})",
                   "pass encoding= with the file's real encoding (e.g. 'latin-1', 'cp1252'; CLI --encoding), "
                   "or re-save the file as UTF-8") from e
    except LookupError as e:
        raise fail(f"cannot be decoded: unknown encoding {encoding!r}",
                   "pass a Python codec name such as 'utf-8', 'latin-1' or 'cp1252'") from e
    except pd.errors.ParserError as e:
        raise fail(f"cannot be parsed as CSV ({_one_line(str(e).strip().splitlines()[-1])})",
                   "check the quoting and that every line has as many fields as the header") from e


def _read_parquet(p: Path, what: str) -> pd.DataFrame:
    import pyarrow as pa

    try:
        return pd.read_parquet(p)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise TableReadError(f"{what} table {p.name} is not a readable Parquet file ({_one_line(e)})", path=str(p),
                             fix="re-export the table (the file may be truncated or not Parquet), or save it "
                                 "as .csv") from e


# -- checking rows --------------------------------------------------------------------------------

class _Checker:
    """Raises (``on_error="raise"``) or drops-and-counts (``"skip"``) bad rows of one table."""

    def __init__(self, on_error: str, report: BuildReport) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.skip = on_error == "skip"
        self.report = report

    def where(self, df: pd.DataFrame, labels: list[Any], n: int) -> str:
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
        labels = df.index[bad][:10].tolist()
        msg = f"{what} in {self.where(df, labels, n)}" + (f": {detail}" if detail else "")
        if not self.skip:
            raise exc(msg, column=column, rows=labels, fix=fix + " (or pass on_error='skip' to drop and count them)")
        reason = reason or exc.reason
        if self.report.scopes.get(reason, scope) != scope:  # one column both an edge attribute and a feature
            reason = f"{reason}_{scope}"
        self.report.add(reason, n, labels, msg, scope=scope)
        return ~bad


def _require(df: pd.DataFrame, cols: Sequence[str | None], what: str, hint: str) -> None:
    missing = [c for c in cols if c is not None and c not in df.columns]
    if missing:
        raise SchemaError(f"{what} table has no column {missing[0]!r} (it has {list(df.columns)})",
                          column=missing[0], fix=hint)


def _null_ids(codes: np.ndarray, uniques: pd.Index) -> np.ndarray:
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


def _lookup(index: pd.Index, codes: np.ndarray, uniques: pd.Index) -> np.ndarray:
    """Position in ``index`` of each row's id (int64 ``[len(codes)]``; -1 for null or unknown ids)."""
    out = np.full(len(codes), -1, np.int64)
    have = codes >= 0
    out[have] = index.get_indexer(uniques)[codes[have]]
    return out


def _id_kind(values: pd.Series | pd.Index) -> str:
    if pd.api.types.is_string_dtype(values.dtype) or pd.api.types.infer_dtype(values, skipna=True) == "string":
        return "strings"
    return str(values.dtype)


def _parse_numeric(col: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def _nonfinite_fix(col: str) -> str:
    return (f"write finite numbers in {col!r}: inf, -inf and numbers beyond ±3.4e38 (the float32 range the "
            f"models read, which 1e400 overflows) are refused; leave a cell empty if the value is unknown")


# -- images ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _ImageRules:
    root: str | None = None
    max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS
    allow_outside_root: bool = False

    def __post_init__(self) -> None:
        m = self.max_pixels
        if m is not None and (isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1):
            raise ValueError(f"max_image_pixels must be an int >= 1 or None, got {m!r}; "
                             f"the default is {DEFAULT_MAX_IMAGE_PIXELS:,} (PIL's decompression-bomb limit)")


_OK, _UNREADABLE, _OVERSIZED, _OUTSIDE = 0, 1, 2, 3


def _open_image(src: Any, max_pixels: int | None) -> tuple[int, str]:
    from PIL import Image

    try:
        with Image.open(src) as im:
            w, h = im.size
            if max_pixels is not None and w * h > max_pixels:
                return _OVERSIZED, f"{w * h:,} pixels ({w}x{h}), over max_image_pixels={max_pixels:,}"
            im.verify()  # reads the header and checks the structure without decoding pixels
    except Image.DecompressionBombError as e:
        return _OVERSIZED, _one_line(e)
    except Exception as e:  # noqa: BLE001 - PIL raises OSError, SyntaxError, struct.error, ... on bad files
        return _UNREADABLE, f"{type(e).__name__}: {_one_line(e)}"
    return _OK, ""


def _check_image(v: Any, rules: _ImageRules, real_root: str | None) -> tuple[int, str]:
    """(problem code, detail) of one image cell; a missing cell is fine (the image is optional)."""
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return _OK, ""
    if isinstance(v, (bytes, bytearray, memoryview)):
        return _open_image(io.BytesIO(v), rules.max_pixels) if len(v) else (_UNREADABLE, "empty bytes")
    if not isinstance(v, (str, os.PathLike)):
        return _UNREADABLE, f"a {type(v).__name__} is neither a path nor encoded image bytes"
    path = os.path.join(rules.root, v) if rules.root and not os.path.isabs(v) else os.fspath(v)
    if real_root is not None and not rules.allow_outside_root:
        real = os.path.realpath(path)  # follows "..", and symlinks that point elsewhere
        try:
            inside = os.path.commonpath([real, real_root]) == real_root
        except ValueError:  # another drive
            inside = False
        if not inside:
            return _OUTSIDE, f"it resolves to {real}"
    if not os.path.isfile(path):
        return _UNREADABLE, "no such file"
    if not os.access(path, os.R_OK):
        return _UNREADABLE, "no read permission"
    return _open_image(path, rules.max_pixels)


def _check_images(refs: pd.Series, rules: _ImageRules) -> tuple[np.ndarray, dict[int, str]]:
    """Problem code per cell (int8 ``[n]``) and the detail of the first cell with each problem."""
    from PIL import Image

    real_root = os.path.realpath(rules.root) if rules.root else None
    codes = np.zeros(len(refs), np.int8)
    details: dict[int, str] = {}
    seen: dict[str, tuple[int, str]] = {}
    with warnings.catch_warnings():  # images over PIL's limit are counted here, not warned about
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        for i, v in enumerate(refs.to_numpy(dtype=object)):
            key = v if isinstance(v, str) else None
            res = seen.get(key) if key is not None else None
            if res is None:
                res = _check_image(v, rules, real_root)
                if key is not None:
                    seen[key] = res
            codes[i] = res[0]
            details.setdefault(res[0], res[1])
    return codes, details


def _parse_image_column(table: pd.DataFrame, c: str, checker: _Checker, rules: _ImageRules) -> np.ndarray:
    col = table[c]
    codes, details = _check_images(col, rules)
    root = f"image_root {rules.root}" if rules.root else "image_root"
    for code, reason, exc, what, fix in (
            (_OUTSIDE, "outside_root", PathOutsideRootError, f"is outside {root}",
             "keep image paths inside image_root (no '..', no absolute paths elsewhere, no symlinks out), "
             "or pass allow_outside_root=True (CLI --allow-outside-root) if you trust the table"),
            (_UNREADABLE, "unreadable", ImageReadError, "cannot be read",
             "check the file exists and is an image PIL can open (relative paths resolve against image_root)"),
            (_OVERSIZED, "oversized", ImageTooLargeError, "is too large",
             "downscale the image, or raise max_image_pixels (CLI --max-image-pixels) if you trust the file: "
             "decoding very large images exhausts memory")):
        bad = codes == code
        if bad.any():
            checker.check(table, bad, exc, f"column {c!r}: image {_show(col[bad].iloc[0])} {what}", c, fix,
                          reason=f"{reason}_{c}", scope=VALUES, detail=details[code])
    if codes.any():
        col = col.where(codes == _OK, None)
    if rules.root:
        col = col.map(lambda v: os.path.join(rules.root, v) if isinstance(v, str) and not os.path.isabs(v) else v)
    return col.to_numpy(dtype=object)


# -- features -------------------------------------------------------------------------------------

@dataclass
class _FeatureSpec:
    text: Sequence[str] = ()
    image: str | None = None
    categorical: Sequence[str] = ()
    numeric: Sequence[str] = ()
    labels: Sequence[str] = ()

    def kinds(self) -> dict[str, str]:
        out = {c: "text" for c in self.text}
        out.update({c: "categorical" for c in self.categorical})
        out.update({c: "numeric" for c in self.numeric})
        out.update({c: "label" for c in self.labels})
        if self.image:
            out[self.image] = "image"
        return out


def parse_feature_columns(table: pd.DataFrame, kinds: dict[str, str], checker: _Checker | None = None,
                          image_root: str | None = None, *, max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
                          allow_outside_root: bool = False) -> pd.DataFrame:
    """Parse the feature columns of ``table`` (``[n]`` rows) by kind; returns them ``[n]`` rows, RangeIndex.

    Numeric columns become float64 (NaN where missing); a value that is not a number, or not a
    finite float32 number, raises :class:`MalformedValueError`, or with a skip-mode checker is set
    missing and counted (``malformed_<col>`` / ``nonfinite_<col>``). Image columns are checked as
    described in the module docstring (``unreadable_<col>``, ``oversized_<col>``,
    ``outside_root_<col>``) and relative paths are joined to ``image_root``. Without ``image_root``
    paths are used as written (no confinement).
    """
    checker = checker or _Checker("raise", BuildReport())
    rules = _ImageRules(image_root, max_image_pixels, allow_outside_root)
    out = {}
    for c, kind in kinds.items():
        if c not in table.columns:
            continue
        col = table[c]
        if kind == "numeric":
            val, bad, nonfinite = _parse_numeric(col)
            nonfinite |= np.abs(np.nan_to_num(val)) > _F32_MAX
            if nonfinite.any():
                checker.check(table, nonfinite, MalformedValueError, f"column {c!r}: value "
                              f"{_show(col[nonfinite].iloc[0])} is not a finite number", c, _nonfinite_fix(c),
                              reason=f"nonfinite_{c}", scope=VALUES)
            if bad.any():
                checker.check(table, bad, MalformedValueError, f"column {c!r}: value {_show(col[bad].iloc[0])} is not "
                              f"a number", c, f"write plain numbers in {c!r} (currency signs and thousands commas "
                              f"are accepted)", reason=f"malformed_{c}", scope=VALUES)
            val[nonfinite] = np.nan
            out[c] = val
        elif kind == "image":
            out[c] = _parse_image_column(table, c, checker, rules)
        else:
            out[c] = col.to_numpy() if kind != "categorical" else col.astype("category").values
    return pd.DataFrame(out, index=pd.RangeIndex(len(table)))


# -- nodes and edges ------------------------------------------------------------------------------

def _valid_table_rows(kind: str, key: str, t: pd.DataFrame, spec: _FeatureSpec, checker: _Checker) -> pd.DataFrame:
    """The rows of an explicit node table with a usable id; rows with a null or repeated id raise,
    or are dropped and counted as ``null_<kind>_table_id`` / ``duplicate_<kind>_row``."""
    _require(t, [key] + list(spec.kinds()), kind, f"name the {kind} id column with the same name as in the edge table")
    tk = t[key]
    codes, uniq = pd.factorize(tk)
    keep = checker.check(t, _null_ids(codes, pd.Index(uniq)), NullIdError, f"{kind} table column {key!r}: null or "
                         f"empty id", key, f"give every {kind} row an id", reason=f"null_{kind}_table_id",
                         scope=TABLE_ROWS)
    dup = np.asarray(tk.duplicated(), bool) & keep
    keep &= checker.check(t, dup, DuplicateIdError, f"{kind} table column {key!r}: id "
                          f"{_show(tk[dup].iloc[0]) if dup.any() else ''} listed twice", key,
                          f"give each {kind} one row", reason=f"duplicate_{kind}_row", scope=TABLE_ROWS)
    return t if keep.all() else t[keep]


def _edge_nodes(codes: np.ndarray, uniques: pd.Index, keep: np.ndarray, spec: _FeatureSpec, edges: pd.DataFrame,
                checker: _Checker, rules: _ImageRules) -> tuple[pd.Index, np.ndarray, pd.DataFrame | None]:
    """Nodes of a type without a node table: the distinct ids of the kept rows, in order of first
    appearance (ids seen only on dropped rows are not nodes); features from each one's first kept row.

    Returns ``(ids [m], node of every edge row int64 [len(edges)] (-1 on dropped rows), features or None)``.
    """
    rows = np.flatnonzero(keep)
    new_codes, used = pd.factorize(codes[rows])
    node_of_row = np.full(len(codes), -1, np.int64)
    node_of_row[rows] = new_codes
    feats = None
    cols = list(spec.kinds())
    if cols:
        _, first = np.unique(new_codes, return_index=True)
        feats = parse_feature_columns(edges.iloc[rows[first]][cols], spec.kinds(), checker, rules.root,
                                      max_image_pixels=rules.max_pixels, allow_outside_root=rules.allow_outside_root)
    return uniques.take(used), node_of_row, feats


def _edge_attr_tensors(df: pd.DataFrame, weight: str | None, timestamp: str | None, order: str | None,
                       checker: _Checker, keep: np.ndarray) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    """Edge attributes ``[len(df)]`` (weight float32, timestamp int64 seconds, order int64) and the
    updated keep mask: missing, malformed, non-finite or out-of-range values make their row bad."""
    attrs = {}
    for name, col, dtype, limit in (("weight", weight, torch.float32, _F32_MAX),
                                    ("timestamp", timestamp, torch.int64, 2.0 ** 63),
                                    ("order", order, torch.int64, 2.0 ** 63)):
        if col is None:
            continue
        c = df[col]
        num, bad, nonfinite = _parse_numeric(c)
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
                                  f"{_show(c[nonfinite].iloc[0])} is not a finite number", col, _nonfinite_fix(col),
                                  reason=f"nonfinite_{col}")
        bad &= keep
        if bad.any():
            keep &= checker.check(df, bad, MalformedValueError, f"column {col!r}: value {_show(c[bad].iloc[0])} "
                                  f"is not a valid {name}", col, f"give every row a {name}", reason=f"malformed_{col}")
        attrs[name] = torch.as_tensor(np.array(vals)).to(dtype)
    return attrs, keep


def _apply_consent(df: pd.DataFrame, consent: str, checker: _Checker, report: BuildReport) -> pd.DataFrame:
    from .privacy import CONSENT_ACCEPTED, consent_flags

    ok, bad, values = consent_flags(df[consent])
    if bad.any():
        shown = ", ".join(_show(v) for v in values[:5]) + (f" (and {len(values) - 5} more)" if len(values) > 5 else "")
        keep = checker.check(df, bad, MalformedValueError, f"consent column {consent!r}: "
                             f"value{'s' * (len(values) > 1)} {shown} not recognised", consent,
                             f"write one of the accepted values: {CONSENT_ACCEPTED}", reason=f"malformed_{consent}")
        df, ok = df[keep], ok[keep]
    report.add("no_consent", int((~ok).sum()), rows=df.index[~ok][:10].tolist(),
               message=f"column {consent!r} is not true")
    return df[ok]


def _apply_min_group(df: pd.DataFrame, keep: np.ndarray, dst: str, src: str, k: int, dst_type: str, src_type: str,
                     dst_t: pd.DataFrame | None, report: BuildReport) -> tuple[np.ndarray, pd.DataFrame | None]:
    """Drop the kept rows of groups (dst nodes) with fewer than ``k`` distinct members among the
    kept rows, and those groups' rows of the node table. Applied after every other row check, so
    the rule holds in the built graph. Returns the new keep mask and node table."""
    from .privacy import filter_min_group_size

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


def _add_features(graph: PinBoardGraph, ntype: str, feats: pd.DataFrame | None, spec: _FeatureSpec) -> None:
    if feats is None:
        return
    kinds = spec.kinds()
    f = graph.features(ntype)
    for c in feats.columns:
        f.add_column(c, feats[c], kinds[c])


# -- public builders ------------------------------------------------------------------------------

def from_collections(memberships: Any, collection: str = "board_id", item: str = "pin_id", *,
                     items: Any = None, boards: Any = None,
                     text: Sequence[str] = (), image: str | None = None, categorical: Sequence[str] = (),
                     numeric: Sequence[str] = (), labels: Sequence[str] = (),
                     board_text: Sequence[str] = (), board_categorical: Sequence[str] = (),
                     board_numeric: Sequence[str] = (), board_labels: Sequence[str] = (),
                     weight: str | None = None, timestamp: str | None = None, order: str | None = None,
                     consent: str | None = None, min_board_size: int = 1, image_root: str | None = None,
                     max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS, allow_outside_root: bool = False,
                     encoding: str = "utf-8", on_error: str = "raise") -> tuple[PinBoardGraph, BuildReport]:
    """Build a Pin-Board graph from a membership table (one row per pin on a board).

    Args:
        memberships: DataFrame or CSV/Parquet path with columns ``collection`` and ``item``.
        collection, item: names of the board-id and pin-id columns. Ids from a CSV are strings,
            exactly as written (``"007"`` and ``"7"`` are two pins; ``"NA"`` is an id; an empty
            cell is a missing id); Parquet and DataFrame ids keep their type (e.g. int64).
        items: optional pin table keyed by ``item``; its row order becomes the pin index order and
            pins without memberships are kept (cold-start pins). Without it, pins are the distinct
            ids of the kept rows of ``memberships`` in order of first appearance (ids seen only on
            dropped rows are not nodes), and feature columns named below are read from
            ``memberships`` (first kept row per pin).
        boards: optional board table keyed by ``collection`` (same rules).
        text, image, categorical, numeric, labels: pin feature columns. ``image`` holds file paths
            (relative to ``image_root``) or encoded bytes; each is opened and verified by PIL at
            build time. ``numeric`` accepts "$8.99" and "1,200"; ``labels`` are ground truth kept
            for evaluation only.
        board_text, board_categorical, board_numeric, board_labels: board feature columns.
        weight, timestamp, order: membership columns stored as edge attributes ``[E]``
            (float32; int64 seconds since the epoch, from numbers or date strings; int64).
            ``weight`` accepts "$0.5" and "1,200" like ``numeric``.
        consent: optional column; only rows whose value is true are used (privacy). Accepted:
            true/false, yes/no (any case), 1/0 (numbers or text), bools; empty means no consent.
        min_board_size: boards with fewer distinct pins are dropped (privacy / noise): their
            memberships and, when ``boards`` is given, their rows of it (counted as
            ``board_table_below_min_size``); boards the table lists without any membership stay.
        image_root: folder that relative image paths resolve against; paths that resolve outside
            it (``../``, absolute paths, symlinks) are refused unless ``allow_outside_root``.
            ``None``: paths are used as written, with no confinement.
        max_image_pixels: images with more pixels (width x height) are refused; default PIL's
            decompression-bomb limit, 89,478,485. ``None`` turns this check off (PIL's own limit,
            twice that, still refuses bigger images).
        allow_outside_root: accept image paths outside ``image_root``.
        encoding: text encoding of CSV tables (memberships, items, boards).
        on_error: ``"raise"`` or ``"skip"``. In skip mode a bad membership row (null or unknown
            id, bad weight/timestamp/order, unrecognised consent) is dropped, a bad node-table
            row (null or repeated id) is dropped, and a bad feature value (malformed or non-finite
            number, refused image) is set missing with its node kept; each is counted by reason.

    Returns:
        ``(graph, report)``: a graph with node types ``pin`` and ``board`` and relation
        ``("pin", "in", "board")`` (reverse ``("board", "has", "pin")``), and the BuildReport, where
        ``report.rows_in == report.edges["in"] + report.n_dropped``. A graph with fewer than 2
        pins or 2 boards is built, with a line in ``report.warnings`` (and a logged warning).

    Raises:
        SchemaError, NullIdError, UnknownIdError, DuplicateIdError, MalformedValueError,
        ImageReadError (ImageTooLargeError, PathOutsideRootError): in ``raise`` mode, naming the
        column, rows and fix.
        EmptyGraphError: in either mode, when the table has no rows or none is left.
        TableReadError: a table file cannot be read (empty, wrong encoding, broken CSV/Parquet).
        FileNotFoundError: a table path does not exist.
        ValueError: ``on_error`` or ``max_image_pixels`` is not a valid setting.
    """
    return _build(memberships, src=item, dst=collection, src_type="pin", dst_type="board", rel=("in", "has"),
                  src_table=items, dst_table=boards,
                  src_spec=_FeatureSpec(text, image, categorical, numeric, labels),
                  dst_spec=_FeatureSpec(board_text, None, board_categorical, board_numeric, board_labels),
                  weight=weight, timestamp=timestamp, order=order, consent=consent,
                  min_group=min_board_size, min_name="min_board_size",
                  images=_ImageRules(image_root, max_image_pixels, allow_outside_root), encoding=encoding,
                  on_error=on_error)


def from_interactions(interactions: Any, user: str = "user_id", item: str = "pin_id", *,
                      items: Any = None, users: Any = None, relation: str = "saved", reverse: str = "saved_by",
                      text: Sequence[str] = (), image: str | None = None, categorical: Sequence[str] = (),
                      numeric: Sequence[str] = (), labels: Sequence[str] = (),
                      weight: str | None = None, timestamp: str | None = None, consent: str | None = None,
                      min_users: int = 1, image_root: str | None = None,
                      max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS, allow_outside_root: bool = False,
                      encoding: str = "utf-8", on_error: str = "raise") -> tuple[PinBoardGraph, BuildReport]:
    """Build a User-Pin graph from an interaction table (saves, purchases, clicks).

    Same conventions and options as :func:`from_collections`; node types ``user`` and ``pin``,
    relation ``("user", relation, "pin")`` with reverse ``("pin", reverse, "user")``, and
    ``report.rows_in == report.edges[relation] + report.n_dropped``. ``min_users`` drops pins
    that fewer distinct users interacted with (k-anonymity for rare items), from ``items`` too
    (counted as ``pin_table_below_min_size``). Repeated (user, pin) rows are de-duplicated (the
    first row's attributes are kept) and counted.
    """
    return _build(interactions, src=user, dst=item, src_type="user", dst_type="pin", rel=(relation, reverse),
                  src_table=users, dst_table=items, src_spec=_FeatureSpec(),
                  dst_spec=_FeatureSpec(text, image, categorical, numeric, labels),
                  weight=weight, timestamp=timestamp, order=None, consent=consent,
                  min_group=min_users, min_name="min_users",
                  images=_ImageRules(image_root, max_image_pixels, allow_outside_root), encoding=encoding,
                  on_error=on_error)


def _build(edges_obj: Any, *, src: str, dst: str, src_type: str, dst_type: str, rel: tuple[str, str],
           src_table: Any, dst_table: Any, src_spec: _FeatureSpec, dst_spec: _FeatureSpec,
           weight: str | None, timestamp: str | None, order: str | None, consent: str | None,
           min_group: int, min_name: str, images: _ImageRules, encoding: str,
           on_error: str) -> tuple[PinBoardGraph, BuildReport]:
    report = BuildReport()
    checker = _Checker(on_error, report)
    df = read_table(edges_obj, "edge", ids=(src, dst), encoding=encoding)
    name = f"the edge table {Path(df.attrs['source']).name}" if "source" in df.attrs else "the edge table"
    report.rows_in = len(df)
    _require(df, [src, dst, weight, timestamp, order, consent], "edge",
             f"pass the column names, e.g. {dst}=... / {src}=...")
    if len(df) == 0:
        raise EmptyGraphError(f"{name} has no rows", report=report,
                              fix=f"pass a table with one row per ({src}, {dst}) pair (a CSV needs rows under its "
                                  f"header)")
    tables = {}
    for ntype, key, spec, tbl in ((src_type, src, src_spec, src_table), (dst_type, dst, dst_spec, dst_table)):
        if tbl is None:
            missing = [c for c in spec.kinds() if c not in df.columns]
            if missing:
                raise SchemaError(f"{ntype} feature column {missing[0]!r} is not in the table and no {ntype} table "
                                  f"was given", column=missing[0],
                                  fix=f"pass a {ntype} table (items=/boards=) or drop the column name")
        else:
            tables[ntype] = read_table(tbl, ntype, ids=(key,), encoding=encoding)
    if consent is not None:
        df = _apply_consent(df, consent, checker, report)

    codes = {}
    keep = np.ones(len(df), bool)
    for ntype, col in ((src_type, src), (dst_type, dst)):
        c, u = pd.factorize(df[col])
        codes[ntype] = (c, pd.Index(u))
        keep &= checker.check(df, _null_ids(c, pd.Index(u)) & keep, NullIdError, f"column {col!r}: null or empty id",
                              col, f"give every row a {ntype} id", reason=f"null_{ntype}_id")
    for ntype, col, spec in ((src_type, src, src_spec), (dst_type, dst, dst_spec)):
        if ntype not in tables:
            continue
        t = tables[ntype] = _valid_table_rows(ntype, col, tables[ntype], spec, checker)
        c, u = codes[ntype]
        unknown = (c >= 0) & (_lookup(pd.Index(t[col]), c, u) < 0) & keep
        if unknown.any():
            tbl = {"pin": "items", "board": "boards", "user": "users"}[ntype]
            fix = f"add the {ntype} to the {tbl} table or remove the row"
            a, b = _id_kind(df[col]), _id_kind(t[col])
            if a != b:
                fix += (f"; the edge table's {col!r} ids are {a} and the {ntype} table's are {b}: CSV ids are read as "
                        f"text, so give both tables the same kind of file or convert one column")
            keep &= checker.check(df, unknown, UnknownIdError, f"column {col!r}: {ntype} id "
                                  f"{_show(df[col][unknown].iloc[0])} is not in the {ntype} table", col, fix,
                                  reason=f"unknown_{ntype}")
    attrs, keep = _edge_attr_tensors(df, weight, timestamp, order, checker, keep)
    if min_group > 1:  # groups are dst nodes (boards, or items), members are distinct src nodes
        keep, dst_t = _apply_min_group(df, keep, dst, src, min_group, dst_type, src_type, tables.get(dst_type), report)
        if dst_t is not None:
            tables[dst_type] = dst_t
    if not keep.any():
        reasons = ", ".join(f"{r}: {n}" for r, n in report.dropped.items())
        raise EmptyGraphError(f"all {report.rows_in} rows of {name} were dropped ({reasons})", report=report,
                              fix=f"fix the rows counted under those reasons, or relax the filter that dropped them "
                                  f"(consent, {min_name})")
    ids, node_of_row, feats = {}, {}, {}
    for ntype, col, spec in ((src_type, src, src_spec), (dst_type, dst, dst_spec)):
        c, u = codes[ntype]
        if ntype in tables:
            t = tables[ntype]
            ids[ntype] = pd.Index(t[col].to_numpy())
            node_of_row[ntype] = _lookup(ids[ntype], c, u)
            feats[ntype] = parse_feature_columns(t, spec.kinds(), checker, images.root,
                                                 max_image_pixels=images.max_pixels,
                                                 allow_outside_root=images.allow_outside_root)
        else:
            ids[ntype], node_of_row[ntype], feats[ntype] = _edge_nodes(c, u, keep, spec, df, checker, images)

    graph = PinBoardGraph()
    graph.add_node_type(src_type, IdMap(ids[src_type], src_type, unique=True))
    graph.add_node_type(dst_type, IdMap(ids[dst_type], dst_type, unique=True))
    rows = np.flatnonzero(keep)
    s_t = torch.from_numpy(node_of_row[src_type][rows])
    d_t = torch.from_numpy(node_of_row[dst_type][rows])
    attrs = {k2: v[torch.from_numpy(rows)] for k2, v in attrs.items()}
    kept = graph.add_relation((src_type, rel[0], dst_type), s_t, d_t, reverse=rel[1], attrs=attrs)
    n_dup = len(s_t) - len(kept)
    if n_dup:
        dup = np.ones(len(s_t), bool)
        dup[kept.numpy()] = False
        report.add("duplicate_edge", n_dup, df.index[rows[dup][:10]].tolist(),
                   f"the same ({src}, {dst}) pair appears again; the first row is kept")
    _add_features(graph, src_type, feats[src_type], src_spec)
    _add_features(graph, dst_type, feats[dst_type], dst_spec)
    report.nodes = {t: graph.num_nodes(t) for t in graph.node_types}
    report.edges = {rel[0]: graph.num_edges((src_type, rel[0], dst_type))}
    small = [(t, n) for t, n in report.nodes.items() if n < 2]
    if small:
        need = "2 of each" if len(small) > 1 else f"2 {small[0][0]}s"
        report.warn(f"only {' and '.join(f'{n} {t}' + 's' * (n != 1) for t, n in small)}: training and evaluation "
                    f"need at least {need}")
        log.warning("build: %s", report.warnings[-1])
    return graph, report
