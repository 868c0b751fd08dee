"""Where an out-of-core build spends its time and memory, pass by pass (prints JSON lines).

Builds TABLE (a Parquet file or folder, a CSV) into a temporary folder with
``from_collections(method="out-of-core", max_memory=...)`` while a thread polls this process's
resident memory every 50 ms, and prints each pass's seconds and the peak so far with the pass it
was reached in. Generate a table with ``_rows.write_rows`` (``build_graph.py --parquet-rows N
--keep-data`` leaves one in ``/tmp/boardgraph_rows``).

Usage: python benchmarks/build_passes.py TABLE [--max-memory 1G]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

import boardgraph.graph.stream.build as build
from _common import emit
from boardgraph.graph import from_collections
from boardgraph.graph.stream.spill import rss_bytes

PASSES = ("_scan", "distinct_counts", "first_rows", "rebucket", "write_out_csr", "write_in_csr", "_ids")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("table")
    ap.add_argument("--max-memory", default="1G")
    args = ap.parse_args()
    peak = {"bytes": 0, "in": "start"}
    stage = ["start"]

    def watch() -> None:
        while True:
            r = rss_bytes()
            if r > peak["bytes"]:
                peak.update(bytes=r, **{"in": stage[0]})
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()
    for name in PASSES:  # wrap each pass to time it and to name the peak
        fn = getattr(build, name)

        def timed(*a, _fn=fn, _name=name, **k):
            stage[0] = _name
            t = time.perf_counter()
            out = _fn(*a, **k)
            emit({"op": "pass", "pass": _name, "seconds": round(time.perf_counter() - t, 1),
                  "peak_so_far_mb": peak["bytes"] >> 20, "peak_in": peak["in"]})
            return out

        setattr(build, name, timed)
    out = Path(tempfile.mkdtemp(prefix="bg_passes_")) / "graph"
    try:
        t = time.perf_counter()
        _, report = from_collections(args.table, method="out-of-core", out=out, max_memory=args.max_memory)
        emit({"op": "build", "seconds": round(time.perf_counter() - t, 1), "max_memory": args.max_memory,
              "edges": report.edges, "peak_mb": peak["bytes"] >> 20, "peak_in": peak["in"]})
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
