"""Reading the builders' input tables: a DataFrame as it is, or a CSV / TSV / Parquet file.

CSV id columns are read as the text written (``"007"``, ``"7"`` and ``"1e3"`` are three ids;
``"NA"``, ``"null"`` and ``"None"`` are ids); only an empty cell is a missing id. Other columns get
pandas' usual inference. Parquet and DataFrame columns keep their types. A file that cannot be
read raises :class:`~boardgraph.graph.errors.TableReadError` naming the file and the fix.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import pandas as pd
import pyarrow as pa

from .errors import SchemaError, TableReadError, one_line

__all__ = ["read_table", "table_path", "csv_errors", "parquet_files"]

try:  # pandas' default missing-value spellings, kept for every column but the ids
    from pandas._libs.parsers import STR_NA_VALUES as _PD_NA
except ImportError:  # pragma: no cover - private name; the list is stable across pandas 1-3
    _PD_NA = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
              "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
_NA_STRINGS = sorted(_PD_NA)
_PARQUET = (".parquet", ".pq")


def read_table(obj: Any, what: str, *, ids: Sequence[str] = (), encoding: str = "utf-8") -> pd.DataFrame:
    """A DataFrame from a DataFrame, or a path to a ``.csv``/``.tsv``/``.txt``/``.parquet``/``.pq`` file
    (or, for the edge table, a folder of Parquet shards, read in sorted path order).

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
    p = table_path(obj, what)
    suffix = p.suffix.lower()
    if p.is_dir() and what == "edge":  # a folder of Parquet shards, in sorted path order
        df = _read_parquet_folder(p, what)
    elif suffix in _PARQUET:
        df = _read_parquet(p, what)
    elif suffix in (".csv", ".tsv", ".txt"):
        df = _read_csv(p, "\t" if suffix == ".tsv" else ",", what, ids, encoding)
        df.attrs["source_csv"] = str(p)
    else:
        raise SchemaError(f"{what} table {p}: unknown file type {suffix!r}", fix="use .csv, .tsv or .parquet")
    df.attrs["source"] = str(p)
    return df


def table_path(obj: Any, what: str) -> Path:
    """``obj`` as the path of an existing table file (or folder).

    Raises:
        TypeError: ``obj`` is neither a DataFrame (checked by the caller) nor a path.
        FileNotFoundError: nothing exists at the path.
    """
    if not isinstance(obj, (str, os.PathLike)):
        raise TypeError(f"{what} must be a pandas DataFrame or a CSV/Parquet path, got {type(obj).__name__}")
    p = Path(obj)
    if not p.exists():
        raise FileNotFoundError(f"{what} table {p} does not exist; pass a DataFrame or an existing CSV/Parquet path")
    return p


def _read_csv(p: Path, sep: str, what: str, ids: Sequence[str], encoding: str) -> pd.DataFrame:
    with csv_errors(p, what, encoding):
        header = pd.read_csv(p, sep=sep, nrows=0, encoding=encoding).columns
        id_cols = [c for c in header if c in set(ids)]
        # per-column NA lists: ids get only the empty cell, the rest pandas' defaults
        na = {c: ([""] if c in id_cols else _NA_STRINGS) for c in header}
        return pd.read_csv(p, sep=sep, low_memory=False, encoding=encoding, dtype={c: str for c in id_cols},
                           keep_default_na=False, na_values=na)


@contextmanager
def csv_errors(p: Path, what: str, encoding: str) -> Iterator[None]:
    """Turn the errors of reading the CSV file ``p`` (the ``what`` table) into TableReadErrors that
    name the file and the fix: a folder, an empty file, bytes that are not ``encoding``, an unknown
    encoding, broken quoting or ragged lines (pandas' and pyarrow's reader alike)."""
    def fail(problem: str, fix: str) -> TableReadError:
        return TableReadError(f"{what} table {p.name} {problem}", path=str(p), fix=fix)

    if p.is_dir():
        raise fail("is a folder, not a file", "pass the path of the CSV file itself")
    decode_fix = ("pass encoding= with the file's real encoding (e.g. 'latin-1', 'cp1252'; CLI --encoding), "
                  "or re-save the file as UTF-8")
    parse_fix = "check the quoting and that every line has as many fields as the header"
    try:
        yield
    except pd.errors.EmptyDataError as e:
        raise fail("is empty (no header line)", f"write a header line naming the columns and one row per "
                   f"{'membership' if what == 'edge' else what}, or pass the right file") from e
    except UnicodeDecodeError as e:
        raise fail(f"is not {encoding} text (byte 0x{e.object[e.start]:02x} at position {e.start})", decode_fix) from e
    except LookupError as e:
        raise fail(f"cannot be decoded: unknown encoding {encoding!r}",
                   "pass a Python codec name such as 'utf-8', 'latin-1' or 'cp1252'") from e
    except pd.errors.ParserError as e:
        raise fail(f"cannot be parsed as CSV ({one_line(str(e).strip().splitlines()[-1])})", parse_fix) from e
    except pa.ArrowInvalid as e:
        if "UTF8" in str(e) or "UTF-8" in str(e):
            raise fail(f"is not {encoding} text ({one_line(e, 120)})", decode_fix) from e
        raise fail(f"cannot be parsed as CSV ({one_line(e, 160)})", parse_fix) from e


def parquet_files(p: Path) -> list[Path]:
    """The Parquet files of a folder, recursively, in sorted path order (hidden and ``_`` files skipped)."""
    files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in _PARQUET
                   and not any(part.startswith((".", "_")) for part in f.relative_to(p).parts))
    if not files:
        raise TableReadError(f"edge table folder {p} holds no .parquet files", path=str(p),
                             fix="pass a folder of Parquet shards, or the path of one CSV/Parquet file")
    return files


def _read_parquet_folder(p: Path, what: str) -> pd.DataFrame:
    parts = [_read_parquet(f, what) for f in parquet_files(p)]
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _read_parquet(p: Path, what: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(p)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise TableReadError(f"{what} table {p.name} is not a readable Parquet file ({one_line(e)})", path=str(p),
                             fix="re-export the table (the file may be truncated or not Parquet), or save it "
                                 "as .csv") from e
