"""`BuildReport`: what a builder kept, dropped, de-duplicated or set missing, and why."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["BuildReport"]


@dataclass
class BuildReport:
    """Accounting of one build. Nothing is dropped without a count here.

    Attributes:
        rows_in: rows of the edge table(s) read.
        counts: reason -> number of rows dropped / de-duplicated / values set missing.
        examples: reason -> up to 10 row labels (the input table's index) for each reason.
        messages: reason -> a one-line description (the error message in ``raise`` mode).
        nodes: node type -> nodes in the graph.
        edges: relation name -> edges stored.
    """

    rows_in: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[Any]] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, int] = field(default_factory=dict)
    edges: dict[str, int] = field(default_factory=dict)

    def add(self, reason: str, n: int, rows: list[Any] | None = None, message: str = "") -> None:
        """Count ``n`` rows under ``reason`` (adds to an existing count)."""
        if n <= 0:
            return
        self.counts[reason] = self.counts.get(reason, 0) + int(n)
        ex = self.examples.setdefault(reason, [])
        ex.extend(list(rows or [])[: 10 - len(ex)])
        if message and reason not in self.messages:
            self.messages[reason] = message

    @property
    def total(self) -> int:
        """All rows counted under any reason."""
        return sum(self.counts.values())

    def __str__(self) -> str:
        lines = [f"BuildReport: {self.rows_in:,} rows read; "
                 + ", ".join(f"{n:,} {t}s" for t, n in self.nodes.items()) + "; "
                 + ", ".join(f"{n:,} '{r}' edges" for r, n in self.edges.items())]
        if not self.counts:
            lines.append("  nothing dropped, de-duplicated or set missing")
        for reason, n in sorted(self.counts.items()):
            ex = ", ".join(map(str, self.examples.get(reason, [])[:5]))
            msg = self.messages.get(reason, "")
            eg = f"  (e.g. rows {ex})" if ex else ""
            lines.append(f"  {reason:<28} {n:>10,} rows{eg}{'  ' + msg if msg else ''}")
        return "\n".join(lines)
