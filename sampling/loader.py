"""`PinBoardLoader`: mini-batches with sampling, feature fetching and copies overlapped with compute.

A background thread runs the pipeline ``seeds -> sampler -> negatives -> features -> pinned
memory -> device`` a few batches ahead (``prefetch``) while the training loop computes. Host-to-
device copies are issued ``non_blocking`` on a side CUDA stream; the consumer's stream waits on an
event, so compute never reads a tensor before its copy has landed.

Determinism: the epoch's seed order comes from ``(seed, epoch)`` and every batch samples with
its own generator seeded from ``(seed, epoch, rank, batch index)``, so a batch does not depend on
thread timing, prefetch depth or how many batches were consumed before it. Call
:meth:`PinBoardLoader.set_epoch` before each epoch (as with ``DistributedSampler``).

Sharding: the shuffled seeds are split across ``world_size`` ranks by stride, so across ranks an
epoch yields every seed exactly once. Ranks may then differ by one batch; ``even_batches=True``
repeats a few seeds (``DistributedSampler`` semantics) so every rank gets the same count.
"""
from __future__ import annotations

import math
import queue
import threading
from typing import Iterator, Protocol

import torch
from torch import Tensor

from boardgraph.graph import PinBoardGraph

from ._topology import Topology
from .errors import SamplingError
from .features import FeatureFetcher
from .minibatch import MiniBatch, apply_to_tensors
from .negatives import NegativeSampler

__all__ = ["PinBoardLoader", "MiniBatchSampler", "batch_seed"]

_MASK64 = (1 << 64) - 1


def batch_seed(*parts: int) -> int:
    """A 63-bit seed mixing ``parts`` (splitmix64 steps), stable across runs and platforms."""
    x = 0x9E3779B97F4A7C15
    for p in parts:
        x = (x ^ (int(p) & _MASK64)) & _MASK64
        x = (x + 0x9E3779B97F4A7C15) & _MASK64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
        x ^= x >> 31
    return x >> 1


class MiniBatchSampler(Protocol):
    """What the loader needs from a sampler (NeighborSampler, BoardMateSampler, PinSageSampler or yours)."""

    seed_type: str

    def sample_minibatch(self, seeds: Tensor, generator: torch.Generator | int | None = None) -> MiniBatch: ...


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_DONE = object()


