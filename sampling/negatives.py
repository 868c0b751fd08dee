"""Negative sampling: uniform, popularity-smoothed (degree ** 0.75, with logQ), and hard negatives
from a band of random-walk ranks; plus the masks that keep a batch's positives out of its negatives.
"""
from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import Tensor

from boardgraph.graph import PinBoardGraph
from boardgraph.graph.store import EdgeType

from ._ops import random_bits, resolve_generator, scale_bits, take
from .errors import SamplingError
from ._topology import Topology
from .exclusion import EdgeExclusion, find_edge_ids
from .neighbor import check_seeds
from .random_walk import PinSageSampler
from .types import Negatives

__all__ = ["Negatives", "NegativeSampler", "UniformNegativeSampler", "PopularityNegativeSampler",
           "HardNegativeSampler", "positive_mask", "in_batch_negative_mask"]


class NegativeSampler(Protocol):
    """What the loader calls: ``sample(anchors [B], num, generator, positives) -> Negatives``."""

    ntype: str

    def sample(self, anchors: Tensor, num: int, generator: torch.Generator | int | None = None,
               positives: Tensor | None = None) -> Negatives: ...


def positive_mask(anchors: Tensor, candidates: Tensor, positives: Tensor | None,
                  same_type: bool = True) -> Tensor:
    """True where ``candidates[i, m]`` is a positive of ``anchors[i]`` within the batch.

    A candidate is a positive when some row ``j`` with ``anchors[j] == anchors[i]`` lists it in
    ``positives[j]`` (``[B]`` or ``[B, P]``, ``-1`` ignored), or, with ``same_type``, when it is
    the anchor itself. bool ``[B, M]``.
    """
    b, m = candidates.shape
    hit = candidates == anchors.unsqueeze(1) if same_type else torch.zeros_like(candidates, dtype=torch.bool)
    if positives is None or positives.numel() == 0:
        return hit
    pos = positives.view(b, -1)
    n = int(max(int(candidates.max()) if candidates.numel() else 0, int(pos.max())) + 1)
    keys = (anchors.unsqueeze(1) * n + pos).masked_select(pos >= 0)
    keys = torch.sort(keys).values
    if keys.numel() == 0:
        return hit
    q = anchors.unsqueeze(1) * n + candidates.clamp(min=0)
    i = torch.searchsorted(keys, q.contiguous()).clamp_(max=keys.numel() - 1)
    return hit | ((take(keys, i) == q) & (candidates >= 0))


def in_batch_negative_mask(anchors: Tensor, positives: Tensor, same_type: bool = True) -> Tensor:
    """bool ``[B, B]``: True where ``positives[j]`` may serve as a negative for ``anchors[i]``.

    False on the diagonal, where ``positives[j]`` is a positive of ``anchors[i]`` in the batch
    (same anchor and positive pair elsewhere in the batch, or the same positive item), and, with
    ``same_type`` (pin-pin pairs), where ``positives[j]`` is the anchor itself.
    """
    b = anchors.numel()
    cand = positives.view(1, b).expand(b, b)
    bad = positive_mask(anchors, cand, positives, same_type)
    bad |= positives.unsqueeze(0) == positives.unsqueeze(1)  # also catches the diagonal
    return ~bad


def _finish(anchors: Tensor, nodes: Tensor, log_q: Tensor | None, ntype: str, positives: Tensor | None,
            same_type: bool, graph: PinBoardGraph | None, edge_check: EdgeType | None) -> Negatives:
    mask = (nodes >= 0) & ~positive_mask(anchors, nodes, positives, same_type)
    if edge_check is not None and graph is not None:  # drop negatives that are true graph neighbors
        a = anchors.unsqueeze(1).expand_as(nodes).reshape(-1)
        e = find_edge_ids(graph, edge_check, a, nodes.clamp(min=0).reshape(-1)).view_as(nodes)
        mask &= e < 0
    return Negatives(anchors, nodes, mask, log_q, ntype)


