"""Building the browse site of a run on a 10,000-pin graph (target: under 60 s on 2 cores).

Trains a short run on synthetic lookbooks (``--pins`` pins, tiny towers; not timed), then times
``build_site`` with the default sample (300 pin pages, 100 board pages, 2,000 map points, PCA):
once from scratch (the embedding pass and every thumbnail included) and once more into the same
folder (embeddings cached, thumbnails reused). Prints JSON lines.
Usage: python benchmarks/browse.py [--pins 10000] [--projection pca]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from _common import emit
from boardgraph.evaluation.demo import demo_config
from boardgraph.inference.browse import BrowseOptions, build_site
from boardgraph.training.trainer import Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pins", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--projection", default="pca")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = demo_config("neighbor", Path(tmp) / "runs", n_pins=args.pins, n_boards=args.pins // 10,
                          steps=args.steps, seed=0)
        cfg.run.progress, cfg.run.tensorboard = "off", False
        Trainer(cfg).fit()
        opt = BrowseOptions(projection=args.projection)
        for attempt in ("first", "again"):
            t0 = time.perf_counter()
            rep = build_site(cfg.run.out_dir, Path(tmp) / "site", opt)
            emit({"op": "browse_site", "build": attempt, "pins": args.pins, "projection": args.projection,
                  "pin_pages": rep.pin_pages, "board_pages": rep.board_pages, "map_points": rep.map_points,
                  "thumbs_written": rep.thumbs.written, "seconds": round(time.perf_counter() - t0, 2),
                  "site_mb": round(sum(f.stat().st_size for f in (Path(tmp) / "site").rglob("*")
                                       if f.is_file()) / 1e6, 2)})


if __name__ == "__main__":
    main()
