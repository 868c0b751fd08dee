"""``boardgraph train``: a config -> a trained run (checkpoint, metrics, optional embeddings)."""
from __future__ import annotations

import argparse

from boardgraph.cli._common import RAW
from boardgraph.training.config import TrainConfig
from boardgraph.training.trainer import Trainer

__all__ = ["register"]


EPILOG_TRAIN = """examples:
  boardgraph train --config configs/neighbor.yaml
  boardgraph train --config run.yaml --resume --embed
  torchrun --nproc_per_node=2 -m boardgraph train --config run.yaml
  torchrun --nnodes=4 --nproc_per_node=8 ... -m boardgraph train --config run.yaml --embed-shards
"""


def _cmd_train(args: argparse.Namespace) -> int:
    cfg = TrainConfig.load(args.config) if args.config else TrainConfig()
    if args.out_dir:
        cfg.run.out_dir = args.out_dir
    if args.steps:
        cfg.run.steps = args.steps
    if args.no_progress:
        cfg.run.progress = "off"
    trainer = Trainer(cfg)
    result = trainer.fit(resume=args.resume)
    if trainer.rank == 0:
        last = result.history[-1] if result.history else {}
        print(f"trained to step {result.step}; final loss {last.get('total', float('nan')):.4f}; "
              f"checkpoint and metrics in {result.out_dir}")
    if args.embed:   # the final step's weights, with the graph's fingerprint (every rank takes part)
        path = trainer.embed_pins(result.out_dir / "embeddings.npy")
        if trainer.rank == 0:
            print(f"pin embeddings written to {path}")
    if args.embed_shards:   # one file per rank, no rank touching another's rows
        path = trainer.embed_pins(result.out_dir / "embeddings.shards", shards=True)
        if trainer.rank == 0:
            print(f"pin embeddings written as {trainer.world} shard(s) to {path}")
    trainer.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train`` to the subcommands ``sub``."""
    t = sub.add_parser("train", help="train a model from a config (YAML/JSON); runs under torchrun too",
                       epilog=EPILOG_TRAIN, formatter_class=RAW)
    t.add_argument("--config", help="YAML or JSON TrainConfig (default: the built-in synthetic demo config)")
    t.add_argument("--out-dir", help="override run.out_dir")
    t.add_argument("--steps", type=int, help="override run.steps")
    t.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    t.add_argument("--embed", action="store_true", help="embed every pin after training (embeddings.npy)")
    t.add_argument("--embed-shards", action="store_true",
                   help="embed every pin after training, one shard per rank plus a manifest (embeddings.shards/); "
                        "boardgraph index --from-shards builds an IVF-PQ index from them")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(fn=_cmd_train)
