"""The ID table sharded across ``torchrun`` ranks (``model.shard_ids``).

Replicated, every rank holds the whole ``[rows, E]`` ID table plus its AdamW state (3x) and DDP
all-reduces its dense gradient every step: ``O(rows x E)`` memory and traffic per rank. Sharded,
rank ``r`` holds the contiguous rows ``[r S, (r + 1) S)``, ``S = ceil(rows / world)``, and their
optimizer state; a step exchanges only the rows its batches read:

* forward: the ranks gather each other's requested rows (``[world, m]`` ids, ``m`` the largest
  request), each fills the requests it owns, and one all-reduce of ``[world, m, E]`` answers
  every rank;
* backward: the ranks gather the gradients of their requests and each owner adds them to its
  rows, divided by ``world`` as DDP averages a replicated parameter's gradient.

So training computes what the replicated table computes, up to float summation order (tested on
two processes), with ``O(rows x E / world + world x m x E)`` memory and traffic per rank. Every
rank must run the same lookups in the same order, as with any collective: the trainer's steps
and bank refreshes do. Checkpoints hold the whole table and its optimizer state (gathered at
save, sliced at load), so a run resumes on any number of ranks and loads for serving as usual;
after training the table is gathered back (:meth:`IdSharding.end`) for the refinement and the
embedding pass.
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import Tensor, nn

from boardgraph.encoders import IdTable

__all__ = ["ShardedIdTable", "IdSharding", "gather_rows", "shard_rows", "global_grad_norm"]


def gather_rows(shard: Tensor, rows: int) -> Tensor:
    """float ``[rows, ...]``: every rank's contiguous shard ``[S, ...]`` of a row-sharded tensor,
    concatenated in rank order (collective: every rank calls it)."""
    parts = [torch.empty_like(shard) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, shard.detach().contiguous())
    return torch.cat(parts)[:rows]


def shard_rows(full: Tensor, rank: int, world: int) -> Tensor:
    """Rank ``rank``'s contiguous rows ``[S, ...]`` of ``full [rows, ...]`` (zero-padded at the end)."""
    s = math.ceil(full.shape[0] / world)
    out = full.new_zeros((s, *full.shape[1:]))
    part = full[rank * s:(rank + 1) * s]
    out[:part.shape[0]] = part
    return out


class _Lookup(torch.autograd.Function):
    """Rows ``flat [n]`` of a table sharded over the ranks -> ``[n, E]`` (see the module docstring)."""

    @staticmethod
    def forward(ctx, weight: Tensor, flat: Tensor) -> Tensor:
        rank, world, s = dist.get_rank(), dist.get_world_size(), weight.shape[0]
        n = torch.tensor([flat.numel()], device=flat.device)
        sizes = [torch.empty_like(n) for _ in range(world)]
        dist.all_gather(sizes, n)
        m = max(int(x) for x in sizes)
        padded = torch.full((m,), -1, dtype=torch.long, device=flat.device)
        padded[:flat.numel()] = flat
        asked = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(asked, padded)
        asked_t = torch.stack(asked)                                      # [world, m]
        mine = (asked_t >= 0) & (asked_t // s == rank)
        out = weight.new_zeros(world, m, weight.shape[1])
        out[mine] = weight[asked_t[mine] - rank * s]
        dist.all_reduce(out)
        ctx.save_for_backward(asked_t, mine)
        ctx.n, ctx.s = flat.numel(), s
        return out[rank, :flat.numel()]

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        asked, mine = ctx.saved_tensors
        rank, world = dist.get_rank(), dist.get_world_size()
        padded = grad.new_zeros(asked.shape[1], grad.shape[1])
        padded[:ctx.n] = grad
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded.contiguous())
        g = grad.new_zeros(ctx.s, grad.shape[1])
        g.index_add_(0, asked[mine] - rank * ctx.s, torch.stack(parts)[mine])
        return g / world, None


class ShardedIdTable(nn.Module):
    """This rank's share of an :class:`~boardgraph.encoders.IdTable` (same ``rows`` and forward;
    ``weight`` holds rows ``[rank S, (rank + 1) S)`` only). Built by :class:`IdSharding`."""

    def __init__(self, table: IdTable, rank: int, world: int) -> None:
        super().__init__()
        self.num_ids, self.dim, self.buckets, self.hashes = table.num_ids, table.dim, table.buckets, table.hashes
        self.total_rows, self.rank, self.world = table.num_rows, rank, world
        self.weight = nn.Parameter(shard_rows(table.weight.detach(), rank, world))
        self._table = [table]     # hashing of the full table (kept out of the module's parameters)

    @property
    def hashed(self) -> bool:
        return self.buckets > 0

    def rows(self, index: Tensor) -> Tensor:
        return self._table[0].rows(index)

    def forward(self, index: Tensor) -> Tensor:
        rows = self.rows(index)
        return _Lookup.apply(self.weight, rows.reshape(-1)).view(*rows.shape, -1).sum(-2)

    def full_weight(self) -> Tensor:
        """float ``[rows, E]``: the whole table, gathered (collective)."""
        return gather_rows(self.weight, self.total_rows)

    def extra_repr(self) -> str:
        return f"rows {self.rank * self.weight.shape[0]}.. of {self.total_rows} (rank {self.rank} of {self.world})"


