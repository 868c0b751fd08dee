"""``boardgraph build`` and ``boardgraph describe``: tables -> a saved graph, and what is in it."""
from __future__ import annotations

import argparse

from boardgraph._io import check_output
from boardgraph.cli._common import RAW
from boardgraph.graph import PinBoardGraph, from_collections
from boardgraph.graph.describe import describe_saved
from boardgraph.graph.io import GRAPH_ARTEFACT
from boardgraph.graph.stream import METHODS, parse_memory

__all__ = ["register"]


EPILOG_BUILD = """examples:
  boardgraph build memberships.csv out/graph --collection board_id --item pin_id
  boardgraph build shards/ out/graph --max-memory 4G       # a folder of Parquet shards, any length
  boardgraph build saves.parquet out/graph --items items.csv --text title description \\
      --categorical brand category --numeric price --image image_path --on-error skip
"""


def _cmd_build(args: argparse.Namespace) -> int:
    check_output(args.out, GRAPH_ARTEFACT, overwrite=args.overwrite)   # before the slow part
    _, report = from_collections(
        args.memberships, collection=args.collection, item=args.item, items=args.items, boards=args.boards,
        text=args.text, image=args.image, categorical=args.categorical, numeric=args.numeric,
        weight=args.weight, timestamp=args.timestamp, consent=args.consent, min_board_size=args.min_board_size,
        image_root=args.image_root, on_error=args.on_error, encoding=args.encoding,
        allow_outside_root=args.allow_outside_root,
        max_image_pixels=args.max_image_pixels if args.max_image_pixels > 0 else None,
        out=args.out, overwrite=args.overwrite, method=args.method, max_memory=args.max_memory)
    print(report)
    print(f"saved to {args.out}")
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    # edges are read from the files in chunks: memory grows with the nodes, not the edges
    print(describe_saved(PinBoardGraph.load(args.graph, mmap=True), args.graph))
    return 0


def _memory_size(text: str) -> str:
    try:
        parse_memory(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e
    return text


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``build`` and ``describe`` to the subcommands ``sub``."""
    b = sub.add_parser("build", help="build a graph from a membership table (CSV/Parquet) and save it",
                       epilog=EPILOG_BUILD, formatter_class=RAW)
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
    b.add_argument("--encoding", default="utf-8", help="text encoding of CSV tables (default utf-8)")
    b.add_argument("--allow-outside-root", action="store_true",
                   help="accept image paths outside --image-root (refused by default)")
    b.add_argument("--max-image-pixels", type=int, default=89_478_485,
                   help="refuse images larger than this many pixels (default PIL's 89,478,485; 0: no limit of ours)")
    b.add_argument("--overwrite", action="store_true",
                   help="replace a graph already saved at OUT (anything else there is never replaced)")
    b.add_argument("--max-memory", metavar="SIZE", type=_memory_size,
                   help="memory limit, e.g. 4G: a table whose in-memory build would not fit is built out of core "
                        "in batches, spilling to disk beside OUT (default: half the memory available)")
    b.add_argument("--method", choices=METHODS, default="auto",
                   help="auto (default): in memory when the table fits --max-memory, else out of core; or force one")
    b.set_defaults(fn=_cmd_build)
    s = sub.add_parser("describe", help="print counts, degree distributions and components of a saved graph")
    s.add_argument("graph", help="directory written by `boardgraph build` or graph.save()")
    s.set_defaults(fn=_cmd_describe)
