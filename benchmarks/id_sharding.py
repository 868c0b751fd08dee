"""The ID table under torchrun, replicated vs sharded (``model.shard_ids``): step time and the
bytes of the table per rank.

Runs ``torchrun --nproc_per_node=2`` twice on the same synthetic graph (``neighbor_id``: content +
a learned ID per pin, frozen cached towers, one thread per rank) and prints a JSON line per mode:
milliseconds per step and the ID table's bytes per rank (the parameter, its gradient and AdamW's
two moments, as allocated), then their ratios. Replicated, DDP all-reduces the table's dense
gradient and AdamW updates every row each step; sharded, a rank holds half the rows and a step
exchanges only the rows its batch reads.
Usage: python benchmarks/id_sharding.py [--pins 50000] [--steps 20] [--embed-dim 128]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

from _common import emit


def _worker(args: argparse.Namespace) -> None:
    import torch

    from boardgraph.training.config import TrainConfig
    from boardgraph.training.trainer import Trainer

    torch.set_num_threads(1)
    cfg = TrainConfig()
    cfg.data.n_pins, cfg.data.n_boards = args.pins, args.pins // 10
    cfg.objective.kind = "neighbor_id"
    m = cfg.model
    m.embed_dim, m.matryoshka_dims, m.shard_ids = args.embed_dim, (args.embed_dim,), args.mode == "sharded"
    r = cfg.run
    r.steps, r.out_dir, r.progress, r.tensorboard = args.steps + 5, args.out, "off", False
    r.log_every, r.checkpoint_every = 10**9, 10**9
    t = Trainer(cfg)
    t.fit(steps=3)                               # warm-up: allocator, first batches, AdamW state
    if t.id_sharding is not None:              # measure the shard the steps train
        t.id_sharding.begin(t.model.encoder)
    ids = t.model.encoder.ids.weight
    state = t.optimizer.state[ids] if ids in t.optimizer.state else {}
    table_bytes = sum(x.numel() * x.element_size() for x in (ids, *(v for v in state.values() if v.dim() == 2)))
    table_bytes += ids.numel() * ids.element_size()          # its gradient, allocated each step
    t0 = time.perf_counter()
    t.fit(steps=args.steps)
    dt = (time.perf_counter() - t0) / args.steps
    if t.rank == 0:
        print("RESULT " + json.dumps({"ms_per_step": round(1000 * dt, 1), "table_bytes_per_rank": table_bytes}),
              flush=True)
    t.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pins", type=int, default=50_000)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--embed-dim", type=int, default=128)
    ap.add_argument("--mode", choices=("replicated", "sharded"), help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:
        return _worker(args)
    res = {}
    for mode in ("replicated", "sharded"):
        with tempfile.TemporaryDirectory() as tmp, socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            s.close()
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
                   __file__, "--mode", mode, "--out", tmp, "--pins", str(args.pins), "--steps", str(args.steps),
                   "--embed-dim", str(args.embed_dim)]
            out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            if out.returncode:
                sys.exit(out.stderr[-3000:])
            line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
            res[mode] = json.loads(line[len("RESULT "):])
            emit({"op": "id_table_step", "mode": mode, "ranks": 2, "pins": args.pins, "embed_dim": args.embed_dim,
                  **res[mode]})
    emit({"op": "ratio", "metric": "sharded / replicated ID table bytes per rank",
          "ratio": round(res["sharded"]["table_bytes_per_rank"] / res["replicated"]["table_bytes_per_rank"], 3)})
    emit({"op": "ratio", "metric": "sharded / replicated step time",
          "ratio": round(res["sharded"]["ms_per_step"] / res["replicated"]["ms_per_step"], 3)})


if __name__ == "__main__":
    main()
