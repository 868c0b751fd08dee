"""`MiniBatch`: what a sampler hands to an encoder (seeds, sampled structure, input nodes, features).

The contract a user's ``nn.Module`` can rely on:

* ``input_nodes[t]`` (int64 ``[N_t]``) are the distinct global indices of every ``t`` node whose
  features the batch needs; ``features[t][name]`` holds row ``i`` for ``input_nodes[t][i]``.
* ``seed_local`` (int64 ``[B]``) gives each seed's row in ``input_nodes[seed_type]`` (and, with
  blocks, in the last block's destination nodes).
* Sampled structures index the same rows: ``blocks`` (local ids per hop, ``blocks[0].src_nodes ==
  input_nodes``), ``mates_local`` ``[B, K]`` for board-mates, ``neighbors_local`` ``[B, T]`` for
  random-walk neighbors, ``negatives_local`` ``[B, M]`` for negatives; ``-1`` marks padding.

So an encoder computes ``h = encode(features)`` once (``[N_pin, D]``) and gathers ``h[seed_local]``,
``h[mates_local.clamp(min=0)]`` (masked), or runs message passing over ``blocks``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import Tensor

from .types import Block, BoardMates, ImportanceNeighbors, Negatives, SampledSubgraph

if TYPE_CHECKING:
    from ._topology import Topology

__all__ = ["MiniBatch", "apply_to_tensors"]


def apply_to_tensors(obj: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """``obj`` with ``fn`` applied to every tensor inside dataclasses, dicts, lists and tuples.
    Other values (strings, lists of text) are kept as they are."""
    if isinstance(obj, Tensor):
        return fn(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: apply_to_tensors(getattr(obj, f.name), fn)
                                           for f in dataclasses.fields(obj) if f.init})
    if isinstance(obj, dict):
        return {k: apply_to_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) and any(isinstance(v, (Tensor, dict, list, tuple)) or dataclasses.is_dataclass(v)
                                              for v in obj):
        return type(obj)(apply_to_tensors(v, fn) for v in obj)
    return obj


def _local(compact_local: Tensor, mask: Tensor, offset: int) -> Tensor:
    """Scatter the compacted local ids of the masked entries back into a ``-1``-padded matrix."""
    out = torch.full(mask.shape, -1, dtype=torch.long, device=mask.device)
    return out.masked_scatter_(mask, compact_local[offset:])


@dataclass
class MiniBatch:
    """One mini-batch (see the module docstring for the indexing contract).

    Attributes:
        seeds: int64 ``[B]`` global seed indices.
        seed_type: node type of the seeds.
        input_nodes: ``{ntype: int64 [N_t]}`` distinct global indices whose features are needed.
        seed_local: int64 ``[B]`` rows of the seeds in ``input_nodes[seed_type]``.
        blocks: per-hop blocks from :class:`~boardgraph.sampling.NeighborSampler` (outermost first).
        board_mates, mates_local: board-mates (global ids) and their rows ``[B, K]`` (-1 padding).
        neighbors, neighbors_local: random-walk importance neighbors and their rows ``[B, T]``.
        negatives, negatives_local: negatives and their rows ``[B, M]`` (-1 padding).
        features: ``{ntype: {name: value}}`` fetched for ``input_nodes`` (tensors ``[N_t, ...]``,
            text as ``list[str]``).
        epoch, batch_index, rank: where the batch came from (set by the loader).
    """

    seeds: Tensor
    seed_type: str = "pin"
    input_nodes: dict[str, Tensor] = field(default_factory=dict)
    seed_local: Tensor | None = None
    blocks: list[Block] = field(default_factory=list)
    board_mates: BoardMates | None = None
    mates_local: Tensor | None = None
    neighbors: ImportanceNeighbors | None = None
    neighbors_local: Tensor | None = None
    negatives: Negatives | None = None
    negatives_local: Tensor | None = None
    features: dict[str, dict[str, Any]] = field(default_factory=dict)
    epoch: int = 0
    batch_index: int = 0
    rank: int = 0

    @property
    def batch_size(self) -> int:
        return int(self.seeds.numel())

    @property
    def device(self) -> torch.device:
        return self.seeds.device

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "MiniBatch":
        """A copy with every tensor on ``device`` (``non_blocking`` pays off from pinned memory)."""
        return apply_to_tensors(self, lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> "MiniBatch":
        """A copy with every CPU tensor in page-locked memory (no-op without CUDA)."""
        if not torch.cuda.is_available():
            return self
        return apply_to_tensors(self, lambda t: t.pin_memory() if t.device.type == "cpu" else t)

    # -- builders from the samplers' result types (types.py) -------------------------------------
    @classmethod
    def from_subgraph(cls, seeds: Tensor, sub: SampledSubgraph, seed_type: str) -> "MiniBatch":
        """A batch of ``seeds`` (int64 ``[B]``, as given to the sampler) over a neighbor sample:
        input nodes = ``sub.input_nodes`` (the outermost block's sources), ``seed_local`` = the
        seeds' rows in ``sub.seeds[seed_type]`` (which lead ``input_nodes[seed_type]``)."""
        return cls(seeds=seeds, seed_type=seed_type, input_nodes=dict(sub.input_nodes),
                   seed_local=sub.seed_local[seed_type], blocks=sub.blocks)

    @classmethod
    def _seeds_then(cls, seeds: Tensor, nodes: Tensor, mask: Tensor, topo: "Topology",
                    seed_type: str) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """Input nodes = seeds, then the distinct valid entries of ``nodes [B, K]``; returns
        ``(input_nodes, seed_local [B], local [B, K] with -1 padding)``."""
        b = seeds.numel()
        ids, local = topo.compact(seed_type, topo.num_nodes(seed_type), torch.cat([seeds, nodes.masked_select(mask)]))
        return {seed_type: ids}, local[:b], _local(local, mask, b)

    @classmethod
    def from_board_mates(cls, bm: BoardMates, topo: "Topology", seed_type: str) -> "MiniBatch":
        """Input pins = seeds, then distinct mates; ``seed_local`` and ``mates_local`` index them."""
        inputs, seed_local, local = cls._seeds_then(bm.seeds, bm.mates, bm.mask, topo, seed_type)
        return cls(seeds=bm.seeds, seed_type=seed_type, input_nodes=inputs, seed_local=seed_local,
                   board_mates=bm, mates_local=local)

    @classmethod
    def from_neighbors(cls, nb: ImportanceNeighbors, topo: "Topology", seed_type: str) -> "MiniBatch":
        """Input pins = seeds, then distinct random-walk neighbors."""
        inputs, seed_local, local = cls._seeds_then(nb.seeds, nb.neighbors, nb.mask, topo, seed_type)
        return cls(seeds=nb.seeds, seed_type=seed_type, input_nodes=inputs, seed_local=seed_local,
                   neighbors=nb, neighbors_local=local)

    def with_negatives(self, neg: Negatives, topo: "Topology") -> "MiniBatch":
        """A copy with ``neg`` attached and its nodes appended to ``input_nodes[neg.ntype]``.

        Existing local indices stay valid (new nodes are appended after the present ones).
        """
        t = neg.ntype
        prev = self.input_nodes.get(t, torch.empty(0, dtype=torch.long, device=neg.nodes.device))
        valid = neg.nodes >= 0
        nodes, local = topo.compact(t, topo.num_nodes(t), neg.nodes.masked_select(valid), prev)
        inputs = dict(self.input_nodes)
        inputs[t] = nodes
        return dataclasses.replace(self, input_nodes=inputs, negatives=neg,
                                   negatives_local=_local(local, valid, 0))
