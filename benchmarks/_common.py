"""Shared helpers for the benchmark scripts: the reference graph and the DGL peer."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED_BENCH = Path(os.environ.get("BOARDGRAPH_SHARED_BENCH", REPO.parent / "shared" / "bench"))


def reference_graph(path: str | None = None) -> Path:
    """Path of the reference graph .npz, generated with ../shared/bench/make_bench_graph.py if absent
    (about 20 s). Override with $BOARDGRAPH_BENCH_GRAPH."""
    p = Path(path or os.environ.get("BOARDGRAPH_BENCH_GRAPH", "/tmp/boardgraph_bench.npz"))
    if not p.exists():
        script = SHARED_BENCH / "make_bench_graph.py"
        if not script.exists():
            sys.exit(f"reference graph generator {script} not found; set BOARDGRAPH_SHARED_BENCH or BOARDGRAPH_BENCH_GRAPH")
        subprocess.run([sys.executable, str(script), str(p)], check=True, stdout=subprocess.DEVNULL)
    return p


def run_peer(graph_path: Path) -> dict[str, dict]:
    """Run the DGL peer script with $BOARDGRAPH_PEER_PYTHON; {} when unset. Returns op -> JSON record."""
    py = os.environ.get("BOARDGRAPH_PEER_PYTHON")
    if not py:
        return {}
    out = subprocess.run([py, str(SHARED_BENCH / "dgl_peer_bench.py"), str(graph_path)], check=True,
                         capture_output=True, text=True).stdout
    recs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {r["op"]: r for r in recs}


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)
