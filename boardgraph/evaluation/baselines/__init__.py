"""Baselines of board completion, scored by the same protocol and splits as the trained kinds.

Each module registers its kinds in :data:`boardgraph.models.MODEL_KINDS`; importing this package
registers them all:

* :mod:`.scorers`: ``random`` (the floor) and ``popularity``;
* :mod:`.text`: ``minilm``, ``tfidf`` and ``towers`` (content, no graph training);
* :mod:`.pinsage`: ``pinsage`` (random-walk GNN on frozen content features);
* :mod:`.cf`: ``itemknn`` and ``ease``; :mod:`.pixie`: ``pixie``; :mod:`.bpr`: ``bpr``
  (collaborative filtering on the training memberships; cold pins score 0).

A new baseline is one decorated class or function (:func:`boardgraph.models.register_model`) in
one module, imported here.
"""
from .scorers import PopularityScorer, RandomScorer
from .text import minilm_available, minilm_embeddings, tower_features
from .pinsage import PinSage, PinSageConfig, PinSageConv, PinSageResult, train_pinsage
from .cf import (EASE_L2_GRID, CatalogueTooLargeError, EASEScorer, ItemKNNScorer, board_rows, ease_weights,
                 item_similarity, membership_matrix)
from .pixie import PixieScorer
from .bpr import BPRConfig, BPRResult, BPRScorer, train_bpr

__all__ = ["RandomScorer", "PopularityScorer", "minilm_available", "minilm_embeddings", "tower_features", "PinSage",
           "PinSageConfig", "PinSageConv", "PinSageResult", "train_pinsage", "EASE_L2_GRID", "CatalogueTooLargeError",
           "EASEScorer", "ItemKNNScorer", "board_rows", "ease_weights", "item_similarity", "membership_matrix",
           "PixieScorer", "BPRConfig", "BPRResult", "BPRScorer", "train_bpr"]
