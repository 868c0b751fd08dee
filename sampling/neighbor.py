"""Uniform multi-hop heterogeneous neighbor sampling with per-relation fanouts, as per-hop blocks.

Conventions follow PyG / DGL: ``fanouts`` is keyed by the *message* edge type ``(src, rel, dst)``;
for each ``dst``-typed node of the current frontier up to ``k`` of its ``src``-typed neighbors are
drawn. In the Pin-Board graph, ``("board", "has", "pin")`` draws boards for pins and
``("pin", "in", "board")`` draws pins for boards. One sampled hop is a :class:`Block`; the next
hop's frontier is the block's source nodes (so the seeds are sampled again at every hop, with that
hop's fanouts).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from boardgraph.graph import PinBoardGraph
from boardgraph.graph.store import EdgeType

from . import _ops
from ._ops import resolve_generator, take, take_long, uniform_offsets, uniform_offsets_np
from ._topology import Direction, PositionSet, Topology
from .errors import SamplingError
from .exclusion import EdgeExclusion
from .minibatch import MiniBatch
from .types import Block, SampledSubgraph

__all__ = ["Block", "SampledSubgraph", "NeighborSampler", "check_seeds"]


def check_seeds(seeds: Tensor, num_nodes: int, ntype: str, device: torch.device) -> Tensor:
    """Seeds as int64 ``[B]`` on ``device``; raises :class:`SamplingError` on bad shape or range."""
    seeds = torch.as_tensor(seeds, device=device)
    if seeds.dim() != 1 or seeds.dtype.is_floating_point or seeds.dtype == torch.bool:
        raise SamplingError(f"seeds must be a 1-D integer tensor of {ntype} indices, got "
                            f"{seeds.dtype} {tuple(seeds.shape)}")
    seeds = seeds.long()
    if seeds.numel() and (int(seeds.min()) < 0 or int(seeds.max()) >= num_nodes):
        raise SamplingError(f"{ntype} seeds must lie in [0, {num_nodes}), got range "
                            f"[{int(seeds.min())}, {int(seeds.max())}]; map external ids with graph.index")
    return seeds


def sample_row_positions(d: Direction, rows: Tensor, k: int, generator: torch.Generator | None,
                         replace: bool, excl: PositionSet | None) -> tuple[Tensor, Tensor]:
    """CSR positions of up to ``k`` uniform neighbors of each row (``k = -1``: all of them).

    Returns ``(pos, row)``: int64 ``[M]`` positions in ``d`` and the index into ``rows`` of each,
    grouped by row. Excluded positions are never drawn (the draw is uniform over the others).
    """
    if k > 0 and not replace and excl is None and rows.device.type == "cpu" and _ops.NUMPY_CPU:
        return _sample_row_positions_np(d, rows, k, generator)
    start, end = take(d.indptr, rows), take(d.ends, rows)
    deg = end - start
    if excl is not None:
        i0, x = excl.locate(start, end)
        deg = deg - x
    n = rows.numel()
    if k < 0:
        count = deg
        total = int(count.sum())
        row = torch.repeat_interleave(torch.arange(n, device=rows.device), count, output_size=total)
        first = torch.cumsum(count, 0) - count
        off = torch.arange(total, device=rows.device) - take(first, row)
        pos = take(start, row) + off if excl is None else excl.map(take(start, row), take(i0, row), off)
        return pos, row
    off, count = uniform_offsets(deg, k, generator, replace=replace)
    if excl is None:  # written row-major, so the result is grouped by row whatever off's layout
        pos = torch.add(start.unsqueeze(1), off, out=torch.empty(n, k, dtype=torch.long, device=rows.device))
    else:
        pos = excl.map(start.unsqueeze(1), i0.unsqueeze(1), off)
    total = int(count.sum())
    ar = torch.arange(n, device=rows.device)
    if total == n * k:  # every row is full: no compaction needed
        return pos.reshape(-1), ar.repeat_interleave(k, output_size=total)
    keep = torch.arange(k, device=rows.device).unsqueeze(0) < count.unsqueeze(1)
    return pos.masked_select(keep), ar.repeat_interleave(count, output_size=total)


def _sample_row_positions_np(d: Direction, rows: Tensor, k: int,
                             generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """:func:`sample_row_positions` without replacement or exclusions, for CPU rows, in numpy:
    the same distribution as the torch path, and the same ``(pos, row)`` wherever that runs Floyd's
    sequential rounds (see ``_ops.NUMPY_CPU``)."""
    indptr, r = d.indptr.numpy(), rows.numpy()
    start = indptr.take(r)
    deg = indptr.take(r + 1) - start
    n = r.shape[0]
    off, count = uniform_offsets_np(deg, k, generator)
    pos = np.add(start[:, None], off, out=np.empty((n, k), dtype=np.int64))  # row-major: grouped by row
    total = int(count.sum())
    if total == n * k:  # every row is full: no compaction needed
        return torch.from_numpy(pos.reshape(-1)), torch.from_numpy(np.repeat(np.arange(n, dtype=np.int64), k))
    pos = pos[np.arange(k, dtype=np.int64)[None, :] < count[:, None]]
    return torch.from_numpy(pos), torch.from_numpy(np.repeat(np.arange(n, dtype=np.int64), count))


def _stack_pair(a: Tensor, b: Tensor) -> Tensor:
    """``torch.stack([a, b])`` (numpy's copy on CPU: no OpenMP fork/join for a plain copy)."""
    if a.device.type == "cpu" and _ops.NUMPY_CPU:
        return torch.from_numpy(np.stack([a.numpy(), b.numpy()]))
    return torch.stack([a, b])


class NeighborSampler:
    """Uniform multi-hop neighbor sampler over a heterogeneous graph.

    Args:
        graph: the graph (any device; sampling runs where the topology lives).
        fanouts: ``{message etype: [k_hop1, k_hop2, ...]}``; every list has one entry per hop,
            ``0`` skips the relation at that hop and ``-1`` takes every neighbor. Hop 1 is the
            hop next to the seeds.
        replace: draw with replacement (exactly ``k`` per node with any neighbor) instead of
            without (``min(deg, k)`` distinct neighbors).
        exclude: edges never sampled by this sampler (e.g. held-out evaluation edges).
        seed_type: node type of plain-tensor seeds.

    Example (the reference two-hop: pins -> 10 boards -> 10 pins per board)::

        sampler = NeighborSampler(g, {("board", "has", "pin"): [10, 0], ("pin", "in", "board"): [0, 10]})
        sub = sampler.sample(torch.tensor([0, 5, 7]), generator=torch.Generator().manual_seed(0))
    """

    def __init__(self, graph: PinBoardGraph, fanouts: Mapping[EdgeType, Sequence[int]], *,
                 replace: bool = False, exclude: EdgeExclusion | None = None, seed_type: str = "pin") -> None:
        if not fanouts:
            raise SamplingError("fanouts is empty; give {etype: [k per hop]}, e.g. {('board', 'has', 'pin'): [10]}")
        hops = {len(v) for v in fanouts.values()}
        if len(hops) != 1:
            raise SamplingError(f"every fanout list needs one entry per hop, got lengths "
                                f"{ {tuple(k): len(v) for k, v in fanouts.items()} }")
        self.topology = Topology(graph, exclude)
        self.fanouts: dict[EdgeType, list[int]] = {}
        for etype, ks in fanouts.items():
            etype = tuple(etype)  # type: ignore[assignment]
            if etype not in graph.edge_types:
                raise SamplingError(f"fanout names unknown edge type {etype}; the graph has {graph.edge_types}")
            ks = [int(k) for k in ks]
            if any(k < -1 for k in ks):
                raise SamplingError(f"fanouts of {etype} must be >= -1 (-1 = all neighbors), got {ks}")
            self.fanouts[etype] = ks
        self.num_hops = hops.pop()
        # the direction read to find an etype's sources for its destination nodes
        self._dirs = {e: self.topology.direction(graph.reverse_of(e)) for e in self.fanouts}
        self.replace = bool(replace)
        self.seed_type = seed_type
        self.graph = graph

    def __repr__(self) -> str:
        return f"NeighborSampler(fanouts={self.fanouts}, replace={self.replace})"

    def sample_neighbors(self, nodes: Tensor, etype: EdgeType, fanout: int,
                         generator: torch.Generator | int | None = None,
                         exclude: EdgeExclusion | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """One hop in global ids (DGL's ``sample_neighbors``): up to ``fanout`` sources of ``etype``
        for each of ``nodes`` (``etype[2]`` indices; ``-1`` takes all), with this sampler's
        ``replace`` and exclusions. No relabelling.

        Returns:
            ``(src, dst, eid)``, int64 ``[E]`` each, grouped by destination in ``nodes`` order.
        """
        etype = tuple(etype)  # type: ignore[assignment]
        d = self._dirs.get(etype) or self.topology.direction(self.graph.reverse_of(etype))
        topo = self.topology
        nodes = torch.as_tensor(nodes, device=topo.device).long()
        pos, row = sample_row_positions(d, nodes, int(fanout), resolve_generator(generator, topo.device),
                                        self.replace, topo.position_set(d, exclude))
        return take_long(d.indices, pos), take(nodes, row), topo.source_eids(d.fwd, d.eids_at(pos))

    def sample(self, seeds: Tensor | Mapping[str, Tensor], generator: torch.Generator | int | None = None,
               exclude: EdgeExclusion | None = None) -> SampledSubgraph:
        """Sample ``num_hops`` hops around ``seeds``.

        Args:
            seeds: int64 ``[B]`` indices of ``seed_type`` nodes, or ``{ntype: [B_t]}``; duplicates
                are allowed (they share one row, see ``seed_local``).
            generator: a ``torch.Generator`` on the graph's device, an int seed, or None.
            exclude: edges not to sample in this call (e.g. the batch's own positive pairs).

        Returns:
            A :class:`SampledSubgraph`; all tensors on the graph's device.
        """
        topo = self.topology
        dev = topo.device
        gen = resolve_generator(generator, dev)
        if not isinstance(seeds, Mapping):
            seeds = {self.seed_type: seeds}
        frontier: dict[str, Tensor] = {}
        seed_local: dict[str, Tensor] = {}
        for t, s in seeds.items():
            s = check_seeds(s, topo.num_nodes(t), t, dev)
            frontier[t], seed_local[t] = topo.compact(t, topo.num_nodes(t), s, numpy_cpu=True)
        seeds_u = dict(frontier)
        blocks: list[Block] = []
        for hop in range(self.num_hops):
            parts: list[tuple[EdgeType, Tensor, Tensor, Tensor]] = []  # etype, dst local, nbr, eid
            for etype, ks in self.fanouts.items():
                k = ks[hop]
                if k == 0 or etype[2] not in frontier or frontier[etype[2]].numel() == 0:
                    continue
                d = self._dirs[etype]
                pos, row = sample_row_positions(d, frontier[etype[2]], k, gen, self.replace,
                                                topo.position_set(d, exclude))
                nbr = take_long(d.indices, pos)
                eid = topo.source_eids(d.fwd, d.eids_at(pos))
                parts.append((etype, row, nbr, eid))
            src_nodes: dict[str, Tensor] = {}
            src_local: list[Tensor] = [torch.empty(0)] * len(parts)
            for t in list(frontier) + [p[0][0] for p in parts if p[0][0] not in frontier]:
                if t in src_nodes:
                    continue
                mine = [i for i, p in enumerate(parts) if p[0][0] == t]
                prefix = frontier.get(t)
                if not mine:  # nothing new: the (distinct) frontier carries over
                    src_nodes[t] = prefix
                    continue
                ids = torch.cat([parts[i][2] for i in mine]) if len(mine) > 1 else parts[mine[0]][2]
                src_nodes[t], local = topo.compact(t, topo.num_nodes(t), ids, prefix, numpy_cpu=True)
                for i, loc in zip(mine, torch.split(local, [parts[i][2].numel() for i in mine])):
                    src_local[i] = loc
            block = Block(src_nodes, frontier)
            for i, (etype, row, _, eid) in enumerate(parts):
                block.edge_index[etype] = _stack_pair(src_local[i], row)
                block.edge_ids[etype] = eid
            blocks.append(block)
            frontier = src_nodes
        blocks.reverse()
        return SampledSubgraph(seeds_u, seed_local, blocks)

    def sample_minibatch(self, seeds: Tensor, generator: torch.Generator | int | None = None,
                         exclude: EdgeExclusion | None = None) -> MiniBatch:
        """:meth:`sample` wrapped as a :class:`~boardgraph.sampling.MiniBatch` (for the loader)."""
        seeds = check_seeds(seeds, self.topology.num_nodes(self.seed_type), self.seed_type, self.topology.device)
        return MiniBatch.from_subgraph(seeds, self.sample(seeds, generator, exclude), self.seed_type)
