"""Edges that samplers must never traverse (held-out evaluation edges, a batch's own positives).

An :class:`EdgeExclusion` names edges by their forward edge id (eid) per stored relation; an
excluded edge is excluded in both directions (``pin -> board`` and ``board -> pin``). Every
sampler accepts one at construction (applied once, by building a filtered copy of the affected
relations) and one per call (applied exactly while sampling, at O(log X) per draw for X excluded
edges).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch
from torch import Tensor

from boardgraph.graph import PinBoardGraph
from boardgraph.graph.store import EdgeType

from ._ops import find_in_segments
from .errors import SamplingError

__all__ = ["EdgeExclusion", "find_edge_ids"]


def _forward(graph: PinBoardGraph, etype: EdgeType) -> tuple[EdgeType, bool]:
    """(forward etype, whether ``etype`` is the reverse direction)."""
    etype = tuple(etype)  # type: ignore[assignment]
    if etype in graph.canonical_edge_types:
        return etype, False
    if etype not in graph.edge_types:
        raise SamplingError(f"unknown edge type {etype!r}; the graph has {graph.edge_types}")
    return graph.reverse_of(etype), True


def find_edge_ids(graph: PinBoardGraph, etype: EdgeType, src: Tensor, dst: Tensor) -> Tensor:
    """Forward edge ids of the index pairs ``(src[i], dst[i])`` of ``etype``; ``-1`` where no edge.

    A vectorised binary search inside CSR rows: O(n log deg), unlike a whole-relation key build,
    so it is cheap enough to call once per mini-batch. int64 ``[n]`` on the graph's device.
    """
    fwd, is_rev = _forward(graph, etype)
    dev = graph.device
    src, dst = torch.as_tensor(src, device=dev).long(), torch.as_tensor(dst, device=dev).long()
    if is_rev:
        src, dst = dst, src
    if src.shape != dst.shape:
        raise SamplingError(f"src and dst must have the same shape, got {tuple(src.shape)} and {tuple(dst.shape)}")
    ns, nd = graph.num_nodes(fwd[0]), graph.num_nodes(fwd[2])
    ok = (src >= 0) & (src < ns) & (dst >= 0) & (dst < nd)
    indptr, indices, _ = graph.csr(fwd)
    pos = find_in_segments(indptr, indices, torch.where(ok, src, 0), torch.where(ok, dst, 0))
    return torch.where(ok, pos, -1)


@dataclass(frozen=True)
class EdgeExclusion:
    """Sorted, unique forward edge ids to exclude, per stored relation.

    Build with :meth:`from_pairs` (node index pairs) or :meth:`from_eids`; combine with ``|``.

    Attributes:
        eids: ``{forward etype: int64 [X] ascending eids}``, on the graph's device.
    """

    eids: dict[EdgeType, Tensor] = field(default_factory=dict)

    @classmethod
    def from_eids(cls, graph: PinBoardGraph, eids: Mapping[EdgeType, Tensor]) -> "EdgeExclusion":
        """Exclusion from edge ids (``etype`` may name either direction; ids are forward eids).

        Raises:
            SamplingError: an id outside ``[0, num_edges)``.
        """
        out: dict[EdgeType, Tensor] = {}
        for etype, e in eids.items():
            fwd, _ = _forward(graph, etype)
            e = torch.as_tensor(e, device=graph.device).long().reshape(-1)
            n = graph.num_edges(fwd)
            if e.numel() and (int(e.min()) < 0 or int(e.max()) >= n):
                raise SamplingError(f"edge ids for {fwd} must lie in [0, {n}), got range "
                                    f"[{int(e.min())}, {int(e.max())}]; look ids up with find_edge_ids")
            prev = out.get(fwd)
            out[fwd] = torch.unique(e if prev is None else torch.cat([prev, e]))
        return cls(out)

    @classmethod
    def from_pairs(cls, graph: PinBoardGraph, pairs: Mapping[EdgeType, tuple[Tensor, Tensor]],
                   missing: str = "ignore") -> "EdgeExclusion":
        """Exclusion from node index pairs ``{etype: (src [n], dst [n])}`` in ``etype``'s direction.

        Args:
            missing: ``"ignore"`` skips pairs that are not edges (e.g. already removed);
                ``"raise"`` raises :class:`SamplingError` naming the first such pair.
        """
        if missing not in ("ignore", "raise"):
            raise SamplingError(f"missing must be 'ignore' or 'raise', got {missing!r}")
        eids = {}
        for etype, (src, dst) in pairs.items():
            e = find_edge_ids(graph, etype, src, dst)
            if missing == "raise" and bool((e < 0).any()):
                i = int(torch.nonzero(e < 0)[0])
                raise SamplingError(f"{int((e < 0).sum())} pair(s) are not edges of {etype}, e.g. "
                                    f"({int(torch.as_tensor(src)[i])}, {int(torch.as_tensor(dst)[i])}); "
                                    "pass missing='ignore' to skip them")
            eids[etype] = e[e >= 0]
        return cls.from_eids(graph, eids)

    def __or__(self, other: "EdgeExclusion") -> "EdgeExclusion":
        out = dict(self.eids)
        for k, v in other.eids.items():
            out[k] = torch.unique(torch.cat([out[k], v.to(out[k].device)])) if k in out else v
        return EdgeExclusion(out)

    def __len__(self) -> int:
        return sum(int(v.numel()) for v in self.eids.values())

    def to(self, device: torch.device | str) -> "EdgeExclusion":
        return EdgeExclusion({k: v.to(device) for k, v in self.eids.items()})
