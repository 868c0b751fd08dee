"""Board-mate sampling: for each seed pin, up to K other pins that share a board with it.

A draw is two steps: a board of the seed (by the chosen weighting), then a pin of that board other
than the seed. ``weighting`` selects the distribution:

* ``"uniform"``: every board of the seed that has another pin is equally likely, then every other
  pin of the board.
* ``"size"``: a board ``b`` with ``|b| - 1`` other pins has weight ``(|b| - 1) ** size_exponent``
  (exponent 1: every (board, mate) pair equally likely; negative: prefer small, specific boards),
  then every other pin of the board is equally likely.
* ``"recency"``: both steps weight an edge by ``2 ** ((t - t_newest) / half_life)`` of its
  timestamp attribute: boards the seed saved recently, then pins saved to the board recently.

The seed itself is never drawn (its own slot in the board is skipped exactly, not rejected).
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from boardgraph.graph import PinBoardGraph
from boardgraph.graph.store import EdgeType

from ._ops import RAND_BITS, random_bits, resolve_generator, scale_bits, segment_search, take
from ._topology import Direction, PositionSet, Topology
from ._weights import prefix_sum, row_relative_recency
from .errors import SamplingError
from .exclusion import EdgeExclusion
from .minibatch import MiniBatch
from .neighbor import check_seeds
from .types import BoardMates

__all__ = ["BoardMates", "BoardMateSampler", "dedupe_rows"]

Weighting = Literal["uniform", "size", "recency"]


def dedupe_rows(values: Tensor, valid: Tensor, k: int, *others: Tensor) -> tuple[Tensor, ...]:
    """Keep the first ``k`` valid, distinct values of every row, in draw order, left-aligned.

    Args:
        values: int64 ``[B, M]``; valid: bool ``[B, M]``; others: ``[B, M]`` tensors carried along.
    Returns:
        ``(values [B, k], mask [B, k], *others [B, k])``, padding ``-1``.
    """
    b, m = values.shape
    big = torch.iinfo(torch.int64).max
    key = torch.where(valid, values, big)
    sv, si = torch.sort(key, dim=1, stable=True)  # stable: the earliest draw of a value comes first
    first = torch.ones_like(valid)
    first[:, 1:] = sv[:, 1:] != sv[:, :-1]
    keep = torch.zeros_like(valid).scatter_(1, si, first) & valid
    rank = torch.cumsum(keep, 1) - 1
    keep &= rank < k
    slot = torch.where(keep, rank, k)  # column k is a bin for dropped draws
    outs = []
    for t in (values,) + others:
        o = torch.full((b, k + 1), -1, dtype=t.dtype, device=t.device)
        outs.append(o.scatter_(1, slot, torch.where(keep, t, -1))[:, :k])
    mask = outs[0] >= 0
    return (outs[0], mask, *outs[1:])


class BoardMateSampler:
    """Samples up to ``K`` board-mates per seed pin (see the module docstring for the weightings).

    Args:
        graph: the graph (sampling runs on its device).
        k: mates per seed (``K``).
        weighting: ``"uniform"``, ``"size"`` or ``"recency"``.
        size_exponent: exponent of the ``"size"`` weighting.
        half_life: ``"recency"`` half-life, in the unit of the timestamp attribute (seconds for
            the builders' ``timestamp``). Required for ``"recency"``.
        timestamp: name of the edge attribute read by ``"recency"`` (e.g. ``"timestamp"`` or the
            synthetic dataset's ``"order"``).
        unique: with ``False`` (default) the ``K`` entries are independent draws (with
            replacement) from the weighting's distribution, so every seed with a mate gets ``K``
            and a seed without one gets none. With ``True`` the mates are distinct: ``oversample *
            K`` draws, the first ``K`` distinct kept, so a seed with fewer distinct mates gets fewer.
        oversample: draws per output slot when ``unique``.
        exclude: edges never traversed by this sampler (e.g. held-out evaluation edges).
        relation: the ``(pin, rel, board)`` relation.
    """

    def __init__(self, graph: PinBoardGraph, k: int = 16, *, weighting: Weighting = "uniform",
                 size_exponent: float = 1.0, half_life: float | None = None, timestamp: str = "timestamp",
                 unique: bool = False, oversample: int = 2, exclude: EdgeExclusion | None = None,
                 relation: EdgeType = ("pin", "in", "board")) -> None:
        if k < 1:
            raise SamplingError(f"k must be >= 1, got {k}")
        if oversample < 1:
            raise SamplingError(f"oversample must be >= 1, got {oversample}")
        if weighting not in ("uniform", "size", "recency"):
            raise SamplingError(f"weighting must be 'uniform', 'size' or 'recency', got {weighting!r}")
        relation = tuple(relation)  # type: ignore[assignment]
        if relation not in graph.canonical_edge_types:
            raise SamplingError(f"relation {relation} is not a stored relation of the graph; "
                                f"use one of {graph.canonical_edge_types}")
        self.k, self.weighting, self.unique, self.oversample = int(k), weighting, bool(unique), int(oversample)
        self.relation = relation
        self.seed_type = relation[0]
        self.topology = topo = Topology(graph, exclude)
        self._fwd: Direction = topo.direction(relation)
        self._rev: Direction = topo.direction(topo.graph.reverse_of(relation))
        # the seed's own slot in a board's row: needed to skip its weight when mates are weighted
        self._rev_pos = topo.reverse_positions(relation) if weighting == "recency" else None
        fdeg = topo.graph.degree(self._rev.etype)  # pins per board
        self._cum1: Tensor | None = None  # prefix sum of step-1 (seed -> board) weights
        self._cum2: Tensor | None = None  # prefix sum of step-2 (board -> mate) weights
        board = self._fwd.indices.long()
        if weighting == "size":
            self._cum1 = prefix_sum((take(fdeg, board) - 1).clamp_(min=0).to(torch.float64) ** float(size_exponent)
                                    * (take(fdeg, board) > 1))
        elif weighting == "recency":
            if half_life is None or not half_life > 0:
                raise SamplingError(f"weighting='recency' needs half_life > 0 (in timestamp units), got {half_life}")
            if timestamp not in topo.graph.relation(relation).attrs:
                raise SamplingError(f"weighting='recency' reads edge attribute {timestamp!r}, which {relation} "
                                    f"lacks (it has {sorted(topo.graph.relation(relation).attrs)}); build the "
                                    "graph with timestamp=... or pass timestamp='order'")
            ts = topo.graph.edge_attr(relation, timestamp)
            w1 = row_relative_recency(self._fwd, ts, half_life) * (take(fdeg, board) > 1)
            self._cum1 = prefix_sum(w1)
            self._cum2 = prefix_sum(row_relative_recency(self._rev, ts, half_life))
        elif bool((fdeg <= 1).any()):  # uniform over the boards that have another pin
            self._cum1 = prefix_sum((take(fdeg, board) > 1).long())

    def __repr__(self) -> str:
        return f"BoardMateSampler(k={self.k}, weighting={self.weighting!r}, unique={self.unique})"

    def _choose(self, d: Direction, cum: Tensor | None, start: Tensor, end: Tensor, r: Tensor,
                excl: PositionSet | None, skip: Tensor | None) -> tuple[Tensor, Tensor]:
        """One draw per entry of ``r [B, M]`` (random bits) from rows ``[start, end)`` (``[B, M]`` or
        ``[B, 1]``), never an excluded position nor ``skip`` (a position per entry).
        Returns (positions, valid)."""
        if excl is not None:
            i0, i1 = torch.searchsorted(excl.pos, start), torch.searchsorted(excl.pos, end)
        if cum is None:  # uniform over the row's positions (the mate step uses _uniform_mate)
            assert skip is None
            deg = end - start
            if excl is not None:
                deg = deg - (i1 - i0)
            off = scale_bits(r, deg, nonnegative=True)
            pos = start + off if excl is None else excl.map(start, i0, off)
            return pos.clamp_(max=d.indices.numel() - 1), (deg > 0).expand_as(pos)  # rows without a choice
        cs, ce = take(cum, start), take(cum, end)
        mass = ce - cs
        if excl is not None:
            mass = mass - excl.excluded_mass(cum, i0, i1)
        if skip is not None:
            w_skip = take(cum, skip + 1) - take(cum, skip)
            mass = mass - w_skip
        if cum.dtype.is_floating_point:
            u = r.to(cum.dtype) * 2.0**-RAND_BITS * mass
        else:
            u = scale_bits(r, mass)
        if skip is not None:
            a = take(cum, skip) - cs
            if excl is not None:
                a = a - (excl.excluded_mass(cum, i0, torch.searchsorted(excl.pos, skip)))
            u = u + torch.where(u >= a, w_skip, torch.zeros_like(w_skip))
        coord = cs + u if excl is None else excl.map_weighted(cum, start, i0, i1, u)
        pos = segment_search(cum, start, end, coord).clamp_(max=max(cum.numel() - 2, 0))
        valid = (mass > 0).expand_as(pos)
        if excl is not None:  # guard against a float tie landing on an excluded edge
            valid = valid & ~excl.contains(pos)
        if skip is not None:
            valid = valid & (pos != skip)
        return pos, valid

    def _uniform_mate(self, seeds: Tensor, start: Tensor, end: Tensor, r: Tensor,
                      excl: PositionSet | None) -> tuple[Tensor, Tensor]:
        """A uniform pin of each row ``[start, end)`` other than the row's seed, without knowing the
        seed's slot: draw among the first ``D - 1`` kept slots and, where that is the seed, take the
        last kept slot instead (uniform over the ``D - 1`` others). Returns (mates int64, valid)."""
        rev = self._rev
        deg = end - start
        if excl is not None:
            i0, i1 = torch.searchsorted(excl.pos, start), torch.searchsorted(excl.pos, end)
            deg = deg - (i1 - i0)
        others = deg - 1
        off = scale_bits(r, others)
        pos = start + off if excl is None else excl.map(start, i0, off)
        last = rev.indices.numel() - 1
        mate = take(rev.indices, pos.clamp_(max=last)).long()
        hit = torch.nonzero((mate == seeds.unsqueeze(1)).view(-1)).squeeze(1)
        if hit.numel():  # the draw landed on the seed: use the row's last kept slot
            n_last = others.expand_as(pos).reshape(-1).index_select(0, hit)
            s_hit = start.expand_as(pos).reshape(-1).index_select(0, hit)
            p_last = s_hit + n_last if excl is None else excl.map(
                s_hit, i0.expand_as(pos).reshape(-1).index_select(0, hit), n_last)
            mate.view(-1).index_copy_(0, hit, take(rev.indices, p_last.clamp_(min=0, max=last)).long())
        return mate, (others > 0).expand_as(mate)

    def sample(self, seeds: Tensor, generator: torch.Generator | int | None = None,
               exclude: EdgeExclusion | None = None, exclude_mates: Tensor | None = None) -> BoardMates:
        """Draw board-mates for ``seeds``.

        Args:
            seeds: int64 ``[B]`` pin indices (duplicates allowed).
            generator: a ``torch.Generator`` on the graph's device, an int seed, or None.
            exclude: edges not traversed in this call (e.g. the batch's positive (pin, board) pairs).
            exclude_mates: int64 ``[B]`` or ``[B, J]`` pins never returned as mates of the row's
                seed (e.g. its positive pin); ``-1`` entries are ignored. Such draws are dropped.

        Returns:
            :class:`BoardMates` on the graph's device.
        """
        topo, fwd, rev = self.topology, self._fwd, self._rev
        dev = topo.device
        gen = resolve_generator(generator, dev)
        seeds = check_seeds(seeds, topo.num_nodes(self.seed_type), self.seed_type, dev)
        b = seeds.numel()
        m = self.k * self.oversample if self.unique else self.k
        r = random_bits((2, b, m), gen, dev)
        s_start = take(fwd.indptr, seeds).unsqueeze(1)
        s_end = take(fwd.ends, seeds).unsqueeze(1)
        if fwd.indices.numel() == 0:
            full = torch.full((b, self.k), -1, dtype=torch.long, device=dev)
            return BoardMates(seeds, full, full.clone(), torch.zeros(b, self.k, dtype=torch.bool, device=dev))
        pos1, valid = self._choose(fwd, self._cum1, s_start, s_end, r[0], topo.position_set(fwd, exclude), None)
        board = take(fwd.indices, pos1)
        b_start, b_end = take(rev.indptr, board), take(rev.ends, board)
        excl2 = topo.position_set(rev, exclude)
        if self._cum2 is None:
            mate, ok2 = self._uniform_mate(seeds, b_start, b_end, r[1], excl2)
        else:
            self_pos = take(self._rev_pos, pos1)  # the seed's own slot in the board's row
            pos2, ok2 = self._choose(rev, self._cum2, b_start, b_end, r[1], excl2, self_pos)
            mate = take(rev.indices, pos2).long()
        valid = valid & ok2
        if exclude_mates is not None:
            ex = torch.as_tensor(exclude_mates, device=dev).long().view(b, -1)
            valid &= ~(mate.unsqueeze(2) == ex.unsqueeze(1)).any(2)
        if self.unique:
            mates, mask, boards = dedupe_rows(mate, valid, self.k, board.long())
            return BoardMates(seeds, mates, boards, mask)
        invalid = ~valid
        mates, boards = mate.masked_fill_(invalid, -1), board.long().masked_fill_(invalid, -1)
        if not bool((valid == valid[:, :1]).all()):  # some rows partly valid: left-align them
            order = torch.sort(invalid.to(torch.uint8), dim=1, stable=True).indices
            mates, boards, valid = mates.gather(1, order), boards.gather(1, order), valid.gather(1, order)
        return BoardMates(seeds, mates, boards, valid)

    def sample_minibatch(self, seeds: Tensor, generator: torch.Generator | int | None = None,
                         exclude: EdgeExclusion | None = None) -> MiniBatch:
        """:meth:`sample` as a :class:`~boardgraph.sampling.MiniBatch` whose input nodes are the
        seeds followed by their distinct mates (``seed_local``, ``mates_local`` index them)."""
        bm = self.sample(seeds, generator, exclude)
        return MiniBatch.from_board_mates(bm, self.topology, self.seed_type)
