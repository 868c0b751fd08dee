"""The edge table of an out-of-core build, read in record batches.

A Parquet file, a folder of Parquet shards (read in sorted path order, recursively), a CSV / TSV
file or a DataFrame. Each batch is a DataFrame whose index is the rows' positions in the whole
table (so row labels in errors and reports are the same as the in-memory builder's) and whose
columns read as :func:`~boardgraph.graph.tables.read_table` reads them: Parquet keeps its types
(but integer ids with nulls stay integers, where pandas reads them as floats: ``7``, not ``7.0``);
CSV ids are the text written (only an empty cell is missing) and other CSV columns are text with
pandas' missing-value spellings read as missing (the checks parse numbers, dates and consent
flags from text the same way they parse them from typed columns).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import SchemaError, TableReadError, one_line
from ..tables import _NA_STRINGS, _PARQUET, csv_errors, parquet_files, table_path

__all__ = ["EdgeSource", "open_edge_source", "POSITION"]

#: Column added to the batches of a DataFrame source: the rows' positions (its index keeps the labels).
POSITION = "__boardgraph_position__"
_CSV = {".csv": ",", ".tsv": "\t", ".txt": ","}


@dataclass
class EdgeSource:
    """An edge table to read in batches (see the module docstring).

    Attributes:
        name: the table in messages (``"the edge table pins.parquet"``).
        columns: its column names.
        rows: the exact row count when known without reading (Parquet metadata, a DataFrame).
        bytes_on_disk: the size of its files (0 for a DataFrame).
    """

    name: str
    columns: list[str]
    rows: int | None
    bytes_on_disk: int
    files: list[Path] = field(default_factory=list)
    frame: pd.DataFrame | None = None
    csv: dict[str, Any] = field(default_factory=dict)

    @property
    def max_rows(self) -> int:
        """An upper bound of the row count (a CSV row takes at least two bytes)."""
        return self.rows if self.rows is not None else self.bytes_on_disk // 2 + 1

    def batches(self, columns: Sequence[str], ids: Sequence[str], rows_per_batch: int) -> Iterator[pd.DataFrame]:
        """The table's ``columns`` in batches of at most ``rows_per_batch`` rows, in order; ``ids``
        are the id columns (read as text from a CSV)."""
        if self.frame is not None:
            yield from self._frame_batches(columns, rows_per_batch)
        elif self.csv:
            yield from self._csv_batches(columns, ids, rows_per_batch)
        else:
            yield from self._parquet_batches(columns, ids, rows_per_batch)

    def labels(self, positions: np.ndarray) -> list[Any]:
        """The row labels of row ``positions`` (the positions themselves, but for a DataFrame's own index)."""
        if self.frame is not None:
            return self.frame.index[np.asarray(positions, np.int64)].tolist()
        return [int(p) for p in positions]

    def _frame_batches(self, columns: Sequence[str], n: int) -> Iterator[pd.DataFrame]:
        df = self.frame
        for start in range(0, len(df), n):
            part = df.iloc[start:start + n][list(columns)]
            yield part.assign(**{POSITION: np.arange(start, start + len(part), dtype=np.int64)})

    def _parquet_batches(self, columns: Sequence[str], ids: Sequence[str], n: int) -> Iterator[pd.DataFrame]:
        offset = 0
        for f in self.files:
            try:
                pf = pq.ParquetFile(f)
                for batch in pf.iter_batches(batch_size=n, columns=list(columns)):
                    df = batch.to_pandas()
                    for c in ids:  # integer ids with nulls stay integers (pandas would make them floats)
                        col = batch.column(c)
                        if pa.types.is_integer(col.type) and col.null_count:
                            df[c] = pd.array(col.to_pylist(), dtype="Int64")
                    df.index = pd.RangeIndex(offset, offset + len(df))
                    offset += len(df)
                    df.attrs["source"] = str(f)
                    yield df
            except (pa.ArrowException, OSError) as e:
                raise _unreadable(f, "edge", e) from e

    def _csv_batches(self, columns: Sequence[str], ids: Sequence[str], n: int) -> Iterator[pd.DataFrame]:
        path = self.files[0]
        opts = self.csv
        # the block size bounds a batch's bytes; about 64 bytes a row leaves batches of roughly n rows
        read = pacsv.ReadOptions(encoding=opts["encoding"], block_size=max(1 << 16, min(64 * n, 1 << 30)))
        convert = pacsv.ConvertOptions(column_types={c: pa.string() for c in columns}, include_columns=list(columns),
                                       strings_can_be_null=False, quoted_strings_can_be_null=False, null_values=[])
        parse = pacsv.ParseOptions(delimiter=opts["sep"], newlines_in_values=True)
        offset = 0
        with csv_errors(path, "edge", opts["encoding"]), \
                pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert) as reader:
            for batch in reader:
                df = batch.to_pandas()
                for c in df.columns:
                    col = df[c]
                    # ids: only an empty cell is missing; other columns: pandas' NA spellings too
                    na = col.eq("") if c in ids else col.isin(_NA_STRINGS)
                    if na.any():
                        df[c] = col.astype(object).mask(na, np.nan)
                df.index = pd.RangeIndex(offset, offset + len(df))
                offset += len(df)
                df.attrs.update(source=str(path), source_csv=str(path))
                yield df


