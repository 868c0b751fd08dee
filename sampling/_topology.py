"""Per-sampler view of the graph topology (internal): traversal directions, eid maps, exclusions."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from boardgraph.graph import PinBoardGraph
from boardgraph.graph.store import EdgeType

from ._ops import Compactor, take, take_long
from .errors import SamplingError
from .exclusion import EdgeExclusion, _forward

__all__ = ["Direction", "PositionSet", "Topology"]


@dataclass
class Direction:
    """One traversal direction of a relation: rows are ``etype[0]`` nodes, entries ``etype[2]`` nodes."""

    etype: EdgeType
    fwd: EdgeType
    is_reverse: bool
    indptr: Tensor          # int64 [N_rows + 1]
    indices: Tensor         # int32/int64 [E]
    eid: Tensor | None      # forward eid of each position (None: the position is the eid)
    max_deg: int

    @property
    def ends(self) -> Tensor:
        """``indptr[1:]``: row ``i`` ends at ``ends[i]`` (saves an ``rows + 1`` per lookup)."""
        return self.indptr[1:]

    def eids_at(self, pos: Tensor) -> Tensor:
        """int64 forward eids of CSR positions ``pos``."""
        return pos if self.eid is None else take_long(self.eid, pos)


class PositionSet:
    """Sorted CSR positions excluded from sampling in one direction, with the skip mapping.

    Sampling ``r`` uniformly in ``[0, deg - x)`` for a row holding ``x`` excluded positions and
    mapping it with :meth:`map` draws uniformly among the row's other positions: with ``P`` the
    sorted positions and ``H = P - arange(X)`` (non-decreasing), the ``r``-th kept position of the
    row starting at ``s`` with first excluded index ``i0`` is ``s + r + (#{H <= s + r - i0} - i0)``.
    """

    def __init__(self, pos: Tensor) -> None:
        self.pos = pos
        self.shifted = pos - torch.arange(pos.numel(), device=pos.device)

    def locate(self, start: Tensor, end: Tensor) -> tuple[Tensor, Tensor]:
        """``(i0, x)``: index of the first excluded position in each row and their count."""
        i0 = torch.searchsorted(self.pos, start)
        return i0, torch.searchsorted(self.pos, end) - i0

    def map(self, start: Tensor, i0: Tensor, r: Tensor) -> Tensor:
        """Positions of the ``r``-th kept entries (``start``, ``i0`` broadcast against ``r``)."""
        q = start + r
        c = torch.searchsorted(self.shifted, (q - i0).contiguous(), right=True) - i0
        return q + c

    def map_weighted(self, cum: Tensor, start: Tensor, i0: Tensor, i1: Tensor, u: Tensor) -> Tensor:
        """Weighted analogue of :meth:`map`: turn an offset ``u`` into a row's kept mass (excluded
        edges removed) into a coordinate of ``cum`` (add back the excluded mass below it)."""
        w = take(cum, self.pos + 1) - take(cum, self.pos)
        xc = torch.zeros(w.numel() + 1, dtype=cum.dtype, device=cum.device)
        torch.cumsum(w, 0, out=xc[1:])
        h = take(cum, self.pos) - xc[:-1]
        base = take(cum, start) - take(xc, i0)
        c = torch.searchsorted(h, (base + u).contiguous(), right=True)
        c = torch.minimum(torch.maximum(c, i0), i1)
        return take(cum, start) + u + (take(xc, c) - take(xc, i0))

    def excluded_mass(self, cum: Tensor, i0: Tensor, i1: Tensor) -> Tensor:
        w = take(cum, self.pos + 1) - take(cum, self.pos)
        xc = torch.zeros(w.numel() + 1, dtype=cum.dtype, device=cum.device)
        torch.cumsum(w, 0, out=xc[1:])
        return take(xc, i1) - take(xc, i0)

    def contains(self, p: Tensor) -> Tensor:
        i = torch.searchsorted(self.pos, p.contiguous()).clamp_(max=self.pos.numel() - 1)
        return take(self.pos, i) == p


class Topology:
    """The graph a sampler reads, with construction-time exclusions applied and cached maps.

    Args:
        graph: the source graph; its edge ids are the ones samplers return.
        exclude: edges removed for good (held-out edges). The sampler then reads a filtered copy
            of the affected relations and maps edge ids back to ``graph``'s.
    """

    def __init__(self, graph: PinBoardGraph, exclude: EdgeExclusion | None = None) -> None:
        self.source = graph
        self.device = graph.device
        self._kept: dict[EdgeType, Tensor] = {}
        self._new_of_orig: dict[EdgeType, Tensor] = {}
        g = graph
        for fwd, e in (exclude.eids.items() if exclude is not None else ()):
            if e.numel() == 0:
                continue
            keep = torch.ones(graph.num_edges(fwd), dtype=torch.bool, device=self.device)
            keep[e.to(self.device)] = False
            g = g.remove_edges(fwd, eids=e.to(self.device))
            self._kept[fwd] = torch.nonzero(keep).squeeze(1)
            self._new_of_orig[fwd] = torch.where(keep, torch.cumsum(keep, 0) - 1, -1)
        self.graph = g
        self._dirs: dict[EdgeType, Direction] = {}
        self._rev_pos: dict[EdgeType, Tensor] = {}
        self.compact = Compactor()

    def num_nodes(self, ntype: str) -> int:
        return self.graph.num_nodes(ntype)

    def direction(self, etype: EdgeType) -> Direction:
        etype = tuple(etype)  # type: ignore[assignment]
        d = self._dirs.get(etype)
        if d is None:
            if etype not in self.graph.edge_types:
                raise SamplingError(f"unknown edge type {etype!r}; the graph has {self.graph.edge_types}")
            fwd, is_rev = _forward(self.graph, etype)
            indptr, indices, eid = self.graph.csr(etype)
            max_deg = int((indptr[1:] - indptr[:-1]).max()) if indptr.numel() > 1 else 0
            if max_deg >= 2**31:
                raise SamplingError(f"{etype} has a node of degree {max_deg}; samplers support degrees below 2**31")
            d = Direction(etype, fwd, is_rev, indptr, indices, eid, max_deg)
            self._dirs[etype] = d
        return d

    def reverse_positions(self, fwd: EdgeType) -> Tensor:
        """For each forward eid, its position in the reverse CSR (computed once, O(E))."""
        r = self._rev_pos.get(fwd)
        if r is None:
            _, _, in_eid = self.graph.csr(self.graph.reverse_of(fwd))
            r = torch.empty_like(in_eid)
            r.scatter_(0, in_eid.long(), torch.arange(in_eid.numel(), device=in_eid.device, dtype=in_eid.dtype))
            self._rev_pos[fwd] = r
        return r

    def local_eids(self, fwd: EdgeType, eids: Tensor) -> Tensor:
        """Source-graph eids -> eids of the filtered graph (removed edges dropped)."""
        m = self._new_of_orig.get(fwd)
        if m is None:
            return eids
        e = take(m, eids.to(self.device))
        return e[e >= 0]

    def source_eids(self, fwd: EdgeType, eids: Tensor) -> Tensor:
        """Filtered-graph eids -> source-graph eids."""
        m = self._kept.get(fwd)
        return eids if m is None else take(m, eids)

    def position_set(self, d: Direction, exclude: EdgeExclusion | None) -> PositionSet | None:
        """Excluded positions of direction ``d`` for a per-call exclusion (None when empty)."""
        if exclude is None or d.fwd not in exclude.eids:
            return None
        e = self.local_eids(d.fwd, exclude.eids[d.fwd].to(self.device))
        if e.numel() == 0:
            return None
        pos = take(self.reverse_positions(d.fwd), e).long() if d.is_reverse else e
        return PositionSet(torch.sort(pos).values)
