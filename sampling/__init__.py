"""boardgraph.sampling: vectorised samplers and the mini-batch loader (CPU and GPU, same code).

* :class:`NeighborSampler` -- uniform multi-hop heterogeneous sampling into per-hop :class:`Block` s.
* :class:`BoardMateSampler` -- up to K pins sharing a board with each seed (uniform / size / recency).
* :class:`PinSageSampler` -- random-walk importance neighbors (top-T pins by visit count).
* :class:`PairSampler` and the negative samplers (uniform, popularity with logQ, hard rank band),
  with :func:`positive_mask` / :func:`in_batch_negative_mask` to keep positives out of negatives.
* :class:`EdgeExclusion` -- edges no sampler may traverse (at construction or per call).
* Result types (``types.py``): :class:`Block`, :class:`SampledSubgraph`, :class:`BoardMates`,
  :class:`ImportanceNeighbors`, :class:`Negatives`, :class:`PositivePairs`.
* :class:`MiniBatch`, :class:`PinBoardLoader`, :class:`FeatureFetcher` / :class:`GraphFeatureFetcher`.

Every sampler runs on the device of the graph it is given, takes a ``torch.Generator`` (or int
seed) and has no Python loop over seeds.
"""
from .boardmates import BoardMateSampler
from .errors import SamplingError
from .exclusion import EdgeExclusion, find_edge_ids
from .features import FeatureFetcher, GraphFeatureFetcher
from .loader import MiniBatchSampler, PinBoardLoader
from .minibatch import MiniBatch
from .negatives import (HardNegativeSampler, NegativeSampler, PopularityNegativeSampler, UniformNegativeSampler,
                        in_batch_negative_mask, positive_mask)
from .neighbor import NeighborSampler
from .pairs import PairSampler
from .random_walk import PinSageSampler, rank_visits
from .types import Block, BoardMates, ImportanceNeighbors, Negatives, PositivePairs, SampledSubgraph

__all__ = [
    "NeighborSampler", "Block", "SampledSubgraph",
    "BoardMateSampler", "BoardMates",
    "PinSageSampler", "ImportanceNeighbors", "rank_visits",
    "PairSampler", "PositivePairs",
    "Negatives", "NegativeSampler", "UniformNegativeSampler", "PopularityNegativeSampler", "HardNegativeSampler",
    "positive_mask", "in_batch_negative_mask",
    "EdgeExclusion", "find_edge_ids",
    "MiniBatch", "PinBoardLoader", "MiniBatchSampler", "FeatureFetcher", "GraphFeatureFetcher",
    "SamplingError",
]
