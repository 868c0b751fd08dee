"""An index over a graph's pins: their embeddings, external ids and the metadata columns that
filters read (:func:`catalogue_index`), and the columns shown with results."""
from __future__ import annotations

import numpy as np
from torch import Tensor

from boardgraph.graph import PinBoardGraph
from boardgraph.inference.index import EmbeddingIndex, IndexConfig, IndexFormatError

__all__ = ["catalogue_index", "filter_columns", "display_columns"]


def filter_columns(graph: PinBoardGraph) -> list[str]:
    """Pin columns an index keeps for filters: the categorical and numeric features."""
    f = graph.features("pin")
    return f.names("categorical") + f.names("numeric")


def display_columns(graph: PinBoardGraph) -> list[str]:
    """Pin columns shown with results: the first text feature (a title), then the filter columns."""
    return graph.features("pin").names("text")[:1] + filter_columns(graph)


def catalogue_index(graph: PinBoardGraph, embeddings: Tensor | np.ndarray, kind: str = "flat",
                    config: IndexConfig | None = None) -> EmbeddingIndex:
    """An :class:`EmbeddingIndex` over ``embeddings`` (``[N, D]``, row ``i`` = pin index ``i`` of
    ``graph``) with the pins' external ids and their :func:`filter_columns` as metadata."""
    n = graph.num_nodes("pin")
    if len(embeddings) != n:
        raise IndexFormatError(f"{len(embeddings)} embeddings for a graph of {n} pins; embed every pin "
                               f"of the graph (TrainedRun.embed_pins)")
    cols = filter_columns(graph)
    meta = graph.features("pin").table[cols].reset_index(drop=True) if cols else None
    return EmbeddingIndex.build(embeddings, graph.ids("pin"), kind=kind, metadata=meta, config=config)