def _unreadable(path: Path, what: str, e: BaseException) -> TableReadError:
    return TableReadError(f"{what} table {path.name} is not a readable Parquet file ({one_line(e)})", path=str(path),
                          fix="re-export the table (the file may be truncated or not Parquet), or save it as .csv")


def open_edge_source(obj: Any, encoding: str = "utf-8") -> EdgeSource:
    """An :class:`EdgeSource` of a DataFrame, a Parquet file, a folder of Parquet files, or a CSV/TSV file.

    Raises:
        FileNotFoundError: the path does not exist.
        TableReadError: a file cannot be read (not Parquet, empty CSV, undecodable header).
        SchemaError: an unknown file suffix, or shards whose columns differ.
        TypeError: ``obj`` is neither a DataFrame nor a path.
    """
    if isinstance(obj, pd.DataFrame):
        return EdgeSource("the edge table", list(obj.columns), len(obj), 0, frame=obj)
    p = table_path(obj, "edge")
    suffix = p.suffix.lower()
    if p.is_dir() or suffix in _PARQUET:
        return _parquet_source(p)
    if suffix not in _CSV:
        raise SchemaError(f"edge table {p}: unknown file type {suffix!r}", fix="use .csv, .tsv or .parquet")
    with csv_errors(p, "edge", encoding):  # the in-memory reader's messages for a bad file
        header = [str(c) for c in pd.read_csv(p, sep=_CSV[suffix], nrows=0, encoding=encoding).columns]
    return EdgeSource(f"the edge table {p.name}", header, None, p.stat().st_size, files=[p],
                      csv={"sep": _CSV[suffix], "encoding": encoding})


def _parquet_source(p: Path) -> EdgeSource:
    files = parquet_files(p) if p.is_dir() else [p]
    columns, rows = None, 0
    for f in files:
        try:
            meta = pq.ParquetFile(f)
        except (pa.ArrowException, OSError) as e:
            raise _unreadable(f, "edge", e) from e
        names = list(meta.schema_arrow.names)
        if columns is None:
            columns = names
        elif set(names) != set(columns):
            raise SchemaError(f"edge table shard {f.name} has columns {names}, the first shard {files[0].name} has "
                              f"{columns}", fix="give every shard of the folder the same columns")
        rows += meta.metadata.num_rows
    size = sum(f.stat().st_size for f in files)
    return EdgeSource(f"the edge table {p.name}", columns or [], rows, size, files=files)
