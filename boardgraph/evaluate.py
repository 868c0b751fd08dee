"""Board completion (warm and cold start) on held-out memberships.

Protocol: memberships are held out before training (:func:`~boardgraph.data.split_memberships`).
For each board with held-out pins, the board is represented by the normalised mean of the
embeddings of its *training* pins; every pin is ranked by cosine similarity to it, the board's
training pins excluded. Warm queries score the held-out memberships of pins the model trained on
(with their other boards); cold queries score the pins held out entirely (no membership seen in
training: embedded from content only). Held-out pins of the other group are excluded from a
query's ranking, so each group is measured on its own.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from boardgraph.data import DataSplit
from boardgraph.metrics import RankingResult, ranking_metrics

__all__ = ["BoardCompletion", "board_completion"]

MEMBER = ("pin", "in", "board")


@dataclass
class BoardCompletion:
    """Metrics of one model on one split: ``warm`` and ``cold`` map metric name -> RankingResult
    (per-board values, for bootstrap CIs); ``boards`` are the query boards of each group."""

    warm: dict[str, RankingResult]
    cold: dict[str, RankingResult]
    warm_boards: Tensor
    cold_boards: Tensor

    def summary(self) -> dict[str, float]:
        out = {f"warm_{k}": v.mean for k, v in self.warm.items()}
        out.update({f"cold_{k}": v.mean for k, v in self.cold.items()})
        if "recall@10" in self.warm and "recall@10" in self.cold and self.warm["recall@10"].mean > 0:
            out["cold_warm_recall@10"] = self.cold["recall@10"].mean / self.warm["recall@10"].mean
        return out


def _queries(pairs: tuple[Tensor, Tensor], n_boards: int, n_pins: int) -> tuple[Tensor, Tensor]:
    """(boards with held-out pins [Q], positives bool [Q, N_pins])."""
    pin, board = pairs
    boards = torch.unique(board)
    row = torch.full((n_boards,), -1, dtype=torch.long)
    row[boards] = torch.arange(boards.numel())
    pos = torch.zeros(boards.numel(), n_pins, dtype=torch.bool)
    pos[row[board], pin] = True
    return boards, pos


def board_completion(emb: Tensor, split: DataSplit, ks: tuple[int, ...] = (10, 50)) -> BoardCompletion:
    """Board-completion metrics of pin embeddings ``emb [N_pins, E]`` on ``split`` (see module doc)."""
    g = split.train_graph
    n_pins, n_boards = g.num_nodes("pin"), g.num_nodes("board")
    emb = F.normalize(emb.float(), dim=1)
    indptr, indices, _ = g.csr(("board", "has", "pin"))
    deg = indptr[1:] - indptr[:-1]
    b_of_edge = torch.repeat_interleave(torch.arange(n_boards), deg)
    board_emb = torch.zeros(n_boards, emb.shape[1]).index_add_(0, b_of_edge, emb[indices.long()])
    board_emb = F.normalize(board_emb, dim=1)
    held_all = torch.zeros(n_pins, dtype=torch.bool)
    held_all[split.heldout[0]] = True
    held_all[split.cold_edges[0]] = True
    results = []
    for pairs in (split.heldout, split.cold_edges):
        keep = deg[pairs[1]] > 0  # a board needs training pins to describe it
        boards, pos = _queries((pairs[0][keep], pairs[1][keep]), n_boards, n_pins)
        exclude = torch.zeros_like(pos)
        sel = torch.isin(b_of_edge, boards)
        row = torch.full((n_boards,), -1, dtype=torch.long)
        row[boards] = torch.arange(boards.numel())
        exclude[row[b_of_edge[sel]], indices.long()[sel]] = True   # the board's training pins
        exclude |= held_all[None, :] & ~pos                        # the other group's held-out pins
        scores = board_emb[boards] @ emb.T
        results.append((boards, ranking_metrics(scores, pos, ks=ks, exclude=exclude)))
    (wb, warm), (cb, cold) = results
    return BoardCompletion(warm, cold, wb, cb)
