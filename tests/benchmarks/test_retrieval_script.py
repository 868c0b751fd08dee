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
           "--factory", "IVF16,Flat", "--nprobe", "16", "--tune", "0.9"]
    out = subprocess.run(cmd, cwd=BENCH, capture_output=True, text=True, timeout=300, check=True).stdout
    recs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    ops = [r["op"] for r in recs]
    assert ops[0] == "ann_flat" and ops[-4] == "ann_choice" and ops[-3:] == ["ann_tune"] * 3
    factory = {(r["factory"], r["k_factor"], r["nprobe"]): r["recall_at_10"] for r in recs if r["op"] == "ann_factory"}
    # Re-ranking 3,000 candidates of a 3,000-vector catalogue is exact; probing every IVF list too.
    assert factory[("PQ8x4fs,RFlat", 300, None)] == 1.0
    assert factory[("IVF16,Flat", None, 16)] == 1.0
    # One candidate per result, ranked by 4-bit codes alone, misses some of the exact top 10.
    assert factory[("PQ8x4fs,RFlat", 1, None)] < 1.0
    hnsw = {r["ef_search"]: r["recall_at_10"] for r in recs if r["op"] == "ann_hnsw"}
    assert set(hnsw) == {16, 512} and hnsw[512] >= hnsw[16] and hnsw[512] > 0.9
    tune = {r["tuned_on"]: r for r in recs if r["op"] == "ann_tune"}
    assert set(tune) == {"held-out rows", "stored rows", "given"}
    assert tune["given"]["tune_queries"] == 50 and tune["held-out rows"]["tune_queries"] == 500
    for r in tune.values():
        assert r["ef_search"] >= 10 and 0 < r["heldout_recall_at_10"] <= 1 and r["heldout_queries"] == 50
        assert r["reached"] == (r["tune_recall_at_10"] >= 0.9)
    # stored rows find themselves through their own node: that tuning never asks for more search
    assert tune["stored rows"]["ef_search"] <= tune["held-out rows"]["ef_search"]


def test_ann_part_on_learned_embeddings_of_a_trained_run():
    cmd = [sys.executable, "retrieval.py", "--part", "ann", "--data", "learned", "--n", "1500", "--queries", "50",
           "--threads", "1", "--ef-search", "64", "--train-steps", "3"]
    out = subprocess.run(cmd, cwd=BENCH, capture_output=True, text=True, timeout=300, check=True).stdout
    recs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    vec = recs[0]
    assert vec["op"] == "ann_learned_vectors" and vec["n"] == 1550 and vec["dim"] == 64
    hnsw = [r for r in recs if r["op"] == "ann_hnsw"]
    assert len(hnsw) == 1 and hnsw[0]["dim"] == 64 and hnsw[0]["data"] == "learned" and hnsw[0]["recall_at_10"] > 0.9
