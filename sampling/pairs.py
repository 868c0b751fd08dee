"""Positive pairs for contrastive objectives: (pin, board) memberships and (pin, board-mate) pairs."""
from __future__ import annotations

import torch
from torch import Tensor

from boardgraph.graph import PinBoardGraph
from boardgraph.graph.store import EdgeType

from ._ops import resolve_generator, take
from ._topology import Topology
from .boardmates import BoardMateSampler
from .errors import SamplingError
from .exclusion import EdgeExclusion, find_edge_ids
from .neighbor import check_seeds, sample_row_positions
from .types import PositivePairs

__all__ = ["PositivePairs", "PairSampler"]


class PairSampler:
    """Draws positive pairs, never through excluded edges.

    Args:
        graph: the graph.
        relation: the ``(pin, rel, board)`` relation.
        exclude: edges never drawn (e.g. held-out evaluation edges).
        **mate_options: options of :class:`BoardMateSampler` for pin-pin pairs (``weighting``, ...).
    """

    def __init__(self, graph: PinBoardGraph, *, relation: EdgeType = ("pin", "in", "board"),
                 exclude: EdgeExclusion | None = None, **mate_options) -> None:
        relation = tuple(relation)  # type: ignore[assignment]
        if relation not in graph.canonical_edge_types:
            raise SamplingError(f"relation {relation} is not a stored relation; use one of {graph.canonical_edge_types}")
        self.relation = relation
        mate_options.setdefault("unique", False)
        self._mates = BoardMateSampler(graph, 1, exclude=exclude, relation=relation, **mate_options)
        self.topology: Topology = self._mates.topology  # one filtered graph and scratch maps for both

    def pin_board(self, num: int | None = None, seeds: Tensor | None = None,
                  generator: torch.Generator | int | None = None, exclude: EdgeExclusion | None = None) -> PositivePairs:
        """(pin, board) pairs: ``num`` edges uniformly, or one uniform board per pin of ``seeds``.

        Seeds on no (non-excluded) board are dropped, so ``len(result) <= len(seeds)``.
        """
        topo = self.topology
        dev = topo.device
        gen = resolve_generator(generator, dev)
        d = topo.direction(self.relation)
        excl = topo.position_set(d, exclude)
        if (num is None) == (seeds is None):
            raise SamplingError("give exactly one of num (uniform edges) or seeds (one board per pin)")
        if seeds is not None:
            seeds = check_seeds(seeds, topo.num_nodes(self.relation[0]), self.relation[0], dev)
            pos, row = sample_row_positions(d, seeds, 1, gen, False, excl)
            anchors = take(seeds, row)
        else:
            e = d.indices.numel() - (0 if excl is None else excl.pos.numel())
            if e <= 0:
                raise SamplingError(f"relation {self.relation} has no edge left to draw")
            r = torch.randint(0, e, (int(num),), generator=gen, device=dev)
            pos = r if excl is None else excl.map(torch.zeros_like(r), torch.zeros_like(r), r)
            anchors = torch.searchsorted(d.indptr, pos, right=True) - 1
        boards = take(d.indices, pos).long()
        eids = topo.source_eids(d.fwd, pos)
        return PositivePairs(anchors, boards, boards, eids, "pin-board")

    def pin_pin(self, seeds: Tensor, generator: torch.Generator | int | None = None,
                exclude: EdgeExclusion | None = None) -> PositivePairs:
        """(pin, board-mate) pairs, one mate per seed (seeds without a mate are dropped)."""
        bm = self._mates.sample(seeds, generator, exclude)
        keep = bm.mask[:, 0]
        anchors, mates, boards = bm.seeds[keep], bm.mates[keep, 0], bm.boards[keep, 0]
        eids = find_edge_ids(self.topology.source, self.relation, anchors, boards)
        return PositivePairs(anchors, mates, boards, eids, "pin-pin")