class IdSharding:
    """The trainer's sharded ID table (``model.shard_ids`` under ``torchrun``): the shard, which
    stays the optimizer's parameter for the whole run, and the moves around it.

    The encoder reads the shard while it trains (:meth:`begin`) and the whole table otherwise
    (:meth:`end`: the refinement, the embedding pass, serving); checkpoints are whole
    (:meth:`full_state` / :meth:`shard_state`). Every method marked collective must be called by
    every rank.
    """

    NAME = "encoder.ids.weight"

    def __init__(self, encoder: nn.Module) -> None:
        self.table: IdTable = encoder.ids
        self.shard = ShardedIdTable(self.table, dist.get_rank(), dist.get_world_size()).to(self.table.weight.device)
        encoder.ids = self.shard

    def begin(self, encoder: nn.Module) -> None:
        """The encoder reads the shard again, with the rows the whole table holds now."""
        if encoder.ids is not self.shard:
            with torch.no_grad():
                self.shard.weight.copy_(shard_rows(self.table.weight.detach(), self.shard.rank, self.shard.world))
            encoder.ids = self.shard

    def end(self, encoder: nn.Module) -> None:
        """The encoder reads the whole table, gathered from the shards (collective)."""
        if encoder.ids is self.shard:
            with torch.no_grad():
                self.table.weight.copy_(self.shard.full_weight())
            encoder.ids = self.table

    def clip(self, params: list[nn.Parameter], max_norm: float) -> Tensor:
        """``clip_grad_norm_`` of ``params`` (the shard among them) by their norm over all ranks
        (collective); returns it."""
        rest = [p for p in params if p is not self.shard.weight]
        total = global_grad_norm(rest, [self.shard.weight])
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
        return total

    def _index(self, optimizer: torch.optim.Optimizer) -> int:
        flat = [p for g in optimizer.param_groups for p in g["params"]]
        return next(i for i, p in enumerate(flat) if p is self.shard.weight)

    def full_state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
        """``(model, optimizer)`` state dicts with the whole table and its whole optimizer state
        (collective): what a replicated run would save."""
        model_sd = model.state_dict()
        if model.encoder.ids is self.shard:
            model_sd[self.NAME] = self.shard.full_weight()
        opt_sd, i = optimizer.state_dict(), self._index(optimizer)
        if i in opt_sd["state"]:   # AdamW's exp_avg and exp_avg_sq: [S, E] rows of the shard
            opt_sd["state"][i] = {k: gather_rows(v, self.table.num_rows) if self._is_rows(v) else v
                                  for k, v in opt_sd["state"][i].items()}
        return model_sd, opt_sd

    def shard_state(self, model: nn.Module, model_sd: dict, optimizer: torch.optim.Optimizer, opt_sd: dict
                    ) -> tuple[dict, dict]:
        """The inverse of :meth:`full_state` for this rank: the whole table's optimizer state cut to
        its shard, and the table too while ``model``'s encoder reads the shard."""
        r, w = self.shard.rank, self.shard.world
        if model.encoder.ids is self.shard:
            model_sd = {**model_sd, self.NAME: shard_rows(model_sd[self.NAME], r, w)}
        i = self._index(optimizer)
        if i in opt_sd["state"]:
            opt_sd = {**opt_sd, "state": {**opt_sd["state"], i: {
                k: shard_rows(v, r, w) if self._is_rows(v) else v for k, v in opt_sd["state"][i].items()}}}
        return model_sd, opt_sd

    @staticmethod
    def _is_rows(v: object) -> bool:
        return torch.is_tensor(v) and v.dim() == 2


def global_grad_norm(replicated: list[Tensor], sharded: list[Tensor]) -> Tensor:
    """The 2-norm of all gradients when ``replicated`` parameters hold the same (reduced) gradient
    on every rank and ``sharded`` ones hold each rank's own rows: the same value on every rank."""
    dev = sharded[0].device
    sq = sum((p.grad.float().pow(2).sum() for p in replicated if p.grad is not None), torch.zeros((), device=dev))
    own = sum((p.grad.float().pow(2).sum() for p in sharded if p.grad is not None), torch.zeros((), device=dev))
    dist.all_reduce(own)
    return (sq + own).sqrt()
