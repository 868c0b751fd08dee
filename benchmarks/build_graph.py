"""Graph-store build benchmark on the reference Pin-Board graph (prints JSON lines).

Figures: build time from the two int64 id arrays; resident bytes per edge of the stored topology
(both CSR directions plus the reverse edge-id map); rows/s building from a pandas DataFrame of
string ids (10M rows). With $BOARDGRAPH_PEER_PYTHON naming a Python with DGL, DGL's build is
measured in the same run and our/DGL ratios are printed.

With ``--parquet-rows N`` (repeatable) it measures the out-of-core path instead: N rows of
generated Parquet shards (``_rows.write_rows``: int64 ids, N/20 pins, N/100 boards, duplicates
kept) built by ``boardgraph build --method out-of-core --max-memory M`` in a child process: wall
time, peak resident memory, bytes on disk, and ``boardgraph describe``'s time and memory on the
result; at the sizes named by ``--in-memory-at``, the in-memory build too, and the ratio.

Usage: python benchmarks/build_graph.py [--rows 10000000] [--repeats 3] [--device cpu]
       python benchmarks/build_graph.py --parquet-rows 100000000 --parquet-rows 1000000000 \
           --max-memory 4G --in-memory-at 100000000 [--data-dir /tmp/boardgraph_rows]
"""
from __future__ import annotations

import argparse
import gc
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from _common import build_from_arrays, emit, load_arrays, reference_graph, run_peer
from _rows import du, run_measured, write_rows
from boardgraph.graph import from_collections


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


_CLI = [sys.executable, "-c", "from boardgraph.cli import main; raise SystemExit(main())"]


def out_of_core(args: argparse.Namespace) -> None:
    """The out-of-core figures (see the module docstring)."""
    limit = args.max_memory
    for n in args.parquet_rows:
        data = Path(args.data_dir) / f"rows_{n}"
        info = write_rows(data, n)
        emit({"op": "generate_parquet", **info})
        runs = {}
        for method in ["out-of-core"] + (["memory"] if n in args.in_memory_at else []):
            out = Path(args.data_dir) / f"graph_{n}_{method}"
            shutil.rmtree(out, ignore_errors=True)
            r = run_measured(_CLI + ["build", str(data), str(out), "--method", method, "--max-memory", limit])
            edges = next((int(x.split()[0].replace(",", "")) for x in r["tail"] if " edges + " in x), None)
            rec = {"op": "build", "method": method, "rows": n, "max_memory": limit, "seconds": r["seconds"],
                   "peak_rss_gb": round(r["peak_rss_bytes"] / 2**30, 2), "exit": r["exit"], "edges": edges,
                   "disk_gb": round(du(out) / 2**30, 2) if out.exists() else None}
            if r["exit"] != 0:
                rec["tail"] = r["tail"]
            rec["bytes_per_edge_on_disk"] = round(du(out) / edges, 2) if edges and out.exists() else None
            emit(rec)
            runs[method] = rec
            if method == "out-of-core" and r["exit"] == 0:
                d = run_measured(_CLI + ["describe", str(out)])
                emit({"op": "describe", "rows": n, "seconds": d["seconds"], "exit": d["exit"],
                      "peak_rss_gb": round(d["peak_rss_bytes"] / 2**30, 2)})
            if not args.keep:
                shutil.rmtree(out, ignore_errors=True)
        if len(runs) == 2:
            emit({"op": "ratio_out_of_core_vs_in_memory", "rows": n,
                  "seconds": round(runs["out-of-core"]["seconds"] / runs["memory"]["seconds"], 2),
                  "peak_rss": round(runs["out-of-core"]["peak_rss_gb"] / runs["memory"]["peak_rss_gb"], 2)})
        if not args.keep_data:
            shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graph", help="reference graph .npz (default: generated)")
    ap.add_argument("--rows", type=int, default=10_000_000, help="rows of the string-id DataFrame")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parquet-rows", type=int, action="append", help="out-of-core build of N generated rows")
    ap.add_argument("--max-memory", default="4G", help="--max-memory of the out-of-core builds")
    ap.add_argument("--in-memory-at", type=int, action="append", default=[],
                    help="also build these --parquet-rows sizes in memory, for the ratio")
    ap.add_argument("--data-dir", default="/tmp/boardgraph_rows", help="where the generated Parquet and graphs go")
    ap.add_argument("--keep", action="store_true", help="keep the built graphs")
    ap.add_argument("--keep-data", action="store_true", help="keep the generated Parquet")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.parquet_rows:
        out_of_core(args)
        return
    path = reference_graph(args.graph)
    pin, board, n_pins, n_boards = load_arrays(path)
    pin_np, board_np = pin.numpy(), board.numpy()
    pin, board = pin.to(args.device), board.to(args.device)
    build_from_arrays(pin[:1000], board[:1000], n_pins, n_boards)  # warm-up
    times = []
    for _ in range(args.repeats):
        gc.collect()
        sync(args.device)
        t = time.perf_counter()
        g = build_from_arrays(pin, board, n_pins, n_boards)
        sync(args.device)
        times.append(time.perf_counter() - t)
    E = g.num_edges("in")
    build_s = float(np.median(times))
    emit({"op": "build_from_arrays", "device": args.device, "edges": E, "seconds_median": round(build_s, 3),
          "seconds_all": [round(x, 3) for x in times]})
    bpe = g.topology_nbytes() / E
    emit({"op": "topology_bytes_per_edge", "bytes_per_edge": round(bpe, 2), "total_mb": round(g.topology_nbytes() / 2**20, 1)})
    del g
    ours = {"build_from_arrays": build_s}

    if args.device == "cpu":
        rows = min(args.rows, len(pin_np))
        rng = np.random.default_rng(0)
        take = rng.choice(len(pin_np), size=rows, replace=rows > len(pin_np))
        df = pd.DataFrame({"board_id": pd.Series(board_np[take]).map("b{}".format),
                           "pin_id": pd.Series(pin_np[take]).map("p{}".format)})
        times = []
        for _ in range(max(1, args.repeats - 1)):
            gc.collect()
            t = time.perf_counter()
            g, rep = from_collections(df)
            times.append(time.perf_counter() - t)
        s = float(np.median(times))
        emit({"op": "build_from_string_dataframe", "rows": rows, "string_dtype": str(df["pin_id"].dtype),
              "seconds_median": round(s, 3), "rows_per_s": round(rows / s), "edges": g.num_edges("in"),
              "duplicates_counted": rep.counts.get("duplicate_edge", 0)})

    peer = run_peer(path)
    if "build" in peer:
        emit({"op": "ratio_vs_dgl", "metric": "build seconds (ours / DGL; < 1 is faster)",
              "ours": round(ours["build_from_arrays"], 3), "dgl": peer["build"]["seconds"],
              "ratio": round(ours["build_from_arrays"] / peer["build"]["seconds"], 3)})


if __name__ == "__main__":
    main()
