"""Generated membership tables for the out-of-core build benchmark, and peak-memory measurement.

:func:`write_rows` writes N rows of int64 ``board_id``, ``pin_id`` as a folder of Parquet shards, in
bounded memory: boards Zipf-like (exponent 0.8) over N/100 boards, pins over N/20 (exponent 0.6),
as in ``../shared/bench/make_bench_graph.py``, drawn by inverse CDF shard by shard, ids scrambled
by an affine map modulo a prime (distinct, not in reading order), duplicates kept.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

_P = 2**61 - 1  # a prime: i -> (a i + b) mod P is one-to-one


def _zipf(rng: np.random.Generator, n: int, size: int, a: float) -> np.ndarray:
    """``size`` draws from ``i^-a`` over ``0..n-1`` (continuous inverse CDF; ``a < 1``)."""
    u = rng.random(size)
    e = 1.0 - a
    return np.minimum(((1.0 + u * (n ** e - 1.0)) ** (1.0 / e) - 1.0).astype(np.int64), n - 1)


def write_rows(folder: Path, rows: int, shard_rows: int = 10_000_000, seed: int = 0) -> dict:
    """Write the table (see the module docstring) unless ``folder/done.json`` says it is there."""
    folder = Path(folder)
    done = folder / "done.json"
    if done.exists():
        return json.loads(done.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    n_pins, n_boards = max(2, rows // 20), max(2, rows // 100)
    rng = np.random.default_rng(seed)
    a_pin, a_board = int(rng.integers(2**33, 2**34)), int(rng.integers(2**33, 2**34))
    t = time.perf_counter()
    for i, start in enumerate(range(0, rows, shard_rows)):
        n = min(shard_rows, rows - start)
        board = (_zipf(rng, n_boards, n, 0.8) * a_board + 12345) % _P
        pin = (_zipf(rng, n_pins, n, 0.6) * a_pin + 67890) % _P
        pq.write_table(pa.table({"board_id": board, "pin_id": pin}), folder / f"part-{i:05d}.parquet",
                       row_group_size=1 << 20, compression="zstd")
    info = {"rows": rows, "pins_drawn_from": n_pins, "boards_drawn_from": n_boards,
            "bytes": sum(f.stat().st_size for f in folder.glob("*.parquet")),
            "generate_seconds": round(time.perf_counter() - t, 1)}
    done.write_text(json.dumps(info))
    return info


def run_measured(cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd``; its wall seconds, peak resident memory (bytes, from the kernel's accounting of
    that one child) and exit status, with the last lines of its output."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env={**os.environ, **(env or {})})
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    return {"seconds": round(time.perf_counter() - t, 1), "peak_rss_bytes": usage.ru_maxrss * 1024,
            "exit": os.waitstatus_to_exitcode(status), "tail": out.strip().splitlines()[-12:]}


def du(path: Path) -> int:
    """Bytes of the files under ``path``."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
