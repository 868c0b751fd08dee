"""`describe()`: counts, degree and board-size distributions, connected components."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from boardgraph.schema import EdgeType

from .io import relation_folder
from .stream.spill import read_npy_range

if TYPE_CHECKING:
    from .store import PinBoardGraph

__all__ = ["GraphSummary", "DegreeStats", "describe", "describe_saved"]


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


def describe(graph: PinBoardGraph, *, chunk_edges: int = 1 << 24,
             read_indices: Callable[[EdgeType, int, int], np.ndarray] | None = None) -> GraphSummary:
    """Summarise ``graph`` (duck-typed: the store's accessors): see :class:`GraphSummary`.

    Components ignore edge direction. Memory is bounded by the node count, whatever the edge
    count: edges are read ``chunk_edges`` at a time and merged into the components found so far.

    Args:
        graph: the graph.
        chunk_edges: edges read at a time.
        read_indices: ``(forward edge type, start, stop) -> out_indices[start:stop]`` as numpy;
            default from the relation's tensor. :func:`describe_saved` reads the files instead,
            so that a memory-mapped graph's pages are not all left resident.
    """
    offsets, total = {}, 0
    for t in graph.node_types:
        offsets[t] = total
        total += graph.num_nodes(t)
    degrees, touched = [], {t: np.zeros(graph.num_nodes(t), bool) for t in graph.node_types}
    label_t = np.int32 if total < 2**31 else np.int64
    labels = np.arange(total, dtype=label_t)
    for fwd in graph.canonical_edge_types:
        rel = graph.relation(fwd)
        for et in (fwd, graph.reverse_of(fwd)):
            deg = graph.degree(et).cpu().numpy()
            degrees.append(DegreeStats.of(et, deg))
            touched[et[0]] |= deg > 0
        indptr = rel.out_indptr.cpu().numpy()
        read = read_indices or (lambda e, a, b, r=rel: r.out_indices[a:b].cpu().numpy())
        for start in range(0, rel.num_edges, chunk_edges):
            stop = min(start + chunk_edges, rel.num_edges)
            src = _sources(indptr, start, stop) + offsets[fwd[0]]
            dst = read(fwd, start, stop).astype(np.int64) + offsets[fwd[2]]
            labels = _merge_components(labels, src, dst)
    n_comp = len(np.unique(labels)) if total else 0
    largest = int(np.bincount(labels).max()) if total else 0
    return GraphSummary(
        num_nodes={t: graph.num_nodes(t) for t in graph.node_types},
        num_edges={e: graph.num_edges(e) for e in graph.canonical_edge_types},
        degrees=degrees, num_components=int(n_comp), largest_component=largest,
        largest_component_fraction=largest / total if total else 0.0,
        isolated={t: int((~m).sum()) for t, m in touched.items()},
        features={t: dict(graph.features(t).kinds) for t in graph.node_types})


def _sources(indptr: np.ndarray, start: int, stop: int) -> np.ndarray:
    """The source node of edges ``start:stop`` of a CSR (int64 ``[stop - start]``)."""
    r0 = int(np.searchsorted(indptr, start, side="right")) - 1
    r1 = int(np.searchsorted(indptr, stop, side="left"))
    rows = np.arange(r0, r1, dtype=np.int64)
    counts = np.minimum(indptr[r0 + 1:r1 + 1], stop) - np.maximum(indptr[r0:r1], start)
    return np.repeat(rows, counts)


def _merge_components(labels: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Component labels after adding the edges ``(src, dst)`` to those ``labels`` already join
    (labels are node indices of representatives; the result's are component numbers)."""
    n = len(labels)
    adj = sp.coo_matrix((np.ones(src.size, np.int8), (labels[src], labels[dst])), shape=(n, n)).tocsr()
    _, comp = connected_components(adj, directed=False)
    return comp.astype(labels.dtype)[labels]


def describe_saved(graph: PinBoardGraph, path: str | Path, chunk_edges: int = 1 << 24) -> GraphSummary:
    """:func:`describe` of ``graph``, loaded (memory-mapped) from the saved graph at ``path``, with its
    edges read from the files in chunks: memory stays bounded by the node count (about 40 bytes
    per node, plus a chunk), whatever the edge count."""
    path = Path(path)

    def read(fwd: EdgeType, start: int, stop: int) -> np.ndarray:
        return read_npy_range(relation_folder(path, fwd) / "out_indices.npy", start, stop)

    return describe(graph, chunk_edges=chunk_edges, read_indices=read)
