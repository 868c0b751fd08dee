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

Cost: one epoch is ``boards / boards_per_batch`` steps of a ``[boards_per_batch, warm pins]``
softmax, ``O(memberships + boards x warm pins x E)`` per epoch: seconds for 10^4 pins on a CPU,
minutes for 10^6 on a GPU. Catalogues far beyond that need a sampled softmax (not done yet).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from boardgraph.graph import PinBoardGraph
from boardgraph.training.config import OptimConfig

__all__ = ["RefineStats", "refine_ids", "refine_encoder"]

log = logging.getLogger(__name__)


@dataclass
class RefineStats:
    """What a refinement did: ``epochs`` run, ``boards`` used per epoch (those with 2+ pins),
    ``warm_pins`` whose ID moved, the mean loss of the first and last epoch, and ``seconds``."""

    epochs: int
    boards: int
    warm_pins: int
    first_loss: float
    last_loss: float
    seconds: float


def _board_rows(indptr: Tensor, indices: Tensor, boards: Tensor, local: Tensor, n_cols: int) -> Tensor:
    """float ``[len(boards), n_cols]`` 0/1 membership rows of ``boards`` over local pin columns."""
    starts, lens = indptr[boards], indptr[boards + 1] - indptr[boards]
    row = torch.repeat_interleave(torch.arange(boards.numel(), device=indptr.device), lens)
    first = torch.repeat_interleave(torch.cumsum(lens, 0) - lens, lens)    # each membership's row start
    offs = torch.arange(int(lens.sum()), device=indptr.device) - first
    x = torch.zeros(boards.numel(), n_cols, device=indptr.device)
    x[row, local[indices[torch.repeat_interleave(starts, lens) + offs]]] = 1.0
    return x


def refine_ids(ids: torch.nn.Embedding, warm: Tensor, content: Tensor, graph: PinBoardGraph, *, epochs: int,
               lr: float = 0.01, input_dropout: float = 0.3, id_dropout: float = 0.1, boards_per_batch: int = 64,
               targets: int = 4, seed: int = 0) -> RefineStats:
    """Refine the ID rows of the warm pins in place (see the module docstring).

    Args:
        ids: the encoder's ID table ``[N_pins, E]`` (:attr:`~boardgraph.encoders.PinEncoder.ids`);
            its rows of warm pins are overwritten.
        warm: bool ``[N_pins]`` the pins that carry their ID (``PinEncoder.id_warm``).
        content: float ``[N_pins, E]`` every pin's content vector before normalisation
            (:attr:`~boardgraph.encoders.PinEmbedding.content`, eval mode), on the table's device.
        graph: the training graph (its board -> pin memberships are the training signal).
        epochs: passes over the boards with 2+ pins.
        lr: Adam learning rate of the pins' vectors.
        input_dropout: share of a board's pins left out of each query, in ``[0, 1)``.
        id_dropout: share of warm pins that take part content-only in each batch, in ``[0, 1)``.
        boards_per_batch: boards per step; targets: held-back pins per board and step.
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
    boards = torch.nonzero(indptr[1:] - indptr[:-1] >= 2).squeeze(1)
    z = content.detach().float()[pins]
    u = torch.nn.Parameter(z + ids.weight.detach().float()[pins])
    log_scale = torch.nn.Parameter(torch.tensor(math.log(10.0), device=dev))
    opt = torch.optim.Adam([u, log_scale], lr=lr)
    gen = torch.Generator(device=dev).manual_seed(seed)
    losses: list[float] = []
    for _ in range(epochs):
        total, count = 0.0, 0
        order = boards[torch.randperm(boards.numel(), generator=gen, device=dev)]
        for s in range(0, order.numel(), boards_per_batch):
            x = _board_rows(indptr, indices, order[s:s + boards_per_batch], local, pins.numel())
            tgt = torch.multinomial(x, targets, replacement=True, generator=gen)
            inp = x * (torch.rand(x.shape, generator=gen, device=dev) >= input_dropout)
            inp.scatter_(1, tgt, 0.0)
            keep = torch.rand(pins.numel(), 1, generator=gen, device=dev) >= id_dropout
            v = F.normalize(torch.where(keep, u, z), dim=1)
            q = F.normalize(inp @ v, dim=1)
            logits = (log_scale.clamp(max=math.log(100.0)).exp() * q @ v.T).masked_fill(inp > 0, -1e4)
            has = inp.sum(1) > 0
            if not bool(has.any()):
                continue
            loss = F.cross_entropy(logits[has].repeat(targets, 1), tgt[has].T.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, count = total + float(loss.detach()), count + 1
        losses.append(total / max(count, 1))
    with torch.no_grad():
        ids.weight[pins] = (u - z).to(ids.weight.dtype)
    return RefineStats(epochs, int(boards.numel()), int(pins.numel()), losses[0] if losses else math.nan,
                       losses[-1] if losses else math.nan, time.perf_counter() - t0)


def refine_encoder(encoder, content: Tensor, graph: PinBoardGraph, o: OptimConfig, seed: int) -> RefineStats:
    """:func:`refine_ids` of ``encoder``'s ID table (a :class:`~boardgraph.encoders.PinEncoder` with
    IDs) with the ``optim.refine_*`` settings of ``o``; logs what it did."""
    st = refine_ids(encoder.ids, encoder.id_warm, content, graph, epochs=o.refine_epochs, lr=o.refine_lr,
                    input_dropout=o.refine_input_dropout, id_dropout=o.refine_id_dropout, seed=seed)
    log.info("refined the IDs of %d warm pins over %d boards: %d epochs, loss %.3f -> %.3f (%.1f s)",
             st.warm_pins, st.boards, st.epochs, st.first_loss, st.last_loss, st.seconds)
    return st
