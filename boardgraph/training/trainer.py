"""The training loop: one config in, a trained model, metrics and checkpoints out.

Frozen towers (the default) are run once into a :class:`~boardgraph.encoders.FeatureCache`, so a
step only runs fusion, projections, mate attention and the losses: this is how training stays
fast on CPU. Under ``torchrun`` the seeds are sharded across ranks (gloo on CPU, nccl on GPU),
in-batch negatives are gathered across ranks, and rank 0 writes checkpoints and metrics; with
``model.shard_ids`` each rank holds only its share of the ID table
(:mod:`~boardgraph.training.id_sharding`).

Rank 0 holds the run folder's lock while it trains (a second process gets
:class:`~boardgraph.training.checkpoint.RunLockedError`). A NaN/inf loss stops training with
:class:`NonFiniteLossError` before the step reaches the weights, so the last checkpoint stays good;
a batch larger than the pins on a board is clamped to them (with a logged note).
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm.auto import tqdm

from boardgraph.training.checkpoint import GraphChangedError, graph_fingerprint, load_checkpoint, run_lock, save_checkpoint
from boardgraph.training.config import ConfigError, TrainConfig
from boardgraph.evaluation.splits import DataSplit, save_split_ids, split_memberships
from boardgraph.inference.embed import content_vectors, embed_pins, encode_pins
from boardgraph.inference.shards import embed_pins_sharded
from boardgraph.encoders import FeatureCache
from boardgraph.training.id_sharding import IdSharding
from boardgraph.training.factory import (batch_per_rank, build_model, load_graph_for, open_feature_cache,
                                         resolve_device)
from boardgraph.training.metrics_log import MetricLog, write_rank_summary
from boardgraph.training.optim import build_optimizer
from boardgraph.training.refine import refine_encoder
from boardgraph.training.refine_validation import choose_refine_epochs
from boardgraph.graph import MEMBER
from boardgraph.graph.csr import padded_rows
from boardgraph.errors import BoardgraphError
from boardgraph.objectives import combine_losses, gather_features
from boardgraph.objectives.pinclip import StepInputs, default_weights
from boardgraph.sampling import (BoardMateSampler, MiniBatch, PinBoardLoader, PopularityNegativeSampler,
                                 UniformNegativeSampler)

__all__ = ["Trainer", "TrainResult", "NonFiniteLossError", "resolve_device"]

log = logging.getLogger(__name__)
MAX_BOARDS_PER_PIN = 64


class NonFiniteLossError(BoardgraphError, FloatingPointError):
    """Training met a NaN/inf loss (or gradient, or weight) and stopped before it reached the
    weights; the message names the step and the loss terms, and the checkpoint that is kept."""


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns."""

    step: int
    out_dir: Path
    history: list[dict[str, float]] = field(default_factory=list)


