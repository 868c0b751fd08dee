"""Random-walk importance neighbors (PinSage, Ying et al. 2018, https://arxiv.org/abs/1806.01973).

From every seed pin, ``num_walks`` walks of up to ``num_traversals`` pin -> board -> pin
traversals; before each traversal after the first a walk ends with probability ``restart_prob``
(the next walk restarts at the seed, so the walks together form one walk with restarts). Every pin
reached at the end of a traversal is a visit. A seed's importance neighbors are its ``T`` most
visited pins (ties: smaller index first), weighted by their visit counts normalised to sum to 1.
This matches DGL's ``PinSAGESampler(num_traversals, termination_prob, num_random_walks, T)``.

All walkers advance together: one vectorised step per hop, ``2 * num_traversals`` steps in all.
"""
from __future__ import annotations

import torch
from torch import Tensor

from boardgraph.graph import PinBoardGraph
from boardgraph.graph.store import EdgeType

from ._ops import RAND_BITS, random_bits, resolve_generator, scale_bits, take
from ._topology import Direction, PositionSet, Topology
from .errors import SamplingError
from .exclusion import EdgeExclusion
from .minibatch import MiniBatch
from .neighbor import check_seeds
from .types import ImportanceNeighbors

__all__ = ["ImportanceNeighbors", "PinSageSampler", "rank_visits"]


