"""Graph-store build benchmark on the reference Pin-Board graph (prints JSON lines).

Figures: build time from the two int64 id arrays; resident bytes per edge of the stored topology
(both CSR directions plus the reverse edge-id map); rows/s building from a pandas DataFrame of
string ids (10M rows). With $BOARDGRAPH_PEER_PYTHON naming a Python with DGL, DGL's build is
measured in the same run and our/DGL ratios are printed.

Usage: python benchmarks/build_graph.py [--rows 10000000] [--repeats 3] [--device cpu]
"""
from __future__ import annotations

import argparse
import gc
import time

import numpy as np
import pandas as pd
import torch

from _common import build_from_arrays, emit, load_arrays, reference_graph, run_peer
from boardgraph.graph import from_collections


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graph", help="reference graph .npz (default: generated)")
    ap.add_argument("--rows", type=int, default=10_000_000, help="rows of the string-id DataFrame")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
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