class Trainer:
    """Train the model a :class:`~boardgraph.training.config.TrainConfig` describes.

    Args:
        config: the run's config.
        split: the data (default: loaded and split as ``config.data`` says).
        progress: show a tqdm bar (default from ``config.run.progress``: only on a terminal).
    """

    def __init__(self, config: TrainConfig, split: DataSplit | None = None, progress: bool | None = None) -> None:
        config.validate()
        self.cfg = cfg = config
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        self.device = resolve_device(cfg.run.device)
        if self.distributed and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        self.out_dir = Path(cfg.run.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if split is None:
            d = cfg.data
            split = split_memberships(load_graph_for(d), d.holdout_fraction, d.cold_fraction, d.split_seed)
        self.split = split
        #: graph_fingerprint of the whole graph, stored in checkpoints and with the embeddings
        self.graph_fingerprint = graph_fingerprint(split.graph)
        parts = build_model(cfg, split.graph, gather=self.distributed)
        self.model, self.builder, self.schema = parts.model.to(self.device), parts.builder, parts.schema
        if self.model.encoder.ids is not None:   # pins with training memberships carry their ID
            self.model.encoder.set_warm_ids(split.train_graph.degree(MEMBER) > 0)
        self.weights = dict(cfg.objective.weights or default_weights(cfg.objective.kind))
        self.cache = self._feature_cache() if cfg.model.freeze_towers else None
        self.loader = self._loader()
        #: the global batch used: ``run.batch_size``, or fewer when the graph has fewer pins on a board
        self.batch_size = self.loader.batch_size * self.world
        # Fixed width of each seed's board list: equal shapes on every rank (they are gathered);
        # pins on more boards keep their first MAX_BOARDS_PER_PIN for false-negative masking.
        self.board_width = max(1, min(MAX_BOARDS_PER_PIN, int(split.train_graph.degree(MEMBER).max())))
        #: the ID table sharded across the ranks (model.shard_ids under torchrun), else None
        self.id_sharding = IdSharding(self.model.encoder) if (
            self.distributed and cfg.model.shard_ids and self.model.encoder.ids is not None) else None
        self.optimizer, self.scheduler = build_optimizer(self.model, cfg.optim, cfg.run.steps)
        if self.model.bank.numel():
            self._fill_bank()
        if self.id_sharding is not None:   # each rank's own rows: not for DDP to broadcast or average
            DDP._set_params_and_buffers_to_ignore_for_model(self.model, [IdSharding.NAME])
        # buffers are not broadcast: the bank is kept identical on every rank by gathered updates
        self.ddp = DDP(
            self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
            broadcast_buffers=False) if self.distributed else None
        self.step = 0
        self.saved_step: int | None = None  # step of the checkpoint this trainer last wrote or loaded
        self.refined = False  # the ID refinement phase (neighbor_cf) has run
        p = cfg.run.progress
        self.progress = (sys.stderr.isatty() if p == "auto" else p == "on") if progress is None else progress
        self.bf16 = cfg.run.precision == "bf16" or (cfg.run.precision == "auto" and self.device.type == "cuda")

    # -- setup --------------------------------------------------------------------------------
    def _feature_cache(self) -> FeatureCache:
        return open_feature_cache(self.out_dir / "feature_cache", self.model.encoder, self.split.graph, self.builder,
                                  self.device, self.rank)

    def _loader(self) -> PinBoardLoader:
        o, r = self.cfg.objective, self.cfg.run
        g = self.split.train_graph
        weighting = {"uniform": "uniform", "board_size": "size", "recency": "recency"}[o.mate_weighting]
        kw = {"half_life": 1.0, "timestamp": "order"} if weighting == "recency" and "timestamp" not in \
            g.relation(MEMBER).attrs else {}
        sampler = BoardMateSampler(g, k=o.num_mates, weighting=weighting, **kw)
        seeds = torch.nonzero(g.degree(MEMBER) > 0).squeeze(1)
        negatives = None
        if o.negatives == "uniform":
            negatives = UniformNegativeSampler(g)
        elif o.negatives == "popularity":
            negatives = PopularityNegativeSampler(g)
        per_rank = batch_per_rank(r.batch_size, int(seeds.numel()), self.world)
        return PinBoardLoader(g, sampler, seeds, batch_size=per_rank, shuffle=True, drop_last=True, seed=r.seed,
                              negatives=negatives, num_negatives=o.num_negatives if negatives else 0,
                              device=self.device, rank=self.rank, world_size=self.world, even_batches=True)

    # -- batches ------------------------------------------------------------------------------
    def _batches(self, start_micro: int) -> Iterator[MiniBatch]:
        """Micro-batches from global position ``start_micro`` on, epoch after epoch (deterministic)."""
        n = len(self.loader)
        if n == 0:  # not reached: _batch_per_rank fits the batch to the seeds
            raise ConfigError(f"no full batch: {self.loader.seeds.numel()} seed pins for batch size "
                              f"{self.batch_size}; lower run.batch_size")
        epoch, index = divmod(start_micro, n)
        while True:
            self.loader.set_epoch(epoch)
            yield from self.loader.iter_from(index)
            epoch, index = epoch + 1, 0

    @property
    def _seeds_only(self) -> bool:
        """Encode only the seeds: a kind that reads no mates needs none, and a bank serves mates/negatives."""
        return not self.model.ops.reads_mates or self.model.bank.numel() > 0

    def _step_inputs(self, mb: MiniBatch) -> StepInputs:
        indptr, indices, _ = self.split.train_graph.csr(MEMBER)
        pin_boards = padded_rows(indptr, indices, mb.seeds.to(indptr.device), self.board_width).to(self.device)
        bm, neg = mb.board_mates, mb.negatives
        logq = neg.log_q if neg is not None else None
        if self._seeds_only:
            b = mb.seeds.numel()
            negs = torch.where(neg.mask, neg.nodes, torch.full_like(neg.nodes, -1)) if neg is not None else None
            return StepInputs(seed_local=torch.arange(b, device=self.device), mates_local=bm.mates,
                              mate_boards=bm.boards, pin_boards=pin_boards, negatives_local=negs,
                              negatives_logq=logq, from_bank=True)
        negs = None
        if mb.negatives_local is not None:
            negs = torch.where(neg.mask, mb.negatives_local, torch.full_like(mb.negatives_local, -1))
        return StepInputs(seed_local=mb.seed_local, mates_local=mb.mates_local, mate_boards=bm.boards,
                          pin_boards=pin_boards, negatives_local=negs, negatives_logq=logq)

    def _encode_kwargs(self, idx: Tensor) -> dict:
        """Encoder inputs of pins ``idx``: cached tower outputs, or raw inputs for live towers."""
        if self.cache is not None:
            outputs, present = self.cache.get(idx, self.device)
            return {"outputs": outputs, "present": present, "index": idx.to(self.device)}
        return {"inputs": self.builder(self.split.graph.features("pin"), idx.cpu()).to(self.device)}

    def _losses(self, mb: MiniBatch) -> dict[str, Tensor]:
        step = self._step_inputs(mb)
        idx = mb.seeds if self._seeds_only else mb.input_nodes["pin"]
        net = self.ddp or self.model
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            terms, seed_emb = net(step, self.weights, **self._encode_kwargs(idx))
        if self.model.bank.numel():
            pins, emb = mb.seeds.to(self.device), seed_emb
            if self.distributed:  # every rank keeps the same bank
                pins, emb = gather_features(pins, with_grad=False), gather_features(emb, with_grad=False)
            self.model.update_bank(pins, emb)
        return terms

    @torch.no_grad()
    def _fill_bank(self) -> None:
        """Embed every pin with the initial weights into the bank (the same on every rank)."""
        n, was = self.model.bank.shape[0], self.model.training
        self.model.eval()
        for start in range(0, n, 1024):
            idx = torch.arange(start, min(start + 1024, n))
            self.model.update_bank(idx, encode_pins(self.model.encoder, idx, cache=self.cache, builder=self.builder,
                                                    features=self.split.graph.features("pin"), device=self.device))
        self.model.train(was)

    # -- checkpoints --------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def save(self) -> None:
        """Write ``checkpoint.pt`` (rank 0): weights, optimiser, schedule, RNG, the config and its
        fingerprint, and the :func:`~boardgraph.training.checkpoint.graph_fingerprint` of the graph.

        Raises:
            NonFiniteLossError: a weight is NaN/inf; the previous checkpoint is kept.
        """
        model_sd, opt_sd = (self.id_sharding.full_state(self.model, self.optimizer) if self.id_sharding else
                            (self.model.state_dict(), self.optimizer.state_dict()))
        if self.rank != 0:
            return
        bad = [n for n, p in model_sd.items() if p.is_floating_point() and not torch.isfinite(p).all()]
        if bad:
            raise NonFiniteLossError(f"weights {bad[:3]} are not finite at step {self.step}; they were not saved. "
                                     f"{self._kept()}. Fix: {self._nan_fix()}")
        save_checkpoint(self.checkpoint_path, {
            "step": self.step, "model": model_sd, "optimizer": opt_sd,
            "scheduler": self.scheduler.state_dict(), "rng": torch.get_rng_state(),
            "fingerprint": self.cfg.model_fingerprint(), "config": json.dumps(self.cfg.to_dict()),
            "graph_fingerprint": self.graph_fingerprint, "refined": self.refined})
        self.saved_step = self.step

    def load(self, path: str | Path | None = None) -> None:
        """Restore a checkpoint written by :meth:`save` (default: this run's) to continue training.

        Raises:
            CheckpointFormatError: the file is not a complete boardgraph checkpoint.
            CheckpointMismatchError: it was written for another model config.
            GraphChangedError: it was trained on another graph (ids, edges or features differ).
        """
        path = Path(path or self.checkpoint_path)
        ck = load_checkpoint(path, self.cfg.model_fingerprint())
        trained_on = ck.get("graph_fingerprint")
        if trained_on is not None and trained_on != self.graph_fingerprint:
            raise GraphChangedError(f"the graph changed since {path} was written: its ids, edges or features differ "
                                    f"(fingerprint {self.graph_fingerprint}, trained on {trained_on}). Fix: train "
                                    f"into a new run.out_dir, or resume with the graph the run was trained on")
        model_sd, opt_sd = ck["model"], ck["optimizer"]
        if self.id_sharding is not None:
            model_sd, opt_sd = self.id_sharding.shard_state(self.model, model_sd, self.optimizer, opt_sd)
        self.model.load_state_dict(model_sd)
        self.optimizer.load_state_dict(opt_sd)
        self.scheduler.load_state_dict(ck["scheduler"])
        torch.set_rng_state(ck["rng"])
        self.step = self.saved_step = int(ck["step"])
        self.refined = bool(ck.get("refined", False))

    def _kept(self) -> str:
        """Which checkpoint a failed step leaves in place, for error messages."""
        if self.saved_step is not None:
            return f"The last good checkpoint {self.checkpoint_path} (step {self.saved_step}) is kept"
        if self.checkpoint_path.exists():
            return f"{self.checkpoint_path}, written before this training started, is left as it was"
        return "No checkpoint was written"

    def _nan_fix(self) -> str:
        return (f"lower optim.lr (now {self.cfg.optim.lr:g}) or set optim.grad_clip, and check the graph's numeric "
                f"features for inf/NaN values; then train again (--resume continues from the kept checkpoint)")

    def _check_finite(self, terms: dict[str, Tensor], total: Tensor) -> None:
        """Raise :class:`NonFiniteLossError` when the loss of the step being taken is NaN/inf (on any
        rank: the flag is reduced, so every rank stops together), before it reaches the weights."""
        bad = {k: float(v.detach().float().sum()) for k, v in terms.items() if not torch.isfinite(v.detach()).all()}
        if not bad and not torch.isfinite(total.detach()).all():
            bad["total"] = float(total.detach())
        if self.distributed:
            flag = torch.tensor([float(bool(bad))], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            if flag.item() and not bad:
                bad["on another rank"] = float("nan")
        if bad:
            terms_text = ", ".join(f"{k}={v}" for k, v in bad.items())
            raise NonFiniteLossError(f"non-finite loss at step {self.step + 1} ({terms_text}); training stopped before "
                                     f"this step changed the weights. {self._kept()}. Fix: {self._nan_fix()}")

    def embed_pins(self, path: str | Path | None = None, batch_size: int = 1024, shards: bool = False) -> Path:
        """Embed every pin with the current weights (every rank takes part under torchrun), with the
        graph's fingerprint, into ``path``: one file (default ``<out_dir>/embeddings.npy``; see
        :func:`boardgraph.inference.embed.embed_pins`), or with ``shards`` one shard per rank plus a
        manifest (default ``<out_dir>/embeddings.shards``; see
        :func:`boardgraph.inference.shards.embed_pins_sharded`). A file left by other weights (an
        earlier step) or another graph is recomputed, not reused. Returns the complete file or folder.
        """
        kw = dict(cache=self.cache, builder=self.builder, features=self.split.graph.features("pin"),
                  batch_size=batch_size, device=self.device, rank=self.rank, world_size=self.world,
                  graph_fingerprint=self.graph_fingerprint)
        if shards:
            return embed_pins_sharded(self.model.encoder, self.split.graph.ids("pin"),
                                      Path(path) if path is not None else self.out_dir / "embeddings.shards", **kw)
        return embed_pins(self.model.encoder, self.split.graph.num_nodes("pin"),
                          Path(path) if path is not None else self.out_dir / "embeddings.npy", **kw)

    # -- the loop -----------------------------------------------------------------------------
    def fit(self, resume: bool = False, steps: int | None = None) -> TrainResult:
        """Train until ``config.run.steps`` (or ``steps`` more when given); resume from the run's
        checkpoint when ``resume`` and one exists. Returns the metric history of this call.

        Rank 0 holds the run folder's lock (:func:`~boardgraph.training.checkpoint.run_lock`) while it trains.

        Raises:
            RunLockedError: another process is writing into ``run.out_dir``.
            NonFiniteLossError: a loss term (or the gradient) became NaN/inf; training stops before
                that step, and the last good checkpoint is kept.
            CheckpointFormatError, CheckpointMismatchError, GraphChangedError: ``resume`` met a
                checkpoint it cannot continue (see :meth:`load`).
        """
        with run_lock(self.out_dir, "training") if self.rank == 0 else contextlib.nullcontext():
            return self._fit(resume, steps)

    def _fit(self, resume: bool, steps: int | None) -> TrainResult:
        cfg = self.cfg
        if self.id_sharding is not None:
            self.id_sharding.begin(self.model.encoder)
        if resume and self.checkpoint_path.exists():
            self.load()
        if self.rank == 0:
            cfg.save(self.out_dir / "config.yaml")
            save_split_ids(self.split, self.out_dir / "split.npz")   # what browse marks as held out
        end = cfg.run.steps if steps is None else min(cfg.run.steps, self.step + steps)
        batches = self._batches(self.step * cfg.optim.accumulate)
        self.model.train()
        history: list[dict[str, float]] = []
        bar = None
        if self.progress and self.rank == 0:
            bar = tqdm(total=end, initial=self.step, desc=f"train {cfg.objective.kind}", unit="step")
        t0, pins = time.perf_counter(), 0
        try:
            with MetricLog(self.out_dir, self.rank, cfg.run.tensorboard) as metrics:
                while self.step < end:
                    logs, n = self._step(batches)
                    pins += n
                    history.append(logs)
                    if self.step % cfg.run.log_every == 0 or self.step == end:
                        dt = time.perf_counter() - t0
                        logs["pins_per_s"] = pins / dt if dt > 0 else 0.0
                        metrics.write(logs)
                        t0, pins = time.perf_counter(), 0
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{logs['total']:.3f}")
                    if self.step % cfg.run.checkpoint_every == 0 or self.step == end:
                        self.save()
            if self.id_sharding is not None:   # the refinement and the embedding pass read the whole table
                self.id_sharding.end(self.model.encoder)
            if self.step == cfg.run.steps:
                self._refine()
        finally:
            if bar is not None:
                bar.close()
        write_rank_summary(self.out_dir, self.rank, self.world, self.step, self.loader.shard(0),   # rank<r>.json
                           self.model.parameters())
        return TrainResult(self.step, self.out_dir, history)

    def _refine(self) -> None:
        """After the last step, once: the ID refinement of kinds that have one (``neighbor_cf``), its length
        chosen on validation by a copy of the run (:func:`~boardgraph.training.refine_validation.choose_refine_epochs`)."""
        o = self.cfg.optim
        if self.refined or o.refine_epochs == 0 or not getattr(self.model.ops, "refines_ids", False):
            return
        epochs = o.refine_epochs
        if o.refine_val_fraction > 0:
            st = choose_refine_epochs(type(self), self)
            epochs = st.epochs
            if self.cfg.objective.query_setting() == "auto":   # resolved: the run's config stores the choice
                self.cfg.objective.board_query = st.query
                if self.rank == 0:
                    self.cfg.save(self.out_dir / "config.yaml")
        refine_encoder(self.model.encoder, self.content_vectors(), self.split.train_graph, self.cfg, epochs)
        self.refined = True
        self.save()

    def content_vectors(self) -> Tensor:
        """float ``[N_pins, E]`` every pin's content vector (:func:`~boardgraph.inference.embed.content_vectors`)."""
        g = self.split.graph
        return content_vectors(self.model.encoder, g.num_nodes("pin"), cache=self.cache, builder=self.builder,
                               features=g.features("pin"), device=self.device)

    def _step(self, batches: Iterator[MiniBatch]) -> tuple[dict[str, float], int]:
        """One optimizer step over ``optim.accumulate`` mini-batches: ``(logs, pins seen by all ranks)``;
        ``logs`` holds each loss term and ``total`` (averaged over the micro-batches), ``grad_norm``
        when clipping, ``step`` and ``lr``.

        Raises:
            NonFiniteLossError: a loss term or the gradient is NaN/inf (the weights are not changed).
        """
        cfg, accum = self.cfg, self.cfg.optim.accumulate
        self.optimizer.zero_grad(set_to_none=True)
        logs: dict[str, float] = {}
        pins = 0
        for _ in range(accum):
            mb = next(batches)
            terms = self._losses(mb)
            total, values = combine_losses(terms, self.weights)
            self._check_finite(terms, total)
            (total / accum).backward()
            for k, v in values.items():
                logs[k] = logs.get(k, 0.0) + v / accum
            pins += mb.batch_size * self.world
        if cfg.optim.grad_clip > 0:
            params = [p for p in self.model.parameters() if p.requires_grad]
            clip = self.id_sharding.clip if self.id_sharding else torch.nn.utils.clip_grad_norm_
            logs["grad_norm"] = float(clip(params, cfg.optim.grad_clip))
            if not math.isfinite(logs["grad_norm"]):  # the same on every rank (gradients are reduced)
                raise NonFiniteLossError(
                    f"non-finite gradient at step {self.step + 1} (grad_norm={logs['grad_norm']}, loss "
                    f"{logs['total']:.4g}); training stopped before this step changed the weights. "
                    f"{self._kept()}. Fix: {self._nan_fix()}")
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        logs.update(step=self.step, lr=self.scheduler.get_last_lr()[0])
        return logs, pins

    def close(self) -> None:
        """End the distributed process group this trainer started (a no-op in a single process)."""
        if self.distributed and dist.is_initialized():
            dist.barrier()  # no rank tears down while another is still in a collective
            dist.destroy_process_group()
