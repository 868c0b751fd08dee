"""The floor and the first bar of board completion: ``random`` and ``popularity`` scorers."""
from __future__ import annotations

import torch
from torch import Tensor

from boardgraph.evaluation.splits import DataSplit
from boardgraph.graph import PinBoardGraph
from boardgraph.models import register_model
from boardgraph.schema import MEMBER

__all__ = ["RandomScorer", "PopularityScorer"]


@register_model("random", family="scorer",
                summary="uniform random scores under a seed: the chance level of every metric")
class RandomScorer:
    """Uniform random scores in ``[0, 1)``: the chance level of every metric.

    The scores of a query board depend only on ``seed`` and the board, so the warm and cold
    queries of a board, and every call, see the same draw.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    def score(self, boards: Tensor, split: DataSplit) -> Tensor:
        n = split.graph.num_nodes("pin")
        rows = [torch.rand(n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + int(b)))
                for b in boards.tolist()]
        return torch.stack(rows) if rows else torch.zeros(0, n)


@register_model("popularity", family="scorer",
                summary="a pin's number of boards in the training graph, the same for every board (cold pins: 0)")
class PopularityScorer:
    """Score = the pin's number of boards in the training graph, the same for every board.

    Pins tied on degree tie in the ranking, and ties count against the positive; cold pins have
    degree 0 and so rank below every pin seen in training.

    Args:
        seed: unused (popularity is deterministic); accepted so that every registered scorer is
            built alike.
    """

    def __init__(self, seed: int = 0) -> None:
        del seed

    def score(self, boards: Tensor, split: DataSplit) -> Tensor:
        return self.degrees(split.train_graph).float().expand(boards.numel(), -1)

    @staticmethod
    def degrees(graph: PinBoardGraph) -> Tensor:
        """int64 ``[N_pins]`` boards per pin."""
        return graph.degree(MEMBER).long().cpu()
