"""`describe()`: counts, degree and board-size distributions, connected components."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

if TYPE_CHECKING:
    from .store import PinBoardGraph

__all__ = ["GraphSummary", "DegreeStats", "describe"]


@dataclass
class DegreeStats:
    """Distribution of a node type's degree along one edge type."""

    etype: tuple[str, str, str]
    min: int
    median: float
    mean: float
    p90: float
    p99: float
    max: int
    zero: int  # nodes with no edge of this type

    @classmethod
    def of(cls, etype, deg: np.ndarray) -> "DegreeStats":
        if deg.size == 0:
            return cls(etype, 0, 0.0, 0.0, 0.0, 0.0, 0, 0)
        q = np.percentile(deg, [50, 90, 99])
        return cls(etype, int(deg.min()), float(q[0]), float(deg.mean()), float(q[1]), float(q[2]),
                   int(deg.max()), int((deg == 0).sum()))


@dataclass
class GraphSummary:
    """What :meth:`PinBoardGraph.describe` returns; ``str()`` renders a readable report."""

    num_nodes: dict[str, int]
    num_edges: dict[tuple[str, str, str], int]
    degrees: list[DegreeStats]
    num_components: int
    largest_component: int
    largest_component_fraction: float
    isolated: dict[str, int] = field(default_factory=dict)
    features: dict[str, dict[str, str]] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = ["PinBoardGraph summary", "  nodes:"]
        lines += [f"    {t:<10} {n:>12,}  ({self.isolated.get(t, 0):,} without edges)" for t, n in self.num_nodes.items()]
        lines.append("  edges:")
        lines += [f"    {str(e):<36} {n:>12,}" for e, n in self.num_edges.items()]
        lines.append("  degree distributions (min / median / mean / p90 / p99 / max, zero-degree):")
        for d in self.degrees:
            lines.append(f"    {d.etype[0]:>6} --{d.etype[1]}--> {d.etype[2]:<6} {d.min} / {d.median:g} / "
                         f"{d.mean:.2f} / {d.p90:g} / {d.p99:g} / {d.max}, {d.zero:,}")
        lines.append(f"  connected components: {self.num_components:,}; largest has {self.largest_component:,} "
                     f"nodes ({100 * self.largest_component_fraction:.1f}%)")
        for t, kinds in self.features.items():
            if kinds:
                lines.append(f"  {t} features: " + ", ".join(f"{n} ({k})" for n, k in kinds.items()))
        return "\n".join(lines)


def describe(graph: PinBoardGraph) -> GraphSummary:
    """Summarise ``graph`` (duck-typed: the store's accessors): see :class:`GraphSummary`. Components
    ignore edge direction."""
    offsets, total = {}, 0
    for t in graph.node_types:
        offsets[t] = total
        total += graph.num_nodes(t)
    rows, cols, degrees, touched = [], [], [], {t: np.zeros(graph.num_nodes(t), bool) for t in graph.node_types}
    for fwd in graph.canonical_edge_types:
        s, d = (x.cpu().numpy() for x in graph.edges(fwd))
        rows.append(s + offsets[fwd[0]])
        cols.append(d + offsets[fwd[2]])
        touched[fwd[0]][s] = True
        touched[fwd[2]][d] = True
        for et in (fwd, graph.reverse_of(fwd)):
            degrees.append(DegreeStats.of(et, graph.degree(et).cpu().numpy()))
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    adj = sp.coo_matrix((np.ones(r.size, np.int8), (r, c)), shape=(total, total)).tocsr()
    n_comp, labels = connected_components(adj, directed=False) if total else (0, np.zeros(0, np.int64))
    largest = int(np.bincount(labels).max()) if total else 0
    return GraphSummary(
        num_nodes={t: graph.num_nodes(t) for t in graph.node_types},
        num_edges={e: graph.num_edges(e) for e in graph.canonical_edge_types},
        degrees=degrees, num_components=int(n_comp), largest_component=largest,
        largest_component_fraction=largest / total if total else 0.0,
        isolated={t: int((~m).sum()) for t, m in touched.items()},
        features={t: dict(graph.features(t).kinds) for t in graph.node_types})
