"""In memory or out of core: which build path a table takes, and why (the report says it).

The in-memory builder peaks at about 100 bytes a row for two integer id columns (measured: 10.2 GB
for 100M rows), plus about 60 bytes per text column (Python strings). ``method="auto"`` builds in
memory when that estimate fits the limit (``max_memory``, or half the memory available now when
none is given), and out of core otherwise.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .build import StreamTuning
from ..tables import _PARQUET
from .source import open_edge_source
from .spill import fmt_bytes, parse_memory

__all__ = ["choose_method", "estimate_in_memory_bytes", "available_memory", "METHODS", "fmt_bytes"]

METHODS = ("auto", "memory", "out-of-core")
_ROW_BYTES = 100
_TEXT_BYTES = 60


def available_memory() -> int:
    """Bytes of memory available now (``MemAvailable``; total physical memory where it is not known)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def estimate_in_memory_bytes(obj: Any, columns: Sequence[str], encoding: str = "utf-8") -> int:
    """Estimated peak memory of an in-memory build of the edge table ``obj`` (its ``columns`` read)."""
    if isinstance(obj, pd.DataFrame) or not isinstance(obj, (str, os.PathLike)):
        return 0
    p = Path(obj)
    try:
        if p.is_file() and p.suffix.lower() not in _PARQUET:  # CSV: rows from the size and the first lines
            with open(p, "rb") as fh:
                head = fh.read(1 << 16)
            rows = p.stat().st_size * max(1, head.count(b"\n") - 1) // max(1, len(head))
            return int(rows * (_ROW_BYTES + _TEXT_BYTES * len(columns)))
        src = open_edge_source(p, encoding)
        schema = pq.ParquetFile(src.files[0]).schema_arrow
    except (OSError, ValueError, pa.ArrowException):
        return 0  # unreadable: the in-memory reader names what is wrong
    text = sum(1 for c in columns if c in schema.names and
               (pa.types.is_string(schema.field(c).type) or pa.types.is_large_string(schema.field(c).type)))
    return int((src.rows or 0) * (_ROW_BYTES + _TEXT_BYTES * text))


def choose_method(obj: Any, method: str, max_memory: int | str | StreamTuning | None, out: Any, columns: Sequence[str],
                  encoding: str = "utf-8") -> tuple[str, str, int]:
    """``(path, why, limit)``: ``"in memory"`` or ``"out of core"``, a note for the report, and the
    memory limit in bytes an out-of-core build keeps to.

    Raises:
        ValueError: an unknown ``method``; ``"out-of-core"`` without ``out``; a bad ``max_memory``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(max_memory, StreamTuning):
        limit = max_memory.limit
    else:
        limit = parse_memory(max_memory) if max_memory is not None else available_memory() // 2
    said = f"--max-memory {fmt_bytes(limit)}" if max_memory is not None else f"half the {fmt_bytes(2 * limit)} available"
    if method == "memory":
        return "in memory", "method='memory'", limit
    if method == "out-of-core":
        if out is None:
            raise ValueError("an out-of-core build writes the graph to a folder: pass out=DIR")
        return "out of core", f"method='out-of-core', memory limit {fmt_bytes(limit)}", limit
    if isinstance(obj, pd.DataFrame):
        return "in memory", "the table is a DataFrame, already in memory", limit
    est = estimate_in_memory_bytes(obj, columns, encoding)
    if est <= limit or out is None:
        note = f"estimated peak {fmt_bytes(est)}, within {said}"
        if est > limit:
            note = f"estimated peak {fmt_bytes(est)} is over {said}, but no out= folder was given to build into"
        return "in memory", note, limit
    return "out of core", f"an in-memory build would take about {fmt_bytes(est)}, over {said}", limit