def rank_visits(visits: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    """Distinct visited nodes of every row by decreasing count (ties: smaller node first).

    Args:
        visits: int64 ``[B, V]`` visited node indices, ``-1`` for no visit.
        num_nodes: upper bound of the node indices.
    Returns:
        ``(nodes, counts)``, int64 ``[B, V]`` each; padding ``-1`` / ``0`` after the distinct nodes.
    """
    b, v = visits.shape
    if v == 0:
        return visits.clone(), torch.zeros_like(visits)
    big = num_nodes
    s = torch.sort(torch.where(visits >= 0, visits, big), dim=1).values
    new = torch.ones_like(s, dtype=torch.bool)
    new[:, 1:] = s[:, 1:] != s[:, :-1]
    run = torch.cumsum(new, 1) - 1
    counts = torch.zeros_like(s).scatter_add_(1, run, torch.ones_like(s))
    vals = torch.full_like(s, big).scatter_(1, run, s)  # every entry of a run holds the same value
    counts = torch.where(vals < big, counts, 0)
    key = (v - counts) * (big + 1) + vals  # ascending: most visits first, then smaller node
    order = torch.sort(key, dim=1).indices
    counts = counts.gather(1, order)
    nodes = torch.where(counts > 0, vals.gather(1, order), -1)
    return nodes, counts


class PinSageSampler:
    """PinSage random-walk importance neighbors (see the module docstring).

    Args:
        graph: the graph (walks run on its device).
        num_neighbors: ``T``, neighbors kept per seed.
        num_walks: walks per seed.
        num_traversals: pin -> board -> pin traversals per walk.
        restart_prob: probability that a walk ends before each traversal after its first.
        exclude_self: never return the seed as its own neighbor (its visits are dropped).
        exclude: edges never traversed by this sampler (e.g. held-out evaluation edges).
        relation: the ``(pin, rel, board)`` relation.
    """

    def __init__(self, graph: PinBoardGraph, num_neighbors: int = 10, *, num_walks: int = 10,
                 num_traversals: int = 3, restart_prob: float = 0.5, exclude_self: bool = True,
                 exclude: EdgeExclusion | None = None, relation: EdgeType = ("pin", "in", "board")) -> None:
        for name, val in (("num_neighbors", num_neighbors), ("num_walks", num_walks), ("num_traversals", num_traversals)):
            if int(val) < 1:
                raise SamplingError(f"{name} must be >= 1, got {val}")
        if not 0.0 <= restart_prob < 1.0:
            raise SamplingError(f"restart_prob must lie in [0, 1), got {restart_prob}")
        relation = tuple(relation)  # type: ignore[assignment]
        if relation not in graph.canonical_edge_types:
            raise SamplingError(f"relation {relation} is not a stored relation; use one of {graph.canonical_edge_types}")
        self.num_neighbors, self.num_walks, self.num_traversals = int(num_neighbors), int(num_walks), int(num_traversals)
        self.restart_prob, self.exclude_self = float(restart_prob), bool(exclude_self)
        self.relation, self.seed_type = relation, relation[0]
        self.topology = Topology(graph, exclude)
        self._fwd: Direction = self.topology.direction(relation)
        self._rev: Direction = self.topology.direction(self.topology.graph.reverse_of(relation))

    def __repr__(self) -> str:
        return (f"PinSageSampler(num_neighbors={self.num_neighbors}, num_walks={self.num_walks}, "
                f"num_traversals={self.num_traversals}, restart_prob={self.restart_prob})")

    @staticmethod
    def _step(d: Direction, rows: Tensor, r: Tensor, excl: PositionSet | None) -> tuple[Tensor, Tensor]:
        start, end = take(d.indptr, rows), take(d.ends, rows)
        deg = end - start
        if excl is not None:
            i0, x = excl.locate(start, end)
            deg = deg - x
        off = scale_bits(r, deg, nonnegative=True)
        pos = start + off if excl is None else excl.map(start, i0, off)
        ok = deg > 0
        return take(d.indices, torch.where(ok, pos, 0)).long(), ok

    def walks(self, seeds: Tensor, generator: torch.Generator | int | None = None,
              exclude: EdgeExclusion | None = None) -> Tensor:
        """The walk traces: int64 ``[B * num_walks, num_traversals + 1]``.

        Row ``i * num_walks + w`` is walk ``w`` of ``seeds[i]``: column 0 is the seed, column ``t``
        the pin reached by traversal ``t``, ``-1`` once the walk has ended (restart, or a pin or
        board without a way on).
        """
        topo = self.topology
        dev = topo.device
        gen = resolve_generator(generator, dev)
        seeds = check_seeds(seeds, topo.num_nodes(self.seed_type), self.seed_type, dev)
        nw, nt = self.num_walks, self.num_traversals
        cur = seeds.repeat_interleave(nw)
        w = cur.numel()
        traces = torch.full((w, nt + 1), -1, dtype=torch.long, device=dev)
        traces[:, 0] = cur
        if w == 0 or self._fwd.indices.numel() == 0:
            return traces
        r = random_bits((nt, 3, w), gen, dev)
        stay = int(self.restart_prob * 2**RAND_BITS)  # a walk goes on when its draw is >= stay
        ex_f, ex_r = topo.position_set(self._fwd, exclude), topo.position_set(self._rev, exclude)
        alive = torch.ones(w, dtype=torch.bool, device=dev)
        for t in range(nt):  # one vectorised step per hop over all walkers
            if t > 0 and self.restart_prob > 0:
                alive &= r[t, 2] >= stay
            board, ok = self._step(self._fwd, cur, r[t, 0], ex_f)
            alive &= ok
            cur, ok = self._step(self._rev, board, r[t, 1], ex_r)
            alive &= ok
            traces[:, t + 1] = torch.where(alive, cur, -1)
        return traces

    def ranked(self, seeds: Tensor, generator: torch.Generator | int | None = None,
               exclude: EdgeExclusion | None = None) -> tuple[Tensor, Tensor]:
        """All visited pins of every seed by decreasing visit count: ``(nodes, counts)`` int64
        ``[B, num_walks * num_traversals]``, padded with ``-1`` / ``0`` (see :func:`rank_visits`)."""
        seeds = check_seeds(seeds, self.topology.num_nodes(self.seed_type), self.seed_type, self.topology.device)
        traces = self.walks(seeds, generator, exclude)
        b = seeds.numel()
        visits = traces[:, 1:].reshape(b, -1)
        if self.exclude_self:
            visits = torch.where(visits == seeds.unsqueeze(1), -1, visits)
        return rank_visits(visits, self.topology.num_nodes(self.seed_type))

    def sample(self, seeds: Tensor, generator: torch.Generator | int | None = None,
               exclude: EdgeExclusion | None = None) -> ImportanceNeighbors:
        """Top-``num_neighbors`` importance neighbors of ``seeds`` (int64 ``[B]``)."""
        seeds = check_seeds(seeds, self.topology.num_nodes(self.seed_type), self.seed_type, self.topology.device)
        nodes, counts = self.ranked(seeds, generator, exclude)
        t = self.num_neighbors
        if nodes.shape[1] < t:  # fewer visits than T: pad
            pad = t - nodes.shape[1]
            nodes = torch.nn.functional.pad(nodes, (0, pad), value=-1)
            counts = torch.nn.functional.pad(counts, (0, pad), value=0)
        nodes, counts = nodes[:, :t].contiguous(), counts[:, :t].contiguous()
        total = counts.sum(1, keepdim=True)
        weights = (counts.to(torch.float32) / total.clamp(min=1).to(torch.float32))
        return ImportanceNeighbors(seeds, nodes, weights, counts, counts > 0)

    def sample_minibatch(self, seeds: Tensor, generator: torch.Generator | int | None = None,
                         exclude: EdgeExclusion | None = None) -> MiniBatch:
        """:meth:`sample` as a :class:`~boardgraph.sampling.MiniBatch` (input pins: seeds, then neighbors)."""
        return MiniBatch.from_neighbors(self.sample(seeds, generator, exclude), self.topology, self.seed_type)