class UniformNegativeSampler:
    """Negatives drawn uniformly (with replacement) from all ``ntype`` nodes; ``log_q = -log N``.

    Args:
        graph: the graph (draws happen on its device).
        ntype: node type of the negatives.
        anchor_type: node type of the anchors (``same_type`` masking applies when they match).
        edge_check: optional relation ``(anchor_type, rel, ntype)``: negatives joined to their
            anchor by an edge of it are masked (e.g. a pin's own boards).
    """

    def __init__(self, graph: PinBoardGraph, ntype: str = "pin", *, anchor_type: str = "pin",
                 edge_check: EdgeType | None = None) -> None:
        self.graph, self.ntype, self.anchor_type, self.edge_check = graph, ntype, anchor_type, edge_check
        self.num_nodes = graph.num_nodes(ntype)
        if self.num_nodes == 0:
            raise SamplingError(f"node type {ntype!r} has no nodes to draw negatives from")

    def sample(self, anchors: Tensor, num: int, generator: torch.Generator | int | None = None,
               positives: Tensor | None = None) -> Negatives:
        """``num`` negatives per anchor (``[B, num]``); ``positives`` (``[B]`` or ``[B, P]``) are masked."""
        dev = self.graph.device
        anchors = check_seeds(anchors, self.graph.num_nodes(self.anchor_type), self.anchor_type, dev)
        gen = resolve_generator(generator, dev)
        nodes = torch.randint(0, self.num_nodes, (anchors.numel(), num), generator=gen, device=dev)
        log_q = torch.full(nodes.shape, -math.log(self.num_nodes), dtype=torch.float32, device=dev)
        pos = None if positives is None else torch.as_tensor(positives, device=dev).long()
        return _finish(anchors, nodes, log_q, self.ntype, pos, self.ntype == self.anchor_type, self.graph,
                       self.edge_check)


class PopularityNegativeSampler:
    """Negatives drawn with probability ``deg(v) ** power / sum`` (word2vec's smoothing, 0.75).

    ``deg`` is the degree of ``ntype`` nodes in ``relation`` (by default the first relation whose
    source type is ``ntype``: a pin's boards, a board's pins), counted without the ``exclude``
    edges so held-out edges do not leak into the proposal. Nodes of degree 0 are never drawn.
    ``probs`` (float64 ``[N]``) is exposed; ``Negatives.log_q`` holds ``log probs[node]``.
    """

    def __init__(self, graph: PinBoardGraph, ntype: str = "pin", *, power: float = 0.75,
                 relation: EdgeType | None = None, anchor_type: str = "pin",
                 edge_check: EdgeType | None = None, exclude: EdgeExclusion | None = None) -> None:
        if relation is None:
            cands = [e for e in graph.edge_types if e[0] == ntype]
            if not cands:
                raise SamplingError(f"no relation starts at node type {ntype!r}; pass relation=...")
            relation = cands[0]
        counted = Topology(graph, exclude).graph if exclude is not None and len(exclude) else graph
        deg = counted.degree(relation).to(torch.float64)
        w = torch.where(deg > 0, deg ** float(power), 0.0)
        total = float(w.sum())
        if total <= 0:
            raise SamplingError(f"every {ntype!r} node has degree 0 in {relation}; popularity is undefined, "
                                "use UniformNegativeSampler")
        self.graph, self.ntype, self.anchor_type, self.edge_check = graph, ntype, anchor_type, edge_check
        self.power, self.relation = float(power), tuple(relation)
        self.probs = w / total
        self._cdf = torch.cumsum(self.probs, 0)
        self._log_p = torch.log(self.probs).to(torch.float32)

    def sample(self, anchors: Tensor, num: int, generator: torch.Generator | int | None = None,
               positives: Tensor | None = None) -> Negatives:
        """``num`` negatives per anchor with their proposal log-probabilities (``log_q``)."""
        dev = self.graph.device
        anchors = check_seeds(anchors, self.graph.num_nodes(self.anchor_type), self.anchor_type, dev)
        gen = resolve_generator(generator, dev)
        u = torch.rand(anchors.numel(), num, generator=gen, device=dev, dtype=torch.float64)
        nodes = torch.searchsorted(self._cdf, u * self._cdf[-1], right=True).clamp_(max=self.probs.numel() - 1)
        pos = None if positives is None else torch.as_tensor(positives, device=dev).long()
        return _finish(anchors, nodes, take(self._log_p, nodes), self.ntype, pos,
                       self.ntype == self.anchor_type, self.graph, self.edge_check)


