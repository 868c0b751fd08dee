"""Command line: ``boardgraph <command>`` (also ``python -m boardgraph``).

One module per command group registers its subcommands (``register(sub)``): :mod:`.demo`,
:mod:`.graph` (build, describe), :mod:`.train`, :mod:`.inference` (embed, index, search, place,
export-onnx), :mod:`.evaluate` (evaluate, models) and :mod:`.browse` (browse). User errors (bad tables, missing files) print
one line and exit with status 2; no tracebacks.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from boardgraph.cli import browse, demo, evaluate, graph, inference, train
from boardgraph.cli._common import UsageError
from boardgraph.errors import BoardgraphError

__all__ = ["main", "build_parser", "UsageError"]

#: The command groups, in the order ``--help`` lists them.
COMMAND_GROUPS = (demo, graph, train, inference, evaluate, browse)


def build_parser() -> argparse.ArgumentParser:
    """The ``boardgraph`` parser with every command group's subcommands."""
    p = argparse.ArgumentParser(prog="boardgraph", description="Multimodal representations on Pin-Board graphs.")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``boardgraph`` with ``argv`` (default: the process's); the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return args.fn(args)
    except (BoardgraphError, FileNotFoundError, PermissionError) as e:
        print(f"boardgraph {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0