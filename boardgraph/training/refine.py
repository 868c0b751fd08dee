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
(:func:`choose_refine_epochs`): a copy of the run trains without ``refine_val_fraction`` of the
training memberships, their Recall@10 is measured before its refinement and every 5 epochs, and
the run itself is refined, on every membership, for the shortest length within one standard error
of the best (possibly 0: the IDs stay as the first phase left them).

Cost: one epoch is ``boards / boards_per_batch`` steps of a ``[boards_per_batch, warm pins]``
softmax, ``O(memberships + boards x warm pins x E)`` per epoch: seconds for 10^4 pins on a CPU,
minutes for 10^6 on a GPU. Catalogues far beyond that need a sampled softmax (not done yet).
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from boardgraph.evaluation.splits import split_memberships
from boardgraph.graph import MEMBER, PinBoardGraph
from boardgraph.graph.csr import cumsum0, padded_rows
from boardgraph.training.config import OptimConfig

__all__ = ["RefineStats", "refine_ids", "refine_encoder", "choose_refine_epochs", "phase_one_graph", "one_se_choice"]

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
    """

    epochs: int
    validation: dict[int, float]
    boards: int
    warm_pins: int
    first_loss: float
    last_loss: float
    seconds: float


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


def _train(u0: Tensor, z: Tensor, rows: _Rows, epochs: int, st: _Settings, gen: torch.Generator,
           on_epoch: Callable[[int, Tensor], None] | None = None) -> tuple[Tensor, list[float]]:
    """``epochs`` of the board-completion softmax from the pins' vectors ``u0 [n, E]`` (content
    ``z [n, E]``); ``on_epoch(epoch, u)`` after each. Returns the final vectors and each epoch's mean loss."""
    dev, n = u0.device, u0.shape[0]
    u = torch.nn.Parameter(u0.clone())
    log_scale = torch.nn.Parameter(torch.tensor(math.log(10.0), device=dev))
    opt = torch.optim.Adam([u, log_scale], lr=st.lr)
    losses: list[float] = []
    for epoch in range(1, epochs + 1):
        total, count = 0.0, 0
        order = rows.boards[torch.randperm(rows.boards.numel(), generator=gen, device=dev)]
        for s in range(0, order.numel(), st.boards_per_batch):
            x = rows.dense(order[s:s + st.boards_per_batch], n)
            tgt = torch.multinomial(x, st.targets, replacement=True, generator=gen)
            inp = x * (torch.rand(x.shape, generator=gen, device=dev) >= st.input_dropout)
            inp.scatter_(1, tgt, 0.0)
            keep = torch.rand(n, 1, generator=gen, device=dev) >= st.id_dropout
            v = F.normalize(torch.where(keep, u, z), dim=1)
            q = F.normalize(inp @ v, dim=1)
            logits = (log_scale.clamp(max=math.log(100.0)).exp() * q @ v.T).masked_fill(inp > 0, -1e4)
            has = inp.sum(1) > 0
            if not bool(has.any()):
                continue
            loss = F.cross_entropy(logits[has].repeat(st.targets, 1), tgt[has].T.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, count = total + float(loss.detach()), count + 1
        losses.append(total / max(count, 1))
        if on_epoch is not None:
            on_epoch(epoch, u.detach())
    return u.detach(), losses


@torch.no_grad()
def _recall(u: Tensor, train: _Rows, val: _Rows, k: int = 10, chunk: int = 256) -> Tensor:
    """float ``[V]`` Recall@k of each validation board's held-out memberships: a board's query is
    the mean of its training pins' vectors ``normalize(u)``, ranking every other warm pin."""
    v = F.normalize(u, dim=1)
    boards = torch.nonzero((val.indptr[1:] - val.indptr[:-1] > 0) & (train.indptr[1:] - train.indptr[:-1] > 0))
    boards = boards.squeeze(1)
    hits = []
    for s in range(0, boards.numel(), chunk):
        b = boards[s:s + chunk]
        x, pos = train.dense(b, v.shape[0]), val.dense(b, v.shape[0])
        scores = (F.normalize(x @ v, dim=1) @ v.T).masked_fill(x > 0, -math.inf)
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
               targets: int = 4, held_out: tuple[Tensor, Tensor] | None = None, eval_every: int = 5,
               seed: int = 0) -> RefineStats:
    """Refine the ID rows of the warm pins in place (see the module docstring).

    Without ``held_out`` it runs ``epochs`` epochs. With it, the number of epochs is chosen on
    those validation memberships: the refinement runs up to ``epochs`` epochs on the other
    memberships, Recall@10 of the held-out ones is measured before it (0 epochs) and every
    ``eval_every`` epochs, and the shortest length within one standard error of the best
    (:func:`one_se_choice`) is then run again from the start on every membership; 0 keeps the IDs
    as they are. The validation memberships must be unseen by whatever trained the IDs before:
    memorised ones favour 0 epochs (measured on Steam: Recall@10 1.0 before refining), which is
    why :func:`choose_refine_epochs` trains a copy of the run without them.

    Args:
        ids: the encoder's ID table ``[N_pins, E]`` (:attr:`~boardgraph.encoders.PinEncoder.ids`);
            its rows of warm pins are overwritten.
        warm: bool ``[N_pins]`` the pins that carry their ID (``PinEncoder.id_warm``).
        content: float ``[N_pins, E]`` every pin's content vector before normalisation
            (:attr:`~boardgraph.encoders.PinEmbedding.content`, eval mode), on the table's device.
        graph: the training graph (its board -> pin memberships are the training signal).
        epochs: the most passes over the boards with 2+ pins.
        lr: Adam learning rate of the pins' vectors.
        input_dropout: share of a board's pins left out of each query, in ``[0, 1)``.
        id_dropout: share of warm pins that take part content-only in each batch, in ``[0, 1)``.
        boards_per_batch: boards per step; targets: held-back pins per board and step.
        held_out: ``(pins, boards)`` int64 ``[H]`` memberships of ``graph`` to choose the length on.
        eval_every: epochs between validation measurements.
        seed: seed of the draws (the result is deterministic for a seed on a device).

    Raises:
        ValueError: shapes disagree, or a share outside ``[0, 1)``.
    """
    n = ids.num_embeddings
    if warm.shape != (n,) or content.shape != (n, ids.embedding_dim):
        raise ValueError(f"expected warm [{n}] and content [{n}, {ids.embedding_dim}], got "
                         f"{tuple(warm.shape)} and {tuple(content.shape)}")
    if not (0 <= input_dropout < 1 and 0 <= id_dropout < 1):
        raise ValueError(f"input_dropout and id_dropout must lie in [0, 1), got {input_dropout}, {id_dropout}")
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
    u0 = z + ids.weight.detach().float()[pins]
    st = _Settings(lr, input_dropout, id_dropout, boards_per_batch, targets)
    validation: dict[int, float] = {}
    chosen = epochs
    if held_out is not None and epochs > 0:
        hp, hb = (t.long().to(dev) for t in held_out)
        train, val = rows.partition(torch.isin(rows.board_of() * n + indices, hb * n + hp))
        if val.cols.numel():
            per_board = {0: _recall(u0, train, val)}
            every = max(1, eval_every)
            _train(u0, z, train, epochs, st, torch.Generator(device=dev).manual_seed(seed),
                   lambda e, u: per_board.__setitem__(e, _recall(u, train, val)) if e % every == 0 or e == epochs
                   else None)
            validation = {e: float(r.mean()) for e, r in per_board.items()}
            chosen = one_se_choice(per_board)
    u, losses = _train(u0, z, rows, chosen, st, torch.Generator(device=dev).manual_seed(seed))
    with torch.no_grad():
        ids.weight[pins] = (u - z).to(ids.weight.dtype)
    return RefineStats(chosen, validation, int(rows.boards.numel()), int(pins.numel()),
                       losses[0] if losses else math.nan, losses[-1] if losses else math.nan,
                       time.perf_counter() - t0)


def phase_one_graph(train_graph: PinBoardGraph, fraction: float,
                    seed: int) -> tuple[PinBoardGraph, tuple[Tensor, Tensor]]:
    """``(graph, held_out)``: ``train_graph`` without ``fraction`` of its memberships
    (:func:`~boardgraph.evaluation.splits.split_memberships`, seeded), and those memberships
    ``(pins, boards)``: the validation memberships of :func:`choose_refine_epochs`."""
    val = split_memberships(train_graph, fraction, 0.0, seed=seed)
    return val.train_graph, val.heldout


def _share_feature_cache(src: Path, dst: Path) -> None:
    """Hard-link (else copy) the run's feature cache ``src`` into ``dst``, so a copy of the run
    does not encode the pins' towers again."""
    if src.is_dir() and not dst.exists():
        try:
            shutil.copytree(src, dst, copy_function=os.link)
        except OSError:
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst)


def _settings(o: OptimConfig) -> dict[str, float]:
    """The ``optim.refine_*`` settings as :func:`refine_ids` keywords (besides the length)."""
    return {"lr": o.refine_lr, "input_dropout": o.refine_input_dropout, "id_dropout": o.refine_id_dropout}


def _on_rank0(fn: Callable[[], None]) -> None:
    """``fn()`` on rank 0 only, between barriers when torch.distributed runs (every rank calls this)."""
    distributed = dist.is_available() and dist.is_initialized()
    if distributed:
        dist.barrier()
    if not distributed or dist.get_rank() == 0:
        fn()
    if distributed:
        dist.barrier()


