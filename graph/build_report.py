"""`BuildReport`: what a builder kept, dropped, de-duplicated or set missing, and why."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BuildReport", "EDGE_ROWS", "TABLE_ROWS", "VALUES"]

#: Scope of a reason: rows of the edge table that are not edges (dropped or de-duplicated).
EDGE_ROWS = "edge_rows"
#: Scope of a reason: rows of a node table (items=/boards=/users=) that were dropped.
TABLE_ROWS = "table_rows"
#: Scope of a reason: feature values set missing; their rows and nodes are kept.
VALUES = "values"
log = logging.getLogger("boardgraph.graph.builders")
_UNITS = {EDGE_ROWS: "rows", TABLE_ROWS: "table rows", VALUES: "values set missing"}


@dataclass
class BuildReport:
    """Accounting of one build. Nothing is dropped without a count here.

    Every row of the edge table is either stored as an edge or counted under a reason of scope
    ``"edge_rows"``: ``rows_in == sum(edges.values()) + n_dropped``.

    Attributes:
        rows_in: rows of the edge table read.
        counts: reason -> number of rows dropped / de-duplicated / values set missing.
        examples: reason -> up to 10 row labels (the input table's index) for each reason.
        messages: reason -> a one-line description (the error message in ``raise`` mode).
        nodes: node type -> nodes in the graph.
        edges: relation name -> edges stored.
        scopes: reason -> what it counts: ``"edge_rows"`` (edge-table rows not stored: the
            default), ``"table_rows"`` (node-table rows dropped) or ``"values"`` (feature values
            set missing, rows kept).
        warnings: lines about a graph that was built but is likely useless (e.g. a single board).
        method: how the graph was built: ``"in memory"`` or ``"out of core"`` (empty when not said),
            and ``method_note`` why (the estimated memory against the limit).
    """

    rows_in: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[Any]] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, int] = field(default_factory=dict)
    edges: dict[str, int] = field(default_factory=dict)
    scopes: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    method: str = ""
    method_note: str = ""

    def add(self, reason: str, n: int, rows: list[Any] | None = None, message: str = "",
            scope: str = EDGE_ROWS) -> None:
        """Count ``n`` rows (or values) under ``reason`` (adds to an existing count).

        Raises:
            ValueError: ``scope`` is unknown, or differs from the scope ``reason`` was counted under.
        """
        if scope not in _UNITS:
            raise ValueError(f"scope must be one of {list(_UNITS)}, got {scope!r}")
        if self.scopes.get(reason, scope) != scope:
            raise ValueError(f"reason {reason!r} is counted as {self.scopes[reason]!r}, not {scope!r}; "
                             "give the new count its own reason")
        if n <= 0:
            return
        self.scopes[reason] = scope
        self.counts[reason] = self.counts.get(reason, 0) + int(n)
        ex = self.examples.setdefault(reason, [])
        ex.extend(list(rows or [])[: 10 - len(ex)])
        if message and reason not in self.messages:
            self.messages[reason] = message

    def warn(self, message: str) -> None:
        """Record a warning about the built graph (printed first by ``str(report)``)."""
        self.warnings.append(message)

    def warn_if_small(self) -> None:
        """Warn (here and in the log) when a node type of :attr:`nodes` has fewer than 2 nodes."""
        small = [(t, n) for t, n in self.nodes.items() if n < 2]
        if small:
            need = "2 of each" if len(small) > 1 else f"2 {small[0][0]}s"
            self.warn(f"only {' and '.join(f'{n} {t}' + 's' * (n != 1) for t, n in small)}: training and "
                      f"evaluation need at least {need}")
            log.warning("build: %s", self.warnings[-1])

    @property
    def dropped(self) -> dict[str, int]:
        """Reason -> edge-table rows not stored as edges (dropped or de-duplicated)."""
        return {r: n for r, n in self.counts.items() if self.scopes.get(r, EDGE_ROWS) == EDGE_ROWS}

    @property
    def n_dropped(self) -> int:
        """Edge-table rows not stored as edges, all reasons: ``rows_in - sum(edges.values())``."""
        return sum(self.dropped.values())

    @property
    def total(self) -> int:
        """All rows and values counted under any reason, of every scope."""
        return sum(self.counts.values())

    def __str__(self) -> str:
        n_edges = sum(self.edges.values())
        lines = [f"BuildReport: {self.rows_in:,} rows read; "
                 + ", ".join(f"{n:,} {t}s" for t, n in self.nodes.items()) + "; "
                 + ", ".join(f"{n:,} '{r}' edges" for r, n in self.edges.items()),
                 f"  {n_edges:,} edges + {self.n_dropped:,} dropped = {n_edges + self.n_dropped:,} rows read"]
        if self.method:
            lines.append(f"  built {self.method}" + (f": {self.method_note}" if self.method_note else ""))
        lines += [f"  WARNING: {w}" for w in self.warnings]
        if not self.counts:
            lines.append("  nothing dropped, de-duplicated or set missing")
        for reason, n in sorted(self.counts.items()):
            ex = ", ".join(map(str, self.examples.get(reason, [])[:5]))
            msg = self.messages.get(reason, "")
            eg = f"  (e.g. rows {ex})" if ex else ""
            unit = _UNITS[self.scopes.get(reason, EDGE_ROWS)]
            lines.append(f"  {reason:<28} {n:>10,} {unit}{eg}{'  ' + msg if msg else ''}")
        return "\n".join(lines)
