"""Collaborative refinement of the warm pins' ID embeddings: the second training phase of the
``neighbor_cf`` kind.

After the contrastive phase the content path is frozen and only the ID rows of warm pins (those
with training memberships) move, trained for the task the embeddings serve: completing a board.
For a batch of training boards:

* ``targets`` pins of each board are drawn (with replacement) and held back;
* the query is the normalised mean embedding of the board's other pins, each left out with
  probability ``input_dropout`` (so a query sees boards of varying size, as at serving);
* a softmax over **every** warm pin must pick each held-back pin (the pins in the query are
  masked out of it), with a learned temperature.

A warm pin's embedding is ``normalize(content_i + id_i)``, exactly what the encoder serves. In each
batch an ``id_dropout`` share of the warm pins take part with their content alone, so content-only
vectors (the new pins at serving) stay on the scale of refined ones: without it a joint ranking
of warm and new pins is dominated by new pins (measured on the dense preset: warm Recall@10
among all pins fell from 0.06 to 0.01).

How long to refine is chosen on validation memberships that neither phase has seen
(:func:`~boardgraph.training.refine_validation.choose_refine_epochs`): a copy of the run trains
without ``refine_val_fraction`` of the training memberships, their Recall@10 is measured before
its refinement and every 5 epochs, and the run itself is refined, on every membership, for the
shortest length within one standard error of the best (possibly 0: the IDs stay as the first
phase left them).

The board query is the run's (``objective.board_query``, :mod:`boardgraph.inference.board_query`):
``neighbor_cf`` trains, validates and serves attention over the board's pins.

Cost: one epoch is ``boards / boards_per_batch`` steps of a ``[boards_per_batch, warm pins]``
softmax, ``O(memberships + boards x warm pins x E)`` per epoch: seconds for 10^4 pins on a CPU.
With more warm pins than ``optim.refine_negatives`` (8192) each step samples that many negatives
instead (a sampled softmax with logQ correction and sparse updates, :func:`_train_sampled`):
``O(boards x (negatives + board size) x E)`` per epoch, whatever the catalogue's size.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from boardgraph.graph import PinBoardGraph
from boardgraph.graph.csr import cumsum0, padded_rows
from boardgraph.inference.board_query import attention_scores
from boardgraph.training.config import TrainConfig

__all__ = ["RefineStats", "refine_ids", "refine_encoder", "one_se_choice", "refine_settings"]

log = logging.getLogger(__name__)


@dataclass
class RefineStats:
    """What a refinement did.

    Attributes:
        epochs: epochs run on every training membership (the chosen length; 0: the IDs were kept).
        validation: ``{epochs: Recall@10}`` on the validation memberships for each length tried
            (empty without validation).
        boards: boards with 2+ pins; warm_pins: pins whose ID may move.
        first_loss, last_loss: mean loss of the first and last epoch of the final run (NaN for 0 epochs).
        seconds: wall time, validation included.
        query: the board query it trained (and validated) with.
    """

    epochs: int
    validation: dict[int, float]
    boards: int
    warm_pins: int
    first_loss: float
    last_loss: float
    seconds: float
    query: str = "centroid"


@dataclass
class _Rows:
    """Board -> pin memberships over local (warm) pin columns: CSR ``indptr [B + 1]``, ``cols``, and
    the ``boards`` with at least ``2`` pins (those that can train)."""

    indptr: Tensor
    cols: Tensor
    boards: Tensor

    @classmethod
    def of(cls, indptr: Tensor, cols: Tensor) -> "_Rows":
        return cls(indptr, cols, torch.nonzero(indptr[1:] - indptr[:-1] >= 2).squeeze(1))

    def dense(self, boards: Tensor, n_cols: int) -> Tensor:
        """float ``[len(boards), n_cols]`` 0/1 membership rows of ``boards``."""
        cols = padded_rows(self.indptr, self.cols, boards)               # [B, L], -1 padding
        x = torch.zeros(boards.numel(), n_cols + 1, device=self.indptr.device)
        return x.scatter_(1, torch.where(cols >= 0, cols, n_cols), 1.0)[:, :n_cols]   # padding -> a spare column

    def members(self, boards: Tensor, keep: Tensor) -> Tensor:
        """int64 ``[len(boards), L]`` the pins of ``boards`` whose entry in the 0/1 rows ``keep
        [len(boards), n_cols]`` is set (``-1`` elsewhere and as padding): a query's pins, padded."""
        cols = padded_rows(self.indptr, self.cols, boards)
        kept = (cols >= 0) & (keep.gather(1, cols.clamp(min=0)) > 0)
        return torch.where(kept, cols, -1)

    def board_of(self) -> Tensor:
        """int64 ``[M]`` the board of each membership (CSR order)."""
        lens = self.indptr[1:] - self.indptr[:-1]
        return torch.repeat_interleave(torch.arange(lens.numel(), device=lens.device), lens)

    def partition(self, held: Tensor) -> tuple["_Rows", "_Rows"]:
        """``(kept, held)``: the memberships where bool ``held [M]`` is False, and those where it is True."""
        board, lens = self.board_of(), self.indptr[1:] - self.indptr[:-1]
        parts = []
        for mask in (~held, held):
            counts = torch.zeros_like(lens).index_add_(0, board, mask.long())
            parts.append(_Rows.of(cumsum0(counts), self.cols[mask]))
        return parts[0], parts[1]


