"""The plain result types of the samplers (PyG's ``SamplerOutput``, GraphBolt's sampled subgraph).

A sampler returns one of these; :class:`~boardgraph.sampling.MiniBatch` (``minibatch.py``) and
:class:`~boardgraph.sampling.PinBoardLoader` (``loader.py``) assemble batches from them. This module
imports no sampler and no mini-batch code, so the dependencies run one way::

    types  <-  minibatch  <-  samplers (neighbor, boardmates, random_walk, negatives, pairs)  <-  loader

Every tensor lives on the device of the graph it was sampled from; node and edge indices are
int64, ``-1`` marks padding in the ``[B, K]`` results and ``mask`` says which entries are valid.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from boardgraph.schema import EdgeType

__all__ = ["Block", "SampledSubgraph", "BoardMates", "ImportanceNeighbors", "Negatives", "PositivePairs"]


@dataclass
class Block:
    """One hop of message passing from source nodes to destination nodes, in local ids.

    Attributes:
        src_nodes: ``{ntype: int64 [S_t]}`` global ids of the source nodes. For every type in
            ``dst_nodes`` the destination nodes come first: ``src_nodes[t][:D_t] == dst_nodes[t]``.
        dst_nodes: ``{ntype: int64 [D_t]}`` global ids of the destination nodes.
        edge_index: ``{etype: int64 [2, E]}`` rows ``(src local id, dst local id)``, grouped by
            destination node.
        edge_ids: ``{etype: int64 [E]}`` forward edge ids in the source graph.
    """

    src_nodes: dict[str, Tensor]
    dst_nodes: dict[str, Tensor]
    edge_index: dict[EdgeType, Tensor] = field(default_factory=dict)
    edge_ids: dict[EdgeType, Tensor] = field(default_factory=dict)

    @property
    def num_edges(self) -> int:
        return sum(int(e.shape[1]) for e in self.edge_index.values())

    def num_src_nodes(self, ntype: str) -> int:
        return int(self.src_nodes[ntype].numel()) if ntype in self.src_nodes else 0

    def num_dst_nodes(self, ntype: str) -> int:
        return int(self.dst_nodes[ntype].numel()) if ntype in self.dst_nodes else 0


@dataclass
class SampledSubgraph:
    """The result of :meth:`NeighborSampler.sample`.

    Attributes:
        seeds: ``{ntype: int64 [U_t]}`` distinct seeds (first-appearance order); equal to
            ``blocks[-1].dst_nodes``.
        seed_local: ``{ntype: int64 [B_t]}`` for every seed as given, its row in ``seeds[t]``.
        blocks: ``blocks[0]`` is the outermost hop (its ``src_nodes`` are the input nodes whose
            features an encoder reads); ``blocks[-1]`` ends at the seeds.
    """

    seeds: dict[str, Tensor]
    seed_local: dict[str, Tensor]
    blocks: list[Block]

    @property
    def input_nodes(self) -> dict[str, Tensor]:
        return self.blocks[0].src_nodes if self.blocks else self.seeds

    @property
    def num_sampled_edges(self) -> int:
        return sum(b.num_edges for b in self.blocks)


@dataclass
class BoardMates:
    """Board-mates of a batch of seed pins, padded to ``K`` per seed.

    Attributes:
        seeds: int64 ``[B]`` seed pin indices.
        mates: int64 ``[B, K]`` mate pin indices, ``-1`` where ``mask`` is False.
        boards: int64 ``[B, K]`` the board each mate was drawn through, ``-1`` where masked.
        mask: bool ``[B, K]``; valid entries come first in every row.
    """

    seeds: Tensor
    mates: Tensor
    boards: Tensor
    mask: Tensor

    @property
    def k(self) -> int:
        return int(self.mates.shape[1])


@dataclass
class ImportanceNeighbors:
    """Top-``T`` random-walk neighbors per seed.

    Attributes:
        seeds: int64 ``[B]``.
        neighbors: int64 ``[B, T]`` pin indices by decreasing visit count, ``-1`` padding.
        weights: float32 ``[B, T]`` visit counts normalised over the row (0 on padding).
        counts: int64 ``[B, T]`` raw visit counts (0 on padding).
        mask: bool ``[B, T]`` valid entries (a prefix of every row).
    """

    seeds: Tensor
    neighbors: Tensor
    weights: Tensor
    counts: Tensor
    mask: Tensor


@dataclass
class Negatives:
    """Negatives drawn for a batch of anchors.

    Attributes:
        anchors: int64 ``[B]`` anchor indices.
        nodes: int64 ``[B, M]`` negative indices of type ``ntype`` (``-1`` where none was drawn).
        mask: bool ``[B, M]``: True where the negative is usable (drawn, and not a positive of its
            anchor within the batch, nor the anchor itself, nor an edge when the sampler checks).
        log_q: float32 ``[B, M]`` log-probability of drawing each negative under the sampler's
            proposal (for logQ correction: ``logits - log_q``), or None (hard negatives).
        ntype: node type of the negatives.
    """

    anchors: Tensor
    nodes: Tensor
    mask: Tensor
    log_q: Tensor | None
    ntype: str


@dataclass
class PositivePairs:
    """A batch of positive pairs.

    Attributes:
        anchors: int64 ``[B]`` anchor pins.
        positives: int64 ``[B]`` a board (``kind="pin-board"``) or a board-mate pin (``"pin-pin"``).
        via: int64 ``[B]`` the board joining a pin-pin pair (the board itself for pin-board).
        edge_ids: int64 ``[B]`` the anchor's (pin, board) edge id.
        kind: ``"pin-board"`` or ``"pin-pin"``.
    """

    anchors: Tensor
    positives: Tensor
    via: Tensor
    edge_ids: Tensor
    kind: str

    def __len__(self) -> int:
        return int(self.anchors.numel())
