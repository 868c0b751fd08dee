"""Smoke test of ``benchmarks/retrieval.py --part ann``: the records it prints are well formed and
its figures are sane on a tiny catalogue (speed itself is never asserted here)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def test_ann_part_prints_hnsw_and_factory_records():
    cmd = [sys.executable, "retrieval.py", "--part", "ann", "--n", "3000", "--dim", "16", "--queries", "100",
           "--threads", "1", "--ef-search", "16,512", "--factory", "PQ8x4fs,RFlat", "--k-factor", "1,300",
           "--factory", "IVF16,Flat", "--nprobe", "16"]
    out = subprocess.run(cmd, cwd=BENCH, capture_output=True, text=True, timeout=300, check=True).stdout
    recs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    ops = [r["op"] for r in recs]
    assert ops[0] == "ann_flat" and ops[-1] == "ann_choice"
    factory = {(r["factory"], r["k_factor"], r["nprobe"]): r["recall_at_10"] for r in recs if r["op"] == "ann_factory"}
    # Re-ranking 3,000 candidates of a 3,000-vector catalogue is exact; probing every IVF list too.
    assert factory[("PQ8x4fs,RFlat", 300, None)] == 1.0
    assert factory[("IVF16,Flat", None, 16)] == 1.0
    # One candidate per result, ranked by 4-bit codes alone, misses some of the exact top 10.
    assert factory[("PQ8x4fs,RFlat", 1, None)] < 1.0
    hnsw = {r["ef_search"]: r["recall_at_10"] for r in recs if r["op"] == "ann_hnsw"}
    assert set(hnsw) == {16, 512} and hnsw[512] >= hnsw[16] and hnsw[512] > 0.9
