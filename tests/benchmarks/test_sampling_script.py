"""Smoke test of ``benchmarks/sampling.py`` on a tiny graph written in the reference format (the
1M-pin reference graph needs ``../shared/bench``; this one does not)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def test_sampling_benchmark_runs_every_operation(tmp_path):
    rng = np.random.default_rng(0)
    n_pins, n_boards = 2000, 200
    pin = rng.integers(0, n_pins, 12_000)
    board = rng.integers(0, n_boards, 12_000)
    graph = tmp_path / "tiny.npz"
    np.savez(graph, pin=pin, board=board, n_pins=n_pins, n_boards=n_boards)
    env = {k: v for k, v in os.environ.items() if k != "BOARDGRAPH_PEER_PYTHON"}  # no DGL peer run
    out = subprocess.run([sys.executable, "sampling.py", "--graph", str(graph), "--batch-size", "64",
                          "--threads", "1"], cwd=BENCH, capture_output=True, text=True, timeout=300,
                         check=True, env=env).stdout
    recs = {r["op"]: r for r in (json.loads(line) for line in out.splitlines() if line.startswith("{"))}
    assert recs["build"]["input_rows"] == 12_000
    assert recs["build"]["edges"] == len(set(zip(pin.tolist(), board.tolist())))  # duplicates merged
    for op in ("uniform_2hop_fanout10x10", "uniform_2hop_fanout10x10_frontier", "board_mates_k16",
               "board_mates_k16_unique", "pinsage_walks3_restart0.5_walks10_top10",
               "loader_board_mates_k16_features"):
        assert op in recs, op
    assert recs["loader_board_mates_k16_features"]["seeds_per_s"] > 0
