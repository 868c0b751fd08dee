"""What the command modules share: the usage error, help texts written once, and the parsing and
printing helpers."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from boardgraph.errors import BoardgraphError
from boardgraph.inference.search import PinSearch, saved_lexical_weight

__all__ = ["UsageError", "RAW", "RUN_HELP", "LEXICAL_WEIGHT_HELP", "pairs", "filters", "print_table", "open_search",
           "print_checks", "compact"]

RAW = argparse.RawDescriptionHelpFormatter
RUN_HELP = "a trained run directory (holds checkpoint.pt and config.yaml)"
LEXICAL_WEIGHT_HELP = ("weight of TF-IDF word matching in a hybrid index built in memory (0: learned embeddings only; "
                       "0.5 weighs them alike)")


class UsageError(BoardgraphError, ValueError):
    """A malformed command-line value (e.g. a --filter without '=')."""


def pairs(items: Sequence[str] | None, flag: str) -> list[tuple[str, str]]:
    """``["col=value", ...]`` -> ``[(col, value), ...]``."""
    out = []
    for item in items or ():
        col, sep, value = item.partition("=")
        if not sep or not col.strip():
            raise UsageError(f"{flag} {item!r} is not COLUMN=VALUE; write e.g. {flag} category=dress")
        out.append((col.strip(), value))
    return out


def filters(items: Sequence[str] | None, metadata) -> dict[str, list] | None:
    """``--filter col=value`` pairs -> ``{col: [values]}``, values cast to the column's dtype."""
    given = pairs(items, "--filter")
    if not given:
        return None
    out: dict[str, list] = {}
    for col, value in given:
        if metadata is not None and col in metadata.columns and pd.api.types.is_numeric_dtype(metadata[col]):
            try:
                value = float(value)
            except ValueError:
                raise UsageError(f"--filter {col}={value!r}: column {col!r} is numeric; give a number") from None
        out.setdefault(col, []).append(value)
    return out


def print_table(df) -> None:

    with pd.option_context("display.max_colwidth", 40, "display.width", 200):
        print(df.to_string(index=False, formatters={"score": "{:.4f}".format}) if len(df) else "(no results)")


def open_search(run_dir: str, index_dir: str | None, lexical_weight: float = 0.0):

    auto = Path(run_dir) / "index"
    # RUN_DIR/index serves when it is what was asked for (its own kind, or the same hybrid weight);
    # otherwise the hybrid is built in memory
    if index_dir is None and auto.is_dir() and lexical_weight in (0, saved_lexical_weight(auto)):
        index_dir = str(auto)
    return PinSearch.from_run(run_dir, index_dir=index_dir, lexical_weight=lexical_weight)


def print_checks(checks: Sequence[str]) -> None:
    """The protocol's sanity checks under a results table (warnings first)."""
    if checks:
        print("\nsanity checks:")
        for c in sorted(checks, key=lambda c: not c.startswith("WARNING")):
            print(f"  {c}")


def compact(table: pd.DataFrame, metric: str = "recall@10") -> pd.DataFrame:
    """The columns of a results table that fit a terminal: ``metric`` of each group, warm MRR and
    the warm difference to content-only (the report has them all)."""
    keep = [c for c in table.columns if c.endswith(f" {metric}") and " / " not in c]
    keep += [c for c in ("warm mrr", "warm - content") if c in table.columns]
    return table[keep]
