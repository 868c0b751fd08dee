"""The root of boardgraph's errors and the errors every stage shares.

Every error boardgraph raises on purpose derives from :class:`BoardgraphError`, names the
offending input (row, field, path) and says what to do about it. Stage-specific errors live with
their stage (``boardgraph.graph.errors``, ``boardgraph.encoders.errors``, ...) and derive from it.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["BoardgraphError", "OutputExistsError"]


class BoardgraphError(Exception):
    """Base class of every error boardgraph raises on purpose."""


class OutputExistsError(BoardgraphError, FileExistsError):
    """A save would replace something that is not a saved artefact of the same kind holding only
    what boardgraph wrote, or an artefact of the same kind while ``overwrite`` is off.

    Attributes:
        path: the path the save was asked to write.
        kind: the kind being saved (``"boardgraph.graph"``).
    """

    def __init__(self, message: str, *, path: Path | None = None, kind: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.kind = kind

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