class PinBoardLoader:
    """Iterates mini-batches of seed nodes through a sampler (see the module docstring).

    Args:
        graph: the graph the sampler reads (seeds and generators live on its device).
        sampler: anything with ``seed_type`` and ``sample_minibatch(seeds, generator)``.
        seeds: int64 ``[S]`` seed indices (default: every node of ``sampler.seed_type``).
        batch_size: seeds per batch.
        shuffle: shuffle the seeds every epoch (else keep their order).
        drop_last: drop each rank's last incomplete batch.
        seed: base seed of the shuffles and of every batch's generator.
        features: a :class:`FeatureFetcher` for ``input_nodes`` (None: no features).
        negatives, num_negatives: optional negative sampler, called with the seeds as anchors (and
            board-mates as positives to mask) for ``num_negatives`` per seed.
        device: where batches are delivered (default: the graph's device).
        prefetch: batches prepared ahead by the background thread; 0 runs synchronously.
        pin_memory: page-lock host tensors before copying to CUDA (default: when ``device`` is
            CUDA and the batch is on the host).
        rank, world_size: this process's shard; default ``torch.distributed``'s when initialised,
            else 0 and 1.
        even_batches: repeat seeds so every rank yields the same number of batches.
    """

    def __init__(self, graph: PinBoardGraph, sampler: MiniBatchSampler, seeds: Tensor | None = None, *,
                 batch_size: int = 1024, shuffle: bool = True, drop_last: bool = False, seed: int = 0,
                 features: FeatureFetcher | None = None, negatives: NegativeSampler | None = None,
                 num_negatives: int = 0, device: torch.device | str | None = None, prefetch: int = 2,
                 pin_memory: bool | None = None, rank: int | None = None, world_size: int | None = None,
                 even_batches: bool = False) -> None:
        if batch_size < 1:
            raise SamplingError(f"batch_size must be >= 1, got {batch_size}")
        if prefetch < 0:
            raise SamplingError(f"prefetch must be >= 0, got {prefetch}")
        if negatives is not None and num_negatives < 1:
            raise SamplingError("a negative sampler was given with num_negatives < 1; set num_negatives")
        if features is not None and not callable(features):
            raise SamplingError(f"features must be a FeatureFetcher (callable), got {type(features).__name__}")
        if rank is None or world_size is None:
            dist = torch.distributed.is_available() and torch.distributed.is_initialized()
            rank = (torch.distributed.get_rank() if dist else 0) if rank is None else rank
            world_size = (torch.distributed.get_world_size() if dist else 1) if world_size is None else world_size
        if world_size < 1 or not 0 <= rank < world_size:
            raise SamplingError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.graph, self.sampler = graph, sampler
        self.seed_type = getattr(sampler, "seed_type", "pin")
        n = graph.num_nodes(self.seed_type)
        if seeds is None:
            self.seeds = torch.arange(n)
        else:
            self.seeds = torch.as_tensor(seeds).long().cpu()
            if self.seeds.dim() != 1:
                raise SamplingError(f"seeds must be 1-D, got shape {tuple(self.seeds.shape)}")
            if self.seeds.numel() and (int(self.seeds.min()) < 0 or int(self.seeds.max()) >= n):
                raise SamplingError(f"seeds must lie in [0, {n}) ({self.seed_type} indices); map ids with graph.index")
        self.batch_size, self.shuffle, self.drop_last, self.seed = int(batch_size), shuffle, drop_last, int(seed)
        self.features, self.negatives, self.num_negatives = features, negatives, int(num_negatives)
        self.device = torch.device(device) if device is not None else graph.device
        self.prefetch = int(prefetch)
        self.pin_memory = (self.device.type == "cuda") if pin_memory is None else bool(pin_memory)
        self.rank, self.world_size, self.even_batches = int(rank), int(world_size), bool(even_batches)
        self.epoch = 0
        self._topology = Topology(graph)  # scratch maps for attaching negatives

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order (and batch generators) the next iteration uses."""
        self.epoch = int(epoch)

    def shard(self, epoch: int | None = None) -> Tensor:
        """int64 ``[S_rank]`` this rank's seeds for ``epoch``, in batch order."""
        epoch = self.epoch if epoch is None else epoch
        n = self.seeds.numel()
        if self.shuffle:
            g = torch.Generator().manual_seed(batch_seed(self.seed, epoch))
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        if self.even_batches and n % self.world_size:
            pad = self.world_size - n % self.world_size
            order = torch.cat([order, order[:pad].repeat(math.ceil(pad / max(n, 1)))[:pad]])
        return self.seeds[order[self.rank::self.world_size]]

    def __len__(self) -> int:
        n = self.seeds.numel()
        per = math.ceil(n / self.world_size) if self.even_batches else len(range(self.rank, n, self.world_size))
        return per // self.batch_size if self.drop_last else math.ceil(per / self.batch_size)

    def batch(self, index: int, epoch: int | None = None) -> MiniBatch:
        """Build batch ``index`` of ``epoch`` synchronously (the iterator yields the same batches)."""
        epoch = self.epoch if epoch is None else epoch
        return self._finish(self._produce(self.shard(epoch), epoch, index))

    def _produce(self, shard: Tensor, epoch: int, index: int) -> MiniBatch:
        dev = self.graph.device
        seeds = shard[index * self.batch_size:(index + 1) * self.batch_size].to(dev)
        gen = torch.Generator(device=dev).manual_seed(batch_seed(self.seed, epoch, self.rank, index))
        mb = self.sampler.sample_minibatch(seeds, gen)
        if self.negatives is not None:
            positives = mb.board_mates.mates if mb.board_mates is not None else None
            mb = mb.with_negatives(self.negatives.sample(mb.seeds, self.num_negatives, gen, positives), self._topology)
        if self.features is not None:
            mb.features = self.features(mb.input_nodes)
        mb.epoch, mb.batch_index, mb.rank = epoch, index, self.rank
        if self.device.type == "cuda":
            if self.pin_memory:
                mb = mb.pin_memory()
            mb = mb.to(self.device, non_blocking=True)
        elif self.device != dev:
            mb = mb.to(self.device)
        return mb

    def _finish(self, mb: MiniBatch) -> MiniBatch:
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()
        return mb

    def __iter__(self) -> Iterator[MiniBatch]:
        return self.iter_from(0)

    def iter_from(self, start: int) -> Iterator[MiniBatch]:
        """Batches ``start, start + 1, ...`` of the current epoch: the tail of ``iter(loader)``,
        with the same prefetching (used to resume training mid-epoch)."""
        epoch, shard, n = self.epoch, self.shard(), len(self)
        if self.prefetch == 0:
            for i in range(start, n):
                yield self._produce(shard, epoch, i)
            return
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        cuda = self.device.type == "cuda"

        def put(item: object) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def work() -> None:
            stream = torch.cuda.Stream(self.device) if cuda else None
            try:
                for i in range(start, n):
                    if stream is not None:
                        with torch.cuda.stream(stream):
                            mb = self._produce(shard, epoch, i)
                            ev = torch.cuda.Event()
                            ev.record(stream)
                    else:
                        mb, ev = self._produce(shard, epoch, i), None
                    if not put((mb, ev)):
                        return
                put(_DONE)
            except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
                put(_Failure(e))

        thread = threading.Thread(target=work, name="PinBoardLoader", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is _DONE:
                    break
                if isinstance(item, _Failure):
                    raise item.exc
                mb, ev = item
                if ev is not None:  # compute waits for the copy; keep the memory alive for this stream
                    cur = torch.cuda.current_stream(self.device)
                    cur.wait_event(ev)
                    apply_to_tensors(mb, lambda t: (t.record_stream(cur), t)[1] if t.is_cuda else t)
                yield mb
        finally:
            stop.set()
            thread.join()
