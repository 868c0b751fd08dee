"""Training-step throughput: content-only vs neighbor alignment, with and without IDs (frozen,
cached towers), and the one-off cost of neighbor_cf's ID refinement.

Prints JSON lines: steps/s and pins/s per model kind (batch 256, K = 8 board-mates by default),
the neighbor/content and neighbor_id/content step-time ratios (target <= 1.5), the seconds of
the refinement that ends a neighbor_cf run (validation included), also as a number of
content-only steps, and the milliseconds of a refinement step at larger catalogues
(``--refine-scaling``): full softmax against the sampled one, centroid against attention board
queries. The feature cache is built before timing.
Usage: python benchmarks/train.py [--pins 5000] [--steps 30] [--device cpu] [--refine-scaling 10000,100000]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

from _common import emit
from boardgraph.training.config import TrainConfig
from boardgraph.training.trainer import Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pins", type=int, default=5000)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--refine-scaling", type=lambda v: [int(x) for x in v.split(",") if x], default=[10_000, 100_000],
                    help="warm-pin counts at which to time refinement steps, full vs sampled softmax ('' for none)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    step_time = {}
    refine_s = 0.0
    for kind in ("content", "neighbor", "neighbor_id", "neighbor_cf"):
        with tempfile.TemporaryDirectory() as tmp:
            cfg = TrainConfig()
            cfg.data.n_pins, cfg.data.n_boards = args.pins, args.pins // 10
            cfg.objective.kind, cfg.objective.num_mates = kind, args.k
            r = cfg.run
            r.batch_size, r.steps, r.device, r.out_dir = args.batch_size, args.steps + 6, args.device, tmp
            r.progress, r.tensorboard, r.log_every, r.checkpoint_every = "off", False, 10**9, 10**9
            t = Trainer(cfg)
            t.fit(steps=5)                       # warm-up (allocator, first batches)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            t.fit(steps=args.steps)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            dt = (time.perf_counter() - t0) / args.steps
            step_time[kind] = dt
            t0 = time.perf_counter()
            t.fit(steps=1)                       # the last step; neighbor_cf then refines its IDs
            if kind == "neighbor_cf":
                refine_s = time.perf_counter() - t0 - dt
            emit({"op": "train_step", "kind": kind, "device": args.device, "batch_size": args.batch_size,
                  "k": args.k, "steps_per_s": round(1 / dt, 2), "pins_per_s": round(args.batch_size / dt),
                  "ms_per_step": round(1000 * dt, 1)})
    for kind in ("neighbor", "neighbor_id"):
        emit({"op": "ratio", "metric": f"{kind} / content step time (target <= 1.5)",
              "ratio": round(step_time[kind] / step_time["content"], 3)})
    emit({"op": "refine", "kind": "neighbor_cf", "device": args.device, "pins": args.pins,
          "seconds": round(refine_s, 2), "content_steps": round(refine_s / step_time["content"], 1)})
    for n in args.refine_scaling:
        refine_steps(n, args)


def refine_steps(n: int, args: argparse.Namespace, boards: int = 640, size: int = 20, dim: int = 64) -> None:
    """Milliseconds per refinement step with ``n`` warm pins: the full softmax against the sampled
    one (``optim.refine_negatives`` = 8192), each with centroid and attention board queries, over
    ``boards`` random boards of ``size`` pins (10 steps of 64 boards an epoch; the softmax, or the
    sample, still spans all ``n`` pins): 3 epochs less 1, so the per-call setup is left out."""
    from boardgraph.graph.csr import cumsum0
    from boardgraph.training import refine

    dev = torch.device(args.device)
    gen = torch.Generator(device=dev).manual_seed(0)
    cols = torch.randint(n, (boards * size,), generator=gen, device=dev)
    rows = refine._Rows.of(cumsum0(torch.full((boards,), size, device=dev)), cols)
    z = torch.randn(n, dim, generator=gen, device=dev)
    ids = refine._Ids(torch.zeros(n, dim, device=dev), torch.arange(n, device=dev))   # a row per pin
    for negatives in (0, 8192):
        for query in ("centroid", "attention"):
            st = refine._Settings(0.01, 0.3, 0.1, 64, 4, negatives, query, 0.1)
            fn = refine._train_sampled if negatives else refine._train
            fn(ids, z, rows, 1, st, gen)                    # warm-up
            took = {}
            for epochs in (1, 3):                           # the difference leaves out the per-call setup
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                fn(ids, z, rows, epochs, st, gen)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                took[epochs] = time.perf_counter() - t0
            ms = (took[3] - took[1]) * 1000 / (2 * (boards // 64))
            emit({"op": "refine_step", "device": args.device, "warm_pins": n, "dim": dim,
                  "softmax": f"sampled {negatives}" if negatives else "full", "board_query": query,
                  "board_size": size, "ms_per_step": round(ms, 1)})


if __name__ == "__main__":
    main()
