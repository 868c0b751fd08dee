"""``boardgraph demo``: the main job on the embedded synthetic lookbooks, with its headline."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from boardgraph.cli._common import RAW, UsageError, compact, print_checks
from boardgraph.evaluation.demo import headline, run_demo
from boardgraph.evaluation.report import markdown_table

__all__ = ["register"]


EPILOG_DEMO = """examples:
  boardgraph demo                         # synthetic lookbooks, 2,000 pins, about a minute on 2 cores
  boardgraph demo --pins 10000 --boards 1000 --steps 300 --seed 1
"""


def _cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.out_dir)
    marker = out / ".boardgraph-demo"   # written first, so an interrupted demo's folder is known too
    ours = (out / "report.md").exists() or marker.exists()
    if out.is_symlink() or out.is_file() or (out.is_dir() and any(out.iterdir()) and not ours):
        raise UsageError(f"--out-dir {out} exists and is not the output of an earlier demo: the demo "
                         f"replaces its folder, so choose a new or empty one")
    shutil.rmtree(out, ignore_errors=True)  # the demo always starts fresh: only an earlier demo's folder goes
    out.mkdir(parents=True)
    marker.write_text("boardgraph demo output; `boardgraph demo` replaces this folder\n")
    res = run_demo(out, args.pins, args.boards, args.steps, args.seed, progress=not args.no_progress, echo=print)
    print("\nBoard completion (warm: held-out memberships of known pins, ranked among every known pin; "
          "cold: pins never seen in training, ranked among the new items and among all pins):\n")
    print(markdown_table(compact(res.table)))
    print_checks(res.checks)
    print("\nHidden-style recovery (style purity@10 of the pin embeddings; chance ~ 1/12):")
    print(f"  {'model':<10} {'purity@10':>10} {'16-d prefix':>12}")
    for kind, (full, short) in res.purity.items():
        print(f"  {kind:<10} {full:>10.3f} {short:>12.3f}")
    if res.style_table is not None:
        print("\nStyle precision@10 (share of a board's top 10 suggestions in the board's hidden style; not capped "
              "by the data, unlike Recall@10):\n")
        print(markdown_table(compact(res.style_table, "label_precision@10")))
    lines = headline(res)
    if lines:
        print("\nHeadline (warm queries; paired bootstrap over the query boards):")
        for line in lines:
            print(f"  {line}")
    print(f"report: {res.report} (runs and embeddings in {out}/<model>; {res.seconds:.0f} s in all)")
    print(f"next: boardgraph browse {out}/neighbor_cf --out {out}/site --compare {out}/content   "
          f"(then open {out}/site/index.html)")
    print(f"      boardgraph search {out}/neighbor_cf --pin <pin id>   |   boardgraph place {out}/neighbor_cf --text \"...\"")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``demo`` to the subcommands ``sub``."""
    d = sub.add_parser("demo", help="run the main job on the embedded synthetic lookbooks", epilog=EPILOG_DEMO,
                       formatter_class=RAW)
    d.add_argument("--pins", type=int, default=2000)
    d.add_argument("--boards", type=int, default=200)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--steps", type=int, default=150, help="training steps per model")
    d.add_argument("--out-dir", default="runs/demo", help="where runs go (replaced)")
    d.add_argument("--no-progress", action="store_true", help="no progress bars")
    d.set_defaults(fn=_cmd_demo)
