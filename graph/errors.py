"""Exception types raised by the graph store and the builders.

Every error names the offending column / row / value and says what to do about it, so that a user
looking at a wishlist table can fix the input without reading the source.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from boardgraph.errors import BoardgraphError

__all__ = [
    "BoardgraphError",
    "BuildError",
    "SchemaError",
    "NullIdError",
    "UnknownIdError",
    "DuplicateIdError",
    "MalformedValueError",
    "ImageReadError",
    "ImageTooLargeError",
    "PathOutsideRootError",
    "EmptyGraphError",
    "TableReadError",
    "GraphFormatError",
]


class BuildError(BoardgraphError, ValueError):
    """Bad input to a builder. Carries the column, the offending row labels and the fix.

    Attributes:
        column: the column that holds the bad value (or ``None``).
        rows: up to 10 row labels (the DataFrame index) of offending rows.
        fix: a sentence on how to fix the input.
    """

    reason: str = "bad_input"

    def __init__(self, message: str, *, column: str | None = None, rows: Sequence[Any] = (),
                 fix: str = "") -> None:
        self.column = column
        self.rows = list(rows)[:10]
        self.fix = fix
        full = message if not fix else f"{message}. Fix: {fix}"
        super().__init__(full)


class SchemaError(BuildError):
    """A required column is missing, or a column has the wrong kind of values."""

    reason = "missing_column"


class NullIdError(BuildError):
    """An id column holds a null / empty value."""

    reason = "null_id"


class UnknownIdError(BuildError, KeyError):
    """An edge names a node id that the node table does not contain (or a lookup of unknown ids)."""

    reason = "unknown_id"

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class DuplicateIdError(BuildError):
    """A node table lists the same id twice."""

    reason = "duplicate_id"


class MalformedValueError(BuildError):
    """A value cannot be parsed as what its column declares (e.g. a price 'abc')."""

    reason = "malformed_value"


class ImageReadError(BuildError):
    """An image reference cannot be read (missing file, no permission, undecodable bytes)."""

    reason = "unreadable_image"


class ImageTooLargeError(ImageReadError):
    """An image declares more pixels than ``max_image_pixels`` (or PIL's decompression-bomb limit)."""

    reason = "oversized_image"


class PathOutsideRootError(ImageReadError):
    """An image path resolves outside ``image_root`` (``../``, an absolute path or a symlink elsewhere)."""

    reason = "image_outside_root"


class EmptyGraphError(BuildError):
    """The edge table has no rows, or none is left once bad rows are dropped.

    Attributes:
        report: the :class:`~boardgraph.graph.build_report.BuildReport` so far (what was dropped, and why),
            or ``None`` when nothing was read.
    """

    reason = "empty_graph"

    def __init__(self, message: str, *, report: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.report = report


class TableReadError(BuildError):
    """A table file cannot be read: empty, not valid text in its encoding, malformed CSV, or not Parquet.

    Attributes:
        path: the file.
    """

    reason = "unreadable_table"

    def __init__(self, message: str, *, path: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.path = path


class GraphFormatError(BoardgraphError, ValueError):
    """A saved graph directory is incomplete, corrupt or from an unknown format version."""


def format_rows(rows: Sequence[Any], total: int | None = None) -> str:
    """Render offending row labels as ``row 3`` / ``rows 3, 7, 9 (and 12 more)``."""
    rows = list(rows)
    shown = ", ".join(str(r) for r in rows[:5])
    n = len(rows) if total is None else total
    more = f" (and {n - min(5, len(rows))} more)" if n > 5 else ""
    return f"row {shown}" if n == 1 else f"rows {shown}{more}"


def one_line(text: object, limit: int = 200) -> str:
    """A library's error text squeezed onto one line (the CLI prints errors as one line)."""
    return " ".join(str(text).split())[:limit]


def show_value(v: Any, limit: int = 80) -> str:
    """A value as a user wrote it: ``inf``, ``7``, ``'heavy'`` (numpy scalars unwrapped, long ones cut)."""
    r = repr(v.item() if isinstance(v, np.generic) else v)
    return r if len(r) <= limit else r[:limit - 3] + "..."