@dataclass
class _Settings:
    lr: float
    input_dropout: float
    id_dropout: float
    boards_per_batch: int
    targets: int
    negatives: int = 0
    query: str = "centroid"
    tau: float = 0.1


@dataclass
class _Ids:
    """The trainable ID rows of a refinement: ``weight [R, E]`` (float, detached), and which of
    them each warm pin reads (summed): a row per warm pin for a full table, the pin's hashed
    buckets (:class:`~boardgraph.encoders.IdTable`) for a hashed one."""

    weight: Tensor
    pins: Tensor          # int64 [n] node index of each warm (local) pin
    hashed: Any = None    # the hashed IdTable, or None
    _every: Tensor | None = None   # rows(all warm pins), computed once by vectors()

    @classmethod
    def of(cls, table: torch.nn.Module, pins: Tensor) -> "_Ids":
        w = table.weight.detach().float()
        if getattr(table, "hashed", False):
            return cls(w.clone(), pins, table)
        return cls(w[pins], pins)

    def rows(self, local: Tensor) -> Tensor:
        """int64 ``[*local.shape, k]``: the rows of ``weight`` that warm pins ``local`` read."""
        return self.hashed.rows(self.pins[local].reshape(-1)).view(*local.shape, -1) if self.hashed is not None \
            else local[..., None]

    def vectors(self, z: Tensor, weight: Tensor) -> Tensor:
        """float ``[n, E]``: every warm pin's vector ``z + its rows of weight`` (content ``z [n, E]``;
        the rows of all warm pins are looked up once and kept)."""
        if self._every is None:
            self._every = self.rows(torch.arange(z.shape[0], device=z.device))
        return z + weight[self._every].sum(1)

    def write(self, table: torch.nn.Module, weight: Tensor) -> None:
        """Store the refined rows ``weight`` into the encoder's ``table``."""
        with torch.no_grad():
            if self.hashed is not None:
                table.weight.copy_(weight.to(table.weight.dtype))
            else:
                table.weight[self.pins] = weight.to(table.weight.dtype)


def _step_loss(st: _Settings, logits: Tensor, inp_mask: Tensor, tgt: Tensor) -> Tensor | None:
    """Cross-entropy of each board's held-back pins: ``logits [B, C]`` (the query's own pins
    ``inp_mask [B, C]`` masked out), targets ``tgt [B, T]`` (columns of ``logits``); None when no
    board has a query pin left."""
    has = inp_mask.any(1) if inp_mask.dtype == torch.bool else inp_mask.sum(1) > 0
    if not bool(has.any()):
        return None
    logits = logits.masked_fill(inp_mask > 0, -1e4)
    return F.cross_entropy(logits[has].repeat(st.targets, 1), tgt[has].T.reshape(-1))


