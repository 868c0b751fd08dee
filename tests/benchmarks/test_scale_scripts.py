"""Smoke tests of the scale-out benchmark scripts on tiny inputs: their records are well formed and
their figures sane (speed is never asserted): ``build_graph.py --parquet-rows``, ``build_passes.py``,
``mmap_rank.py`` and ``index_shards.py``."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def records(cmd: list[str]) -> list[dict]:
    out = subprocess.run([sys.executable, *cmd], cwd=BENCH, capture_output=True, text=True, timeout=600,
                         check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_out_of_core_build_benchmark_then_passes_and_a_rank(tmp_path):
    recs = records(["build_graph.py", "--parquet-rows", "200000", "--in-memory-at", "200000", "--max-memory", "1G",
                    "--data-dir", str(tmp_path), "--keep", "--keep-data"])
    builds = {r["method"]: r for r in recs if r["op"] == "build"}
    assert set(builds) == {"out-of-core", "memory"} and all(r["exit"] == 0 for r in builds.values())
    assert builds["out-of-core"]["edges"] == builds["memory"]["edges"] > 150_000  # duplicates dropped (10k pins)
    assert 12 < builds["out-of-core"]["bytes_per_edge_on_disk"] < 20
    assert [r["op"] for r in recs if r["op"] in ("describe", "ratio_out_of_core_vs_in_memory")] == [
        "describe", "ratio_out_of_core_vs_in_memory"]
    passes = records(["build_passes.py", str(tmp_path / "rows_200000"), "--max-memory", "1G"])
    assert {r["pass"] for r in passes if r["op"] == "pass"} >= {"_scan", "write_out_csr", "write_in_csr"}
    assert passes[-1]["op"] == "build" and passes[-1]["edges"]["in"] == builds["memory"]["edges"]
    rank = records(["mmap_rank.py", str(tmp_path / "graph_200000_out-of-core"), "--world", "4", "--seconds", "0.5"])
    assert [r["op"] for r in rank] == ["load_mmap", "board_mates_k16", "uniform_2hop_10x10"]
    assert rank[0]["edges"] == builds["memory"]["edges"] and all(r["RssAnon"] > 0 for r in rank)


def test_index_from_shards_benchmark():
    recs = records(["index_shards.py", "--n", "20000", "--dim", "16", "--nlist", "32", "--pq-m", "8",
                    "--train-size", "15000", "--check-queries", "100", "--nprobe", "32", "--rerank", "1", "200"])
    build = recs[0]
    assert build["op"] == "index_from_shards" and build["exit"] == 0 and build["code_bytes"] == 8
    assert 8 < build["index_file_bytes_per_vector"] < 40  # 8 of code + 8 of id + the centroids, spread
    recall = {r["rerank"]: r["recall_at_10"] for r in recs if r["op"] == "ivfpq_recall"}
    # every cell probed and 2,000 candidates re-ranked by the exact vectors: exact search
    assert recall[200] == 1.0 and recall[1] < 1.0
