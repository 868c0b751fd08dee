"""Smoke tests of ``benchmarks/train.py`` and ``benchmarks/encoders.py`` at tiny sizes on CPU: the
scripts ``gpu_check.sh`` runs on a lent GPU must not rot between lends. Records are checked for
their fields and for values that hold at any speed (never for speed itself)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _records(*args: str) -> list[dict]:
    out = subprocess.run([sys.executable, *args], cwd=BENCH, capture_output=True, text=True, timeout=300,
                         check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_train_benchmark_times_every_objective_their_ratios_and_the_refinement():
    recs = _records("train.py", "--pins", "300", "--steps", "2", "--batch-size", "32", "--threads", "1",
                    "--refine-scaling", "3000")
    steps = {r["kind"]: r for r in recs if r["op"] == "train_step"}
    assert set(steps) == {"content", "neighbor", "neighbor_id", "neighbor_cf"}
    for r in steps.values():
        assert r["device"] == "cpu" and r["batch_size"] == 32 and r["ms_per_step"] > 0
        assert r["pins_per_s"] == pytest.approx(32 * r["steps_per_s"], rel=0.01, abs=1)
    ratios = [r for r in recs if r["op"] == "ratio"]
    assert [r["metric"].split(" ")[0] for r in ratios] == ["neighbor", "neighbor_id"]
    for r in ratios:
        kind = r["metric"].split(" ")[0]
        assert r["ratio"] == pytest.approx(steps[kind]["ms_per_step"] / steps["content"]["ms_per_step"], rel=0.01)
    (refine,) = [r for r in recs if r["op"] == "refine"]
    assert refine["kind"] == "neighbor_cf" and refine["seconds"] > 0
    assert refine["content_steps"] == pytest.approx(refine["seconds"] / (steps["content"]["ms_per_step"] / 1000),
                                                    rel=0.05)
    scaling = [(r["softmax"], r["board_query"]) for r in recs if r["op"] == "refine_step"]
    assert scaling == [("full", "centroid"), ("full", "attention"), ("sampled 8192", "centroid"),
                       ("sampled 8192", "attention")]
    assert all(r["warm_pins"] == 3000 and r["ms_per_step"] > 0 for r in recs if r["op"] == "refine_step")


def test_encoder_benchmark_onnx_matches_torch():
    recs = _records("encoders.py", "--pins", "64", "--batch", "16", "--steps", "1", "--iters", "2", "--threads", "1")
    (cache,) = [r for r in recs if r["op"] == "cache_build"]
    assert cache["pins"] == 64
    modes = {r["mode"] for r in recs if r["op"] == "train_throughput"}
    assert modes == {"end_to_end", "frozen_cached"}
    lat = [r for r in recs if r["op"] == "latency"]
    assert {(r["path"], r["batch"]) for r in lat} >= {("full", 1), ("fusion", 1)}
    # the exported graph computes what the torch module computes
    assert all(r["max_abs_diff"] < 1e-4 for r in lat)


@pytest.mark.slow
def test_id_sharding_benchmark_halves_the_table_per_rank():
    recs = _records("id_sharding.py", "--pins", "400", "--steps", "2", "--embed-dim", "32")
    steps = {r["mode"]: r for r in recs if r["op"] == "id_table_step"}
    assert set(steps) == {"replicated", "sharded"} and all(r["ranks"] == 2 and r["ms_per_step"] > 0
                                                           for r in steps.values())
    # parameter + gradient + AdamW's two moments, 4 bytes each: 400 x 32 x 16 replicated, half of it sharded
    assert steps["replicated"]["table_bytes_per_rank"] == 400 * 32 * 16
    assert steps["sharded"]["table_bytes_per_rank"] == 200 * 32 * 16
    ratios = {r["metric"]: r["ratio"] for r in recs if r["op"] == "ratio"}
    assert ratios["sharded / replicated ID table bytes per rank"] == 0.5
