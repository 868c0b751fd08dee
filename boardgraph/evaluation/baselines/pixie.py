"""The ``pixie`` baseline: visit counts of random walks with restarts pin -> board -> pin from a
board's pins (Eksombatchai et al., WWW 2018, https://arxiv.org/abs/1711.07601), with random
numbers from a counter-based hash so that a board's scores depend only on the seed and the board."""
from __future__ import annotations

import torch
from torch import Tensor

from boardgraph.evaluation.baselines.cf import board_rows
from boardgraph.evaluation.splits import DataSplit
from boardgraph.graph import PinBoardGraph
from boardgraph.models import register_model
from boardgraph.schema import HAS, MEMBER
from boardgraph.training.config import ConfigError

__all__ = ["PixieScorer"]


_M32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9


def _mix32(x: Tensor) -> Tensor:
    """A bijective hash of int64 values in ``[0, 2**32)`` onto the same range (every product stays
    below ``2**59``, so nothing overflows)."""
    x = x ^ (x >> 16)
    x = (x * 0x45D9F3B) & _M32
    x = x ^ (x >> 16)
    x = (x * 0x45D9F3B) & _M32
    return x ^ (x >> 16)


@register_model("pixie", family="scorer",
                summary="visit counts of pin-board-pin random walks from a board's pins "
                        "(Pixie, Eksombatchai et al. 2018)")