def _train(ids: _Ids, z: Tensor, rows: _Rows, epochs: int, st: _Settings, gen: torch.Generator,
           on_epoch: Callable[[int, Tensor], None] | None = None) -> tuple[Tensor, list[float]]:
    """``epochs`` of the board-completion softmax over the warm pins' vectors ``z + ids`` (content
    ``z [n, E]``); ``on_epoch(epoch, u [n, E])`` after each. Returns the final ID rows and each
    epoch's mean loss."""
    dev, n = z.device, z.shape[0]
    table = torch.nn.Parameter(ids.weight.clone())
    log_scale = torch.nn.Parameter(torch.tensor(math.log(10.0), device=dev))
    opt = torch.optim.Adam([table, log_scale], lr=st.lr)
    losses: list[float] = []
    for epoch in range(1, epochs + 1):
        total, count = 0.0, 0
        order = rows.boards[torch.randperm(rows.boards.numel(), generator=gen, device=dev)]
        for s in range(0, order.numel(), st.boards_per_batch):
            batch = order[s:s + st.boards_per_batch]
            x = rows.dense(batch, n)
            tgt = torch.multinomial(x, st.targets, replacement=True, generator=gen)
            inp = x * (torch.rand(x.shape, generator=gen, device=dev) >= st.input_dropout)
            inp.scatter_(1, tgt, 0.0)
            keep = torch.rand(n, 1, generator=gen, device=dev) >= st.id_dropout
            v = F.normalize(torch.where(keep, ids.vectors(z, table), z), dim=1)
            if st.query == "attention":
                scores = attention_scores(rows.members(batch, inp), v, v, st.tau)
            else:
                scores = F.normalize(inp @ v, dim=1) @ v.T
            loss = _step_loss(st, log_scale.clamp(max=math.log(100.0)).exp() * scores, inp, tgt)
            if loss is None:
                continue
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, count = total + float(loss.detach()), count + 1
        losses.append(total / max(count, 1))
        if on_epoch is not None:
            on_epoch(epoch, ids.vectors(z, table.detach()))
    return table.detach(), losses


