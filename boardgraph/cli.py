"""Command line: ``boardgraph <command>`` (also ``python -m boardgraph``).

User errors (bad tables, missing files) print one line and exit with status 2; no tracebacks.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Sequence

from boardgraph.graph.errors import BoardgraphError

EPILOG_DEMO = """examples:
  boardgraph demo                         # synthetic lookbooks, 2,000 pins, ~1 minute on 2 cores
  boardgraph demo --pins 10000 --boards 1000 --steps 300 --seed 1
"""
EPILOG_BUILD = """examples:
  boardgraph build memberships.csv out/graph --collection board_id --item pin_id
  boardgraph build saves.parquet out/graph --items items.csv --text title description \\
      --categorical brand category --numeric price --image image_path --on-error skip
"""

EPILOG_TRAIN = """examples:
  boardgraph train --config configs/neighbor.yaml
  boardgraph train --config run.yaml --resume --embed
  torchrun --nproc_per_node=2 -m boardgraph train --config run.yaml
"""


def _cmd_demo(args: argparse.Namespace) -> int:
    import shutil

    from boardgraph.demo import run_demo

    t = time.perf_counter()
    out = args.out_dir
    shutil.rmtree(out, ignore_errors=True)  # the demo always starts fresh
    results = run_demo(out, args.pins, args.boards, args.steps, args.seed, progress=not args.no_progress,
                       echo=print)
    print("\nHidden-style recovery (style purity@10 of pin embeddings; chance ~ 1/12):")
    print(f"  {'model':<10} {'purity@10':>10} {'16-d prefix':>12} {'final loss':>11} {'time':>7}")
    for r in results:
        print(f"  {r.kind:<10} {r.purity:>10.3f} {r.purity_16d:>12.3f} {r.final_loss:>11.3f} {r.seconds:>6.1f}s")
    ratio = results[1].purity / max(results[0].purity, 1e-9)
    print(f"\nneighbor alignment / content-only: {ratio:.2f}x   (runs, metrics and embeddings in {out}; "
          f"{time.perf_counter() - t:.0f} s in all)")
    print("Board completion, cold start and the report arrive with the evaluation issue.")
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    from boardgraph.graph import from_collections

    graph, report = from_collections(
        args.memberships, collection=args.collection, item=args.item, items=args.items, boards=args.boards,
        text=args.text, image=args.image, categorical=args.categorical, numeric=args.numeric,
        weight=args.weight, timestamp=args.timestamp, consent=args.consent, min_board_size=args.min_board_size,
        image_root=args.image_root, on_error=args.on_error)
    print(report)
    graph.save(args.out)
    print(f"saved to {args.out}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from boardgraph.config import TrainConfig
    from boardgraph.trainer import Trainer

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
    if args.embed:
        from boardgraph.embed import embed_pins

        path = embed_pins(trainer.model.encoder, trainer.split.graph.num_nodes("pin"),
                          result.out_dir / "embeddings.npy", cache=trainer.cache, builder=trainer.builder,
                          features=trainer.split.graph.features("pin"), device=trainer.device,
                          rank=trainer.rank, world_size=trainer.world)
        if trainer.rank == 0:
            print(f"pin embeddings written to {path}")
    trainer.close()
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    from boardgraph.graph import PinBoardGraph

    print(PinBoardGraph.load(args.graph).describe())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="boardgraph", description="Multimodal representations on Pin-Board graphs.")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="run the main job on the embedded synthetic lookbooks", epilog=EPILOG_DEMO,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("--pins", type=int, default=2000)
    d.add_argument("--boards", type=int, default=200)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--steps", type=int, default=150, help="training steps per model")
    d.add_argument("--out-dir", default="runs/demo", help="where runs go (replaced)")
    d.add_argument("--no-progress", action="store_true", help="no progress bars")
    d.set_defaults(fn=_cmd_demo)
    b = sub.add_parser("build", help="build a graph from a membership table (CSV/Parquet) and save it",
                       epilog=EPILOG_BUILD, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("memberships", help="CSV/Parquet with one row per pin on a board")
    b.add_argument("out", help="directory to save the graph to")
    b.add_argument("--collection", default="board_id", help="board id column (default board_id)")
    b.add_argument("--item", default="pin_id", help="pin id column (default pin_id)")
    b.add_argument("--items", help="pin table (CSV/Parquet) keyed by the pin id column")
    b.add_argument("--boards", help="board table keyed by the board id column")
    b.add_argument("--text", nargs="*", default=(), help="pin text columns")
    b.add_argument("--image", help="pin image path column")
    b.add_argument("--image-root", help="folder that relative image paths are relative to")
    b.add_argument("--categorical", nargs="*", default=(), help="pin categorical columns")
    b.add_argument("--numeric", nargs="*", default=(), help="pin numeric columns")
    b.add_argument("--weight", help="membership weight column")
    b.add_argument("--timestamp", help="membership timestamp column")
    b.add_argument("--consent", help="keep only rows whose consent column is true")
    b.add_argument("--min-board-size", type=int, default=1)
    b.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                   help="raise on the first bad row (default) or skip and count bad rows")
    b.set_defaults(fn=_cmd_build)
    t = sub.add_parser("train", help="train a model from a config (YAML/JSON); runs under torchrun too",
                       epilog=EPILOG_TRAIN, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--config", help="YAML or JSON TrainConfig (default: the built-in synthetic demo config)")
    t.add_argument("--out-dir", help="override run.out_dir")
    t.add_argument("--steps", type=int, help="override run.steps")
    t.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    t.add_argument("--embed", action="store_true", help="embed every pin after training (embeddings.npy)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(fn=_cmd_train)
    s = sub.add_parser("describe", help="print counts, degree distributions and components of a saved graph")
    s.add_argument("graph", help="directory written by `boardgraph build` or graph.save()")
    s.set_defaults(fn=_cmd_describe)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return args.fn(args)
    except (BoardgraphError, FileNotFoundError, PermissionError) as e:
        print(f"boardgraph {args.command}: error: {e}", file=sys.stderr)
        return 2
