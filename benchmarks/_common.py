"""Shared helpers for the benchmark scripts: JSON output, the reference graph and the DGL peer."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from boardgraph.graph import MEMBER, PinBoardGraph

REPO = Path(__file__).resolve().parent.parent
SHARED_BENCH = Path(os.environ.get("BOARDGRAPH_SHARED_BENCH", REPO.parent / "shared" / "bench"))


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def reference_graph(path: str | os.PathLike | None = None, bench_dir: Path = SHARED_BENCH) -> Path:
    """Path of the reference graph .npz, generated with ``make_bench_graph.py`` from ``bench_dir``
    if absent (about 20 s). Default path: $BOARDGRAPH_BENCH_GRAPH or /tmp/boardgraph_bench.npz."""
    p = Path(path or os.environ.get("BOARDGRAPH_BENCH_GRAPH", "/tmp/boardgraph_bench.npz"))
    if not p.exists():
        script = Path(bench_dir) / "make_bench_graph.py"
        if not script.exists():
            sys.exit(f"reference graph generator {script} not found; set BOARDGRAPH_SHARED_BENCH or BOARDGRAPH_BENCH_GRAPH")
        subprocess.run([sys.executable, str(script), str(p)], check=True, stdout=subprocess.DEVNULL)
    return p


def load_arrays(path: Path) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """``(pin, board, n_pins, n_boards)`` of a reference graph .npz."""
    z = np.load(path)
    return torch.from_numpy(z["pin"]), torch.from_numpy(z["board"]), int(z["n_pins"]), int(z["n_boards"])


def build_from_arrays(pin: torch.Tensor, board: torch.Tensor, n_pins: int, n_boards: int) -> PinBoardGraph:
    """The Pin-Board graph of the two id arrays (what DGL's peer times as ``build``)."""
    g = PinBoardGraph()
    g.add_node_type("pin", pd.RangeIndex(n_pins))
    g.add_node_type("board", pd.RangeIndex(n_boards))
    g.add_relation(MEMBER, pin, board, reverse="has")
    return g


def run_peer(graph_path: Path, peer_python: str | None = None, bench_dir: Path = SHARED_BENCH) -> dict[str, dict]:
    """Run ``dgl_peer_bench.py`` with ``peer_python`` (default $BOARDGRAPH_PEER_PYTHON; {} when
    unset), emit its records tagged ``"peer": "dgl"`` and return them by op."""
    py = peer_python or os.environ.get("BOARDGRAPH_PEER_PYTHON")
    if not py:
        return {}
    out = subprocess.run([py, str(Path(bench_dir) / "dgl_peer_bench.py"), str(graph_path)], check=True,
                         capture_output=True, text=True).stdout
    recs = {}
    for line in out.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            recs[r["op"]] = r
            emit({"peer": "dgl", **r})
    return recs
