"""Where the trainer's per-step metrics go: ``metrics.csv`` in the run folder and, when
``run.tensorboard`` is on and the package is installed, TensorBoard scalars. Only rank 0 writes."""
from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import torch
from torch import Tensor

from boardgraph._io import atomic_write_text

__all__ = ["MetricLog", "write_rank_summary"]

log = logging.getLogger(__name__)


class MetricLog:
    """Appends metric rows to ``<out_dir>/metrics.csv`` (header on the first row of the file) and to
    ``<out_dir>/tensorboard`` as ``train/<name>`` scalars; a no-op on ranks other than 0. A context
    manager: the files close on exit.

    Args:
        out_dir: the run folder. rank: this process's rank. tensorboard: also write TensorBoard scalars.
    """

    def __init__(self, out_dir: Path, rank: int = 0, tensorboard: bool = False) -> None:
        self.csv_file = self.writer = None
        if rank != 0:
            return
        if tensorboard:
            try:  # optional at run time: imported only when asked for
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(out_dir / "tensorboard"))
            except ImportError:
                log.warning("tensorboard is not installed; metrics go to metrics.csv only")
        self.csv_file = open(out_dir / "metrics.csv", "a", newline="")

    def write(self, logs: dict[str, float]) -> None:
        """One row: ``step``, ``lr``, ``total`` first, then the other keys sorted."""
        if self.csv_file is None:
            return
        keys = ["step", "lr", "total", *sorted(k for k in logs if k not in ("step", "lr", "total"))]
        w = csv.DictWriter(self.csv_file, fieldnames=keys, extrasaction="ignore")
        if self.csv_file.tell() == 0:
            w.writeheader()
        w.writerow({k: logs.get(k, "") for k in keys})
        self.csv_file.flush()
        if self.writer is not None:
            for k, v in logs.items():
                if k != "step":
                    self.writer.add_scalar(f"train/{k}", v, int(logs["step"]))
        log.info("step %d: %s", logs["step"], ", ".join(f"{k}={v:.4g}" for k, v in logs.items() if k != "step"))

    def close(self) -> None:
        """Close the files (idempotent)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.csv_file is not None:
            self.csv_file.close()
            self.csv_file = None

    def __enter__(self) -> MetricLog:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def write_rank_summary(out_dir: Path, rank: int, world: int, step: int, shard: Tensor,
                       parameters: Iterable[torch.nn.Parameter]) -> None:
    """``<out_dir>/rank<r>.json``: the seeds this rank trained on in epoch 0 (``shard``: int64 ``[S]``;
    count, sum, first 8) and checksums of the weights, so a distributed run can be checked
    (different seeds per rank, identical weights)."""
    w = torch.cat([p.detach().float().flatten().cpu() for p in parameters])
    info = {"rank": rank, "world_size": world, "step": step,
            "epoch0_seeds": int(shard.numel()), "epoch0_seed_sum": int(shard.sum()),
            "epoch0_first_seeds": shard[:8].tolist(),
            "weight_sum": float(w.double().sum()), "weight_abs_sum": float(w.double().abs().sum())}
    atomic_write_text(out_dir / f"rank{rank}.json", json.dumps(info))