def choose_refine_epochs(trainer_cls, run) -> RefineStats:
    """The refinement length for the trained run ``run`` (a :class:`~boardgraph.training.Trainer`),
    chosen on validation memberships that no phase has seen.

    A copy of the run (``trainer_cls``, same config and seed, in ``<out_dir>/refine_validation``,
    removed afterwards) trains its first phase without ``optim.refine_val_fraction`` of the
    training memberships (:func:`phase_one_graph`); :func:`refine_ids` then measures their
    Recall@10 before refining the copy's IDs and every 5 epochs up to ``optim.refine_epochs``. The
    returned stats' ``epochs`` is the shortest length within one standard error of the best (0: do
    not refine; small validation sets, as on curated bundles, then refine only for a clear gain). Costs a
    second first phase; holding the memberships out of the run itself would cost it data instead
    (measured on Steam: warm Recall@10 -0.025 [-0.040, -0.011], 3 seeds).
    """
    cfg, split, o = run.cfg, run.split, run.cfg.optim
    fit, held = phase_one_graph(split.train_graph, o.refine_val_fraction, cfg.run.seed)
    child_cfg = copy.deepcopy(cfg)
    child_cfg.optim.refine_epochs = 0                     # the copy does not refine itself
    out = Path(cfg.run.out_dir) / "refine_validation"
    child_cfg.run.out_dir, child_cfg.run.tensorboard = str(out), False
    _on_rank0(lambda: _share_feature_cache(Path(cfg.run.out_dir) / "feature_cache", out / "feature_cache"))
    try:
        child = trainer_cls(child_cfg, split=dataclasses.replace(split, train_graph=fit), progress=False)
        child.model.encoder.set_warm_ids(split.train_graph.degree(MEMBER) > 0)   # the run's warm pins
        child.fit()
        enc = child.model.encoder
        st = refine_ids(enc.ids, enc.id_warm, child.content_vectors(), split.train_graph, epochs=o.refine_epochs,
                        held_out=held, seed=cfg.run.seed, **_settings(o))
    finally:
        _on_rank0(lambda: shutil.rmtree(out, ignore_errors=True))
    log.info("refinement length: %d epochs (validation Recall@10 by epochs: %s)", st.epochs,
             ", ".join(f"{e}: {r:.4f}" for e, r in st.validation.items()))
    return st


def refine_encoder(encoder, content: Tensor, graph: PinBoardGraph, o: OptimConfig, seed: int,
                   epochs: int) -> RefineStats:
    """:func:`refine_ids` of ``encoder``'s ID table (a :class:`~boardgraph.encoders.PinEncoder` with
    IDs) for ``epochs`` epochs on every membership of ``graph``, with the other ``optim.refine_*``
    settings of ``o``; logs what it did."""
    st = refine_ids(encoder.ids, encoder.id_warm, content, graph, epochs=epochs, seed=seed, **_settings(o))
    log.info("refined the IDs of %d warm pins over %d boards: %d epochs, loss %.3f -> %.3f (%.1f s)",
             st.warm_pins, st.boards, st.epochs, st.first_loss, st.last_loss, st.seconds)
    return st