class PixieScorer:
    """Pixie: a board scores every pin by its visits from random walks that start at the board's
    training pins (Eksombatchai et al. 2018).

    Each board spends ``walks_per_board`` walks. A walk starts at one of the board's pins, drawn
    with Pixie's weight ``d_q (C - log d_q)`` (``d_q``: the pin's training boards, ``C``: the largest
    pin degree) or uniformly (``allocation="uniform"``), and makes up to ``walk_length``
    pin -> board -> pin traversals, each to a uniform board of the pin, then a uniform pin of the
    board; before each traversal after the first it ends with probability ``restart_prob`` (the
    next walk restarts from a board pin). Every pin reached at the end of a traversal is a visit.
    These are the walks of :class:`~boardgraph.sampling.PinSageSampler` (a walk with restarts, cut
    into walks at the restarts). Pixie's multi-hit booster and early stopping are not used.

    The walks take their random numbers from a counter-based hash of ``(seed, board, walk, draw)``
    instead of a generator stream, so a board's visits depend only on the seed and the board, never
    on which boards are scored with it, and all walks of a chunk advance together (one vectorised
    step per traversal). That is why the walker itself is not called: ``PinSageSampler.walks``
    draws every walk of a call from one generator stream (a board's walks would change with the
    chunk, unless each board had its own call: a Python loop over the queries) and gives every seed
    pin the same number of walks (no per-board budget to share out by degree).

    Args:
        walks_per_board: walks per query board.
        walk_length: traversals per walk (>= 1).
        restart_prob: probability in ``[0, 1)`` that a walk ends before each traversal after its first.
        allocation: ``"degree"`` (Pixie) or ``"uniform"`` over the board's pins.
        seed: seed of the walks.

    Shapes:
        ``visits(boards [Q], graph)`` and ``score(boards [Q], split)``: float32 ``[Q, N_pins]`` visit
        counts on CPU; pins on no training board (and every pin, for a board without training
        pins) get 0.
    """

    def __init__(self, walks_per_board: int = 2000, walk_length: int = 2, restart_prob: float = 0.5,
                 allocation: str = "degree", seed: int = 0) -> None:
        if int(walks_per_board) < 1 or int(walk_length) < 1:
            raise ConfigError(f"walks_per_board and walk_length must be >= 1, got {walks_per_board}, {walk_length}")
        if not 0 <= restart_prob < 1:
            raise ConfigError(f"restart_prob must lie in [0, 1), got {restart_prob}")
        if allocation not in ("degree", "uniform"):
            raise ConfigError(f"allocation must be 'degree' or 'uniform', got {allocation!r}")
        self.walks_per_board, self.walk_length = int(walks_per_board), int(walk_length)
        self.restart_prob, self.allocation, self.seed = float(restart_prob), allocation, int(seed)
        self._fit: tuple[PinBoardGraph, dict[str, Tensor]] | None = None

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(walks_per_board={self.walks_per_board}, walk_length={self.walk_length}, "
                f"restart_prob={self.restart_prob}, allocation={self.allocation!r})")

    def _topology(self, graph: PinBoardGraph) -> dict[str, Tensor]:
        if self._fit is None or self._fit[0] is not graph:
            bp, bi, _ = graph.csr(HAS)
            pp, pi, _ = graph.csr(MEMBER)
            bp, bi, pp, pi = bp.cpu().long(), bi.cpu().long(), pp.cpu().long(), pi.cpu().long()
            pdeg = (pp[1:] - pp[:-1]).double()
            if self.allocation == "degree" and bi.numel():
                d = pdeg[bi]
                w = d * (pdeg.max() - torch.log(d))  # Pixie's s_q = d_q (C - log d_q) > 0
            else:
                w = torch.ones(bi.numel(), dtype=torch.float64)
            cum = torch.zeros(bi.numel() + 1, dtype=torch.float64)
            torch.cumsum(w, 0, out=cum[1:])
            self._fit = (graph, {"board_indptr": bp, "board_pins": bi, "pin_indptr": pp, "pin_boards": pi,
                                 "cum": cum})
        return self._fit[1]

    def _bits(self, keys: Tensor, draw: int) -> Tensor:
        """31-bit uniform draws (int64) for the walk keys ``[W]`` and draw number ``draw``."""
        return _mix32((keys + (draw + 1) * _GOLDEN) & _M32) >> 1

    def visits(self, boards: Tensor, graph: PinBoardGraph) -> Tensor:
        """float32 ``[Q, N_pins]`` visit counts of the walks from each board's pins in ``graph``."""
        t = self._topology(graph)
        n_pins = graph.num_nodes("pin")
        rows = torch.from_numpy(board_rows(boards, graph.num_nodes("board")))
        out = torch.zeros(rows.numel() * n_pins)
        start, end = t["board_indptr"][rows], t["board_indptr"][rows + 1]
        q = torch.nonzero(end > start).squeeze(1)              # boards with training pins walk
        if q.numel() == 0:
            return out.view(rows.numel(), n_pins)
        nw = self.walks_per_board
        board_key = _mix32((_mix32(torch.tensor(self.seed & _M32)) + rows[q]) & _M32)           # [Q']
        keys = _mix32((board_key.unsqueeze(1) + torch.arange(nw) * _GOLDEN) & _M32).reshape(-1)  # [Q' * nw]
        walk_q = q.repeat_interleave(nw)
        cum = t["cum"]
        lo, hi = cum[start[walk_q]], cum[end[walk_q]]
        u = self._bits(keys, 0).double() / 2.0**31
        pos = torch.searchsorted(cum, lo + u * (hi - lo), right=True) - 1
        cur = t["board_pins"][torch.minimum(torch.maximum(pos, start[walk_q]), end[walk_q] - 1)]
        alive = torch.ones(cur.numel(), dtype=torch.bool)
        stay = int(self.restart_prob * 2**31)
        base = walk_q * n_pins
        pp, pb, bp, bpins = t["pin_indptr"], t["pin_boards"], t["board_indptr"], t["board_pins"]
        for step in range(self.walk_length):                 # one vectorised step per traversal
            if step > 0 and self.restart_prob > 0:
                alive &= self._bits(keys, 3 * step + 1) >= stay
            s = pp[cur]                                       # every pin reached has a board
            board = pb[s + ((self._bits(keys, 3 * step + 2) * (pp[cur + 1] - s)) >> 31)]
            s = bp[board]
            cur = bpins[s + ((self._bits(keys, 3 * step + 3) * (bp[board + 1] - s)) >> 31)]
            idx = (base + cur)[alive]
            out.index_add_(0, idx, torch.ones(idx.numel()))
        return out.view(rows.numel(), n_pins)

    def score(self, boards: Tensor, split: DataSplit) -> Tensor:
        return self.visits(boards, split.train_graph)