def _train_sampled(ids: _Ids, z: Tensor, rows: _Rows, epochs: int, st: _Settings, gen: torch.Generator,
                   on_epoch: Callable[[int, Tensor], None] | None = None) -> tuple[Tensor, list[float]]:
    """:func:`_train` with a **sampled** softmax, for catalogues where a softmax over every warm pin
    per step is too slow: each step scores its boards' held-back pins against ``st.negatives``
    uniformly drawn pins plus every held-back pin of the batch, with the log of each candidate's
    expected count subtracted from its logit (logQ correction) and accidental hits of the target
    masked. Rows move by sparse gradients (``SparseAdam``): a step costs ``O(batch x (negatives +
    board size) x E)``, not ``O(warm pins x E)``."""
    dev, n = z.device, z.shape[0]
    table = torch.nn.Embedding(*ids.weight.shape, sparse=True, device=dev)
    with torch.no_grad():
        table.weight.copy_(ids.weight)
    log_scale = torch.nn.Parameter(torch.tensor(math.log(10.0), device=dev))
    opts = (torch.optim.SparseAdam([table.weight], lr=st.lr), torch.optim.Adam([log_scale], lr=st.lr))
    lens = (rows.indptr[1:] - rows.indptr[:-1]).float()
    # chance that a target slot of a batch holds pin j: a board uniformly, then one of its pins uniformly
    slot = torch.zeros(n, device=dev).index_add_(0, rows.cols, (1.0 / lens.clamp(min=1))[rows.board_of()])
    slot /= max(rows.boards.numel(), 1)
    losses: list[float] = []
    for epoch in range(1, epochs + 1):
        total, count = 0.0, 0
        order = rows.boards[torch.randperm(rows.boards.numel(), generator=gen, device=dev)]
        for s in range(0, order.numel(), st.boards_per_batch):
            mem = padded_rows(rows.indptr, rows.cols, order[s:s + st.boards_per_batch])     # [B, L], -1 padding
            b, valid = mem.shape[0], mem >= 0
            pos = (torch.rand(b, st.targets, generator=gen, device=dev) * valid.sum(1, keepdim=True)).long()
            tgt = mem.gather(1, pos)                                                          # [B, T]
            inp = valid & (torch.rand(mem.shape, generator=gen, device=dev) >= st.input_dropout)
            inp.scatter_(1, pos, False)
            keep = torch.rand(n, generator=gen, device=dev) >= st.id_dropout

            def vec(idx: Tensor) -> Tensor:
                return F.normalize(torch.where(keep[idx, None], z[idx] + table(ids.rows(idx)).sum(-2), z[idx]), dim=-1)

            cand = torch.cat([tgt.reshape(-1), torch.randint(n, (st.negatives,), generator=gen, device=dev)])
            expected = st.negatives / n + tgt.numel() * slot[cand]
            query = torch.where(inp, mem, -1)
            if st.query == "attention":   # the query's pins and the candidates, each embedded once
                pins, local = torch.unique(torch.cat([query[inp], cand]), return_inverse=True)
                v = vec(pins)
                q_local = torch.full_like(query, -1).masked_scatter(inp, local[: int(inp.sum())])
                scores = attention_scores(q_local, v, v[local[int(inp.sum()):]], st.tau)
            else:
                scores = F.normalize((vec(mem.clamp(min=0)) * inp[..., None]).sum(1), dim=-1) @ vec(cand).T
            logits = log_scale.clamp(max=math.log(100.0)).exp() * scores - expected.log()
            in_query = _in_rows(query, cand)                                                  # [B, C]
            c = torch.arange(cand.numel(), device=dev)
            own = (c[None, :] < tgt.numel()) & (c[None, :] // st.targets == torch.arange(b, device=dev)[:, None])
            hit = (cand[None, None, :] == tgt[:, :, None]).any(1) & ~own     # a board's target drawn elsewhere
            logits = logits.masked_fill(hit, -1e4)
            col = c[:tgt.numel()].view(b, st.targets)                                         # each target's column
            loss = _step_loss(st, logits, in_query, col)
            if loss is None:
                continue
            for o in opts:
                o.zero_grad(set_to_none=True)
            loss.backward()
            for o in opts:
                o.step()
            total, count = total + float(loss.detach()), count + 1
        losses.append(total / max(count, 1))
        if on_epoch is not None:
            on_epoch(epoch, ids.vectors(z, table.weight.detach()))
    return table.weight.detach().clone(), losses


def _in_rows(rows: Tensor, values: Tensor) -> Tensor:
    """bool ``[B, C]``: whether ``values [C]`` occurs in each row of ``rows [B, L]`` (``-1`` = none)."""
    srt = rows.sort(1).values
    at = torch.searchsorted(srt, values[None, :].expand(rows.shape[0], -1).contiguous()).clamp(max=srt.shape[1] - 1)
    return srt.gather(1, at) == values[None, :]


@torch.no_grad()
def _recall(u: Tensor, train: _Rows, val: _Rows, k: int = 10, query: str = "centroid", tau: float = 0.1) -> Tensor:
    """float ``[V]`` Recall@k of each validation board's held-out memberships: a board's query is
    made of its training pins' vectors ``normalize(u)`` (``query``: their mean, or attention over
    them), ranking every other warm pin."""
    v = F.normalize(u, dim=1)
    chunk = max(1, min(256, (1 << 24) // max(v.shape[0], 1)))   # [chunk, warm pins] scores stay near 64 MiB
    boards = torch.nonzero((val.indptr[1:] - val.indptr[:-1] > 0) & (train.indptr[1:] - train.indptr[:-1] > 0))
    boards = boards.squeeze(1)
    hits = []
    for s in range(0, boards.numel(), chunk):
        b = boards[s:s + chunk]
        x, pos = train.dense(b, v.shape[0]), val.dense(b, v.shape[0])
        if query == "attention":
            scores = attention_scores(train.members(b, x), v, v, tau)
        else:
            scores = F.normalize(x @ v, dim=1) @ v.T
        scores = scores.masked_fill(x > 0, -math.inf)
        top = scores.topk(min(k, v.shape[0]), dim=1).indices
        hits.append(pos.gather(1, top).sum(1) / pos.sum(1))
    return torch.cat(hits) if hits else torch.zeros(0)


def one_se_choice(per_board: dict[int, Tensor]) -> int:
    """The shortest length whose validation Recall@10 is within one standard error of the best
    length's (the one-standard-error rule; the error of the paired per-board differences), from
    ``{epochs: float [V] per-board recall}`` measured on the same boards."""
    means = {e: float(r.mean()) for e, r in per_board.items()}
    best = max(means, key=lambda e: (means[e], -e))
    for e in sorted(per_board):
        d = per_board[best] - per_board[e]
        se = float(d.std() / math.sqrt(d.numel())) if d.numel() > 1 else 0.0
        if means[best] - means[e] <= se:
            return e
    return best


def refine_ids(ids: torch.nn.Embedding, warm: Tensor, content: Tensor, graph: PinBoardGraph, *, epochs: int,
               lr: float = 0.01, input_dropout: float = 0.3, id_dropout: float = 0.1, boards_per_batch: int = 64,
               targets: int = 4, negatives: int = 0, query: str = "centroid", tau: float = 0.1,
               held_out: tuple[Tensor, Tensor] | None = None, eval_every: int = 5, seed: int = 0,
               refit: bool = True) -> RefineStats:
    """Refine the ID rows of the warm pins in place (see the module docstring).

    Without ``held_out`` it runs ``epochs`` epochs. With it, the number of epochs is chosen on
    those validation memberships: the refinement runs up to ``epochs`` epochs on the other
    memberships, Recall@10 of the held-out ones is measured before it (0 epochs) and every
    ``eval_every`` epochs, and the shortest length within one standard error of the best
    (:func:`one_se_choice`) is then run again from the start on every membership; 0 keeps the IDs
    as they are. The validation memberships must be unseen by whatever trained the IDs before:
    memorised ones favour 0 epochs (measured on Steam: Recall@10 1.0 before refining), which is
    why :func:`~boardgraph.training.refine_validation.choose_refine_epochs` trains a copy of the run
    without them.

    Args:
        ids: the encoder's ID table (:attr:`~boardgraph.encoders.PinEncoder.ids`, an
            :class:`~boardgraph.encoders.IdTable`, or an ``nn.Embedding`` ``[N_pins, E]``): the rows of
            warm pins of a full table are overwritten; a hashed table's rows are trained through
            the hashes (each warm pin's vector is ``content + the sum of its buckets``).
        warm: bool ``[N_pins]`` the pins that carry their ID (``PinEncoder.id_warm``).
        content: float ``[N_pins, E]`` every pin's content vector before normalisation
            (:attr:`~boardgraph.encoders.PinEmbedding.content`, eval mode), on the table's device.
        graph: the training graph (its board -> pin memberships are the training signal).
        epochs: the most passes over the boards with 2+ pins.
        lr: Adam learning rate of the pins' vectors.
        input_dropout: share of a board's pins left out of each query, in ``[0, 1)``.
        id_dropout: share of warm pins that take part content-only in each batch, in ``[0, 1)``.
        boards_per_batch: boards per step; targets: held-back pins per board and step.
        negatives: 0 scores every warm pin in each step's softmax; with fewer warm pins than
            ``negatives`` too; else a sampled softmax over that many uniformly drawn pins plus the
            batch's held-back ones (:func:`_train_sampled`: sparse updates, for large catalogues).
        query, tau: the board query the run serves (:mod:`boardgraph.inference.board_query`),
            trained and validated with.
        held_out: ``(pins, boards)`` int64 ``[H]`` memberships of ``graph`` to choose the length on.
        eval_every: epochs between validation measurements.
        refit: with ``held_out``, False stops once the length is chosen and leaves the IDs as they
            are (a caller that only wants the length, as the validation copy).
        seed: seed of the draws (the result is deterministic for a seed on a device).

    Raises:
        ValueError: shapes disagree, a share outside ``[0, 1)``, or negative ``negatives``.
    """
    n, e = getattr(ids, "num_ids", ids.weight.shape[0]), ids.weight.shape[1]
    if warm.shape != (n,) or content.shape != (n, e):
        raise ValueError(f"expected warm [{n}] and content [{n}, {e}], got "
                         f"{tuple(warm.shape)} and {tuple(content.shape)}")
    if not (0 <= input_dropout < 1 and 0 <= id_dropout < 1) or negatives < 0:
        raise ValueError(f"input_dropout and id_dropout must lie in [0, 1) and negatives be >= 0, got "
                         f"{input_dropout}, {id_dropout}, {negatives}")
    t0, dev = time.perf_counter(), ids.weight.device
    indptr, indices, _ = graph.csr(("board", "has", "pin"))
    indptr, indices = indptr.long().to(dev), indices.long().to(dev)
    pins = torch.nonzero(warm.to(dev)).squeeze(1)
    local = torch.full((n,), -1, dtype=torch.long, device=dev)
    local[pins] = torch.arange(pins.numel(), device=dev)
    if bool((local[indices] < 0).any()):
        raise ValueError("a pin with a training membership is not marked warm; pass warm = degree > 0 of this graph")
    rows = _Rows.of(indptr, local[indices])
    z = content.detach().float()[pins]
    rows_of = _Ids.of(ids, pins)
    u0 = rows_of.vectors(z, rows_of.weight)
    st = _Settings(lr, input_dropout, id_dropout, boards_per_batch, targets, negatives, query, tau)
    train_fn = _train_sampled if 0 < negatives < pins.numel() else _train
    validation: dict[int, float] = {}
    chosen = epochs
    if held_out is not None and epochs > 0:
        hp, hb = (t.long().to(dev) for t in held_out)
        train, val = rows.partition(torch.isin(rows.board_of() * n + indices, hb * n + hp))
        if val.cols.numel():
            per_board = {0: _recall(u0, train, val, query=query, tau=tau)}
            every = max(1, eval_every)
            train_fn(rows_of, z, train, epochs, st, torch.Generator(device=dev).manual_seed(seed),
                   lambda e, u: per_board.__setitem__(e, _recall(u, train, val, query=query, tau=tau))
                   if e % every == 0 or e == epochs
                   else None)
            validation = {e: float(r.mean()) for e, r in per_board.items()}
            chosen = one_se_choice(per_board)
    if not refit and held_out is not None:
        return RefineStats(chosen, validation, int(rows.boards.numel()), int(pins.numel()), math.nan, math.nan,
                           time.perf_counter() - t0, query)
    weight, losses = train_fn(rows_of, z, rows, chosen, st, torch.Generator(device=dev).manual_seed(seed))
    rows_of.write(ids, weight)
    return RefineStats(chosen, validation, int(rows.boards.numel()), int(pins.numel()),
                       losses[0] if losses else math.nan, losses[-1] if losses else math.nan,
                       time.perf_counter() - t0, query)


def refine_settings(cfg: TrainConfig) -> dict[str, Any]:
    """The ``optim.refine_*`` settings and the run's board query as :func:`refine_ids` keywords
    (besides the length)."""
    o = cfg.optim
    return {"lr": o.refine_lr, "input_dropout": o.refine_input_dropout, "id_dropout": o.refine_id_dropout,
            "negatives": o.refine_negatives, "query": cfg.objective.query(), "tau": cfg.objective.board_query_tau}


def refine_encoder(encoder, content: Tensor, graph: PinBoardGraph, cfg: TrainConfig, epochs: int) -> RefineStats:
    """:func:`refine_ids` of ``encoder``'s ID table (a :class:`~boardgraph.encoders.PinEncoder` with
    IDs) for ``epochs`` epochs on every membership of ``graph``, with the other ``optim.refine_*``
    settings, the board query and the seed of ``cfg``; logs what it did."""
    st = refine_ids(encoder.ids, encoder.id_warm, content, graph, epochs=epochs, seed=cfg.run.seed,
                    **refine_settings(cfg))
    log.info("refined the IDs of %d warm pins over %d boards: %d epochs, loss %.3f -> %.3f (%.1f s)",
             st.warm_pins, st.boards, st.epochs, st.first_loss, st.last_loss, st.seconds)
    return st