class HardNegativeSampler:
    """Hard negatives: pins ranked ``lo..hi-1`` by random-walk visits from the anchor pin.

    Close in the graph but not among its nearest pins, so they are hard yet rarely true positives.
    The ranking comes from :class:`~boardgraph.sampling.PinSageSampler.ranked`; a band needs
    ``hi`` distinct visited pins, so the walks are long (defaults: 200 walks x 10 traversals).
    Anchors whose band is empty draw from ``fallback`` instead (default: popularity negatives).
    ``log_q`` is None: the proposal depends on the anchor.

    Args:
        graph: the graph.
        rank_range: ``(lo, hi)``, 0-based ranks, ``hi`` exclusive (e.g. ``(200, 500)``).
        walker: the walk configuration (default ``PinSageSampler(graph, num_walks=200,
            num_traversals=10, restart_prob=0.3)``).
        fallback: sampler for anchors without a band (None: rows stay masked).
    """

    def __init__(self, graph: PinBoardGraph, rank_range: tuple[int, int] = (200, 500), *,
                 walker: PinSageSampler | None = None, fallback: NegativeSampler | str | None = "popularity") -> None:
        lo, hi = int(rank_range[0]), int(rank_range[1])
        if not 0 <= lo < hi:
            raise SamplingError(f"rank_range must satisfy 0 <= lo < hi, got {rank_range}")
        self.walker = walker or PinSageSampler(graph, 1, num_walks=200, num_traversals=10, restart_prob=0.3)
        if self.walker.num_walks * self.walker.num_traversals < hi:
            raise SamplingError(f"rank_range ends at {hi} but the walker visits at most "
                                f"{self.walker.num_walks * self.walker.num_traversals} pins per anchor; "
                                "raise num_walks or num_traversals")
        if fallback == "popularity":
            fallback = PopularityNegativeSampler(graph, self.walker.seed_type, anchor_type=self.walker.seed_type)
        self.graph, self.rank_range, self.fallback = graph, (lo, hi), fallback
        self.ntype = self.walker.seed_type

    def sample(self, anchors: Tensor, num: int, generator: torch.Generator | int | None = None,
               positives: Tensor | None = None, exclude: EdgeExclusion | None = None) -> Negatives:
        """``num`` negatives per anchor drawn uniformly (with replacement) from its rank band;
        the walks never traverse ``exclude`` (nor the walker's own exclusions)."""
        dev = self.graph.device
        anchors = check_seeds(anchors, self.graph.num_nodes(self.ntype), self.ntype, dev)
        gen = resolve_generator(generator, dev)
        nodes, counts = self.walker.ranked(anchors, gen, exclude)
        lo, hi = self.rank_range
        n_distinct = (counts > 0).sum(1)
        band = (torch.clamp(n_distinct, max=hi) - lo).clamp_(min=0)
        idx = lo + scale_bits(random_bits((anchors.numel(), num), gen, dev), band.unsqueeze(1))
        idx = idx.clamp_(max=max(nodes.shape[1] - 1, 0))
        neg = torch.where(band.unsqueeze(1) > 0, nodes.gather(1, idx), -1)
        pos = None if positives is None else torch.as_tensor(positives, device=dev).long()
        if self.fallback is not None and bool((band == 0).any()):
            empty = torch.nonzero(band == 0).squeeze(1)
            fb = self.fallback.sample(take(anchors, empty), num, gen,
                                      None if pos is None else pos.view(anchors.numel(), -1).index_select(0, empty))
            neg = neg.index_copy(0, empty, torch.where(fb.mask, fb.nodes, -1))
        return _finish(anchors, neg, None, self.ntype, pos, True, None, None)
