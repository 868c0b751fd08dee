"""Held-out splits for evaluation: memberships held out of warm pins, and whole pins held out (cold start)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from boardgraph._io import atomic_write

from boardgraph.training.config import ConfigError
from boardgraph.graph import MEMBER, PinBoardGraph

__all__ = ["DataSplit", "split_memberships", "split_reserved_boards", "save_split_ids", "load_split_ids", "SplitIds"]


@dataclass
class DataSplit:
    """A graph and its training view.

    Attributes:
        graph: every pin, board and membership.
        train_graph: the same nodes without the held-out memberships and without any edge of a
            cold pin (cold pins stay as nodes: their content is known, their boards are not).
        heldout: ``(pin, board)`` int64 ``[H]`` memberships of warm pins held out.
        cold_pins: int64 ``[C]`` pins held out entirely (cold start).
        cold_edges: ``(pin, board)`` int64 ``[E_c]`` the memberships of the cold pins.
        candidates: bool ``[N_pins]`` the pins a warm or cold-among-new-items query ranks (None: every
            non-cold pin for warm queries, the cold pins for cold ones; see
            :func:`~boardgraph.evaluation.completion.board_completion`).
    """

    graph: PinBoardGraph
    train_graph: PinBoardGraph
    heldout: tuple[Tensor, Tensor]
    cold_pins: Tensor
    cold_edges: tuple[Tensor, Tensor]
    candidates: Tensor | None = None


def split_memberships(graph: PinBoardGraph, holdout_fraction: float = 0.0, cold_fraction: float = 0.0,
                      seed: int = 0) -> DataSplit:
    """Hold out memberships (warm) and whole pins (cold), reproducibly.

    Warm hold-out draws ``holdout_fraction`` of the memberships of non-cold pins, never a pin's
    last training membership nor a board's last training pin, so every held-out pair can be
    ranked "from the rest of its board" by a pin the model has seen. Cold pins are drawn from
    pins with at least one membership.
    """
    if not (0 <= holdout_fraction < 1 and 0 <= cold_fraction < 1):
        raise ConfigError("holdout_fraction and cold_fraction must lie in [0, 1)")
    g = torch.Generator().manual_seed(seed)
    pin, board = graph.edges(MEMBER)
    n_pins, n_boards = graph.num_nodes("pin"), graph.num_nodes("board")
    deg = torch.bincount(pin, minlength=n_pins)
    candidates = torch.nonzero(deg > 0).squeeze(1)
    n_cold = int(round(cold_fraction * candidates.numel()))
    cold = candidates[torch.randperm(candidates.numel(), generator=g)[:n_cold]].sort().values
    is_cold = torch.zeros(n_pins, dtype=torch.bool)
    is_cold[cold] = True
    cold_edge = is_cold[pin]
    # warm hold-out: random order, keep an edge when its pin or board would lose its last edge
    warm = torch.nonzero(~cold_edge).squeeze(1)
    order = warm[torch.randperm(warm.numel(), generator=g)]
    want = int(round(holdout_fraction * warm.numel()))
    pin_left = torch.bincount(pin[warm], minlength=n_pins)
    board_left = torch.bincount(board[warm], minlength=n_boards)
    # Rank of each candidate edge among earlier candidates of the same pin / board (vectorised):
    # an edge may go when fewer than (degree - 1) earlier edges of its pin and board went.
    take = torch.zeros(warm.numel(), dtype=torch.bool)
    if want:
        p, b = pin[order], board[order]
        rank_p = _rank_within(p)
        rank_b = _rank_within(b)
        ok = (rank_p < pin_left[p] - 1) & (rank_b < board_left[b] - 1)
        idx = torch.nonzero(ok).squeeze(1)[:want]
        take[idx] = True
    held = order[take].sort().values
    remove = torch.cat([held, torch.nonzero(cold_edge).squeeze(1)])
    train = graph.remove_edges(MEMBER, eids=remove) if remove.numel() else graph
    return DataSplit(graph=graph, train_graph=train, heldout=(pin[held], board[held]), cold_pins=cold,
                     cold_edges=(pin[cold_edge], board[cold_edge]))


def split_reserved_boards(graph: PinBoardGraph, reserved_boards: Tensor, cold_fraction: float = 0.2,
                          seed: int = 0, rank_among_cold: bool = True) -> DataSplit:
    """A cold-start split that never trains on ``reserved_boards`` (e.g. outfits another protocol
    such as fill-in-the-blank evaluates).

    The training graph keeps every node but drops (a) every membership of a reserved board and
    (b) every membership of ``cold_fraction`` of the pins of the other boards, drawn reproducibly;
    those pins are the cold pins, their memberships the cold queries (ranked from the rest of their
    board). No warm membership is held out: for data whose items never recur across boards
    (Polyvore outfits) every held-out item is a cold item. A board keeps at least one training pin.

    Args:
        graph: the full graph.
        reserved_boards: int64 ``[R]`` board indices never trained on, or bool ``[N_boards]``.
        cold_fraction: share of the non-reserved boards' pins held out entirely, in ``[0, 1)``.
        seed: sampling seed.
        rank_among_cold: a query ranks only the cold pins ("which of the new items completes this
            board": the split's ``candidates``); False ranks every pin.
    """
    if not 0 <= cold_fraction < 1:
        raise ConfigError("cold_fraction must lie in [0, 1)")
    n_pins, n_boards = graph.num_nodes("pin"), graph.num_nodes("board")
    reserved = torch.as_tensor(reserved_boards)
    if reserved.dtype != torch.bool:
        mask = torch.zeros(n_boards, dtype=torch.bool)
        mask[reserved.long()] = True
        reserved = mask
    if reserved.shape != (n_boards,):
        raise ConfigError(f"reserved_boards must be board indices or a bool mask of {n_boards} boards")
    pin, board = graph.edges(MEMBER)
    pin, board = pin.cpu(), board.cpu()
    open_edge = ~reserved[board]
    g = torch.Generator().manual_seed(seed)
    # candidate cold pins: pins of open boards, in random order; a pin goes cold unless one of its
    # boards would lose its last training pin
    cand = torch.unique(pin[open_edge])
    cand = cand[torch.randperm(cand.numel(), generator=g)][: int(round(cold_fraction * cand.numel()))]
    is_cold = torch.zeros(n_pins, dtype=torch.bool)
    left = torch.bincount(board[open_edge], minlength=n_boards)
    order_rank = torch.full((n_pins,), -1, dtype=torch.long)
    order_rank[cand] = torch.arange(cand.numel())
    e = torch.nonzero(open_edge & (order_rank[pin] >= 0)).squeeze(1)
    e = e[torch.argsort(order_rank[pin[e]])]  # the candidates' edges in candidate order
    removed = torch.zeros(n_boards, dtype=torch.long)
    # sequential only over candidate pins (vectorising this greedy rule gains little at this size)
    by_pin: dict[int, list[int]] = {}
    for i in e.tolist():
        by_pin.setdefault(int(pin[i]), []).append(int(board[i]))
    for p, bs in by_pin.items():
        if all(removed[b] + 1 < left[b] for b in bs):
            is_cold[p] = True
            for b in bs:
                removed[b] += 1
    cold_edge = open_edge & is_cold[pin]
    remove = torch.nonzero(~open_edge | cold_edge).squeeze(1)
    train = graph.remove_edges(MEMBER, eids=remove) if remove.numel() else graph
    empty = torch.zeros(0, dtype=torch.long)
    return DataSplit(graph=graph, train_graph=train, heldout=(empty, empty),
                     cold_pins=torch.nonzero(is_cold).squeeze(1), cold_edges=(pin[cold_edge], board[cold_edge]),
                     candidates=is_cold.clone() if rank_among_cold else None)


def _rank_within(keys: Tensor) -> Tensor:
    """For each position, how many earlier positions hold the same key (int64 ``[n]``)."""
    order = torch.sort(keys, stable=True).indices
    sk = keys[order]
    start = torch.ones_like(sk, dtype=torch.bool)
    start[1:] = sk[1:] != sk[:-1]
    pos = torch.arange(sk.numel())
    group_start = torch.cummax(torch.where(start, pos, torch.zeros_like(pos)), 0).values
    rank = torch.empty_like(pos)
    rank[order] = pos - group_start
    return rank


@dataclass
class SplitIds:
    """What a run held out, by id (:func:`save_split_ids`): ``heldout`` a DataFrame-ready pair of
    arrays ``(pin_ids, board_ids)`` of the warm memberships held out, and ``cold_pins`` the ids of
    the pins held out entirely."""

    heldout_pins: np.ndarray
    heldout_boards: np.ndarray
    cold_pins: np.ndarray


def save_split_ids(split: DataSplit, path: str | Path) -> None:
    """Write the held-out memberships and cold pins of ``split`` by id to ``path`` (``.npz``,
    atomically), so tools that read a run later (``boardgraph browse``) can mark them."""
    g, (hp, hb) = split.graph, split.heldout
    arrays = {"heldout_pins": np.asarray(g.ids("pin", hp), dtype=object),
              "heldout_boards": np.asarray(g.ids("board", hb), dtype=object),
              "cold_pins": np.asarray(g.ids("pin", split.cold_pins), dtype=object)}
    atomic_write(path, lambda fh: np.savez(fh, **{k: v.astype(str) for k, v in arrays.items()}))


def load_split_ids(path: str | Path) -> SplitIds | None:
    """The :class:`SplitIds` written by :func:`save_split_ids` at ``path``, or None when absent
    (ids come back as strings)."""
    if not Path(path).exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        return SplitIds(z["heldout_pins"], z["heldout_boards"], z["cold_pins"])
