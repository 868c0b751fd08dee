"""Sampler benchmarks on the reference Pin-Board graph, as JSON lines (one per operation).

Mirrors ``../shared/bench/dgl_peer_bench.py``: the same graph, the same seeds (30 batches of 1024
pins drawn with ``torch.Generator().manual_seed(0)``), the same operations, warm-up and repetition
counts, and ``torch.set_num_threads(2)``:

* ``build``: both CSR directions from the edge list (seconds);
* ``uniform_2hop_fanout10x10``: pin -> 10 boards -> 10 pins per board, without replacement, as
  the loader uses it: per-hop blocks relabelled to local ids (seeds and sampled edges per second);
  ``uniform_2hop_fanout10x10_frontier`` is the peer's exact composition (one hop in global ids,
  ``torch.unique`` of the boards, one hop), which skips the relabelling;
* ``pinsage_walks3_restart0.5_walks10_top10``: PinSage random-walk neighbors (seeds per second);
* ``board_mates_k16``: 16 board-mates per seed as independent draws (the sampler's default), and
  ``board_mates_k16_unique`` with 16 distinct mates (seeds per second);
* ``loader_board_mates_k16_features``: the loader end to end (board-mates + a float32 ``[N, 32]``
  pin feature fetched, background thread, delivered on ``--device``), seeds per second.

Usage::

    python benchmarks/sampling.py [--graph /tmp/boardgraph_bench.npz] [--device cuda]

The graph is generated with ``make_bench_graph.py`` when absent (~20 s). With the environment
variable ``BOARDGRAPH_PEER_PYTHON`` naming a Python that has DGL (see ``../shared/bench/README.md``),
the DGL peer runs in the same invocation and ``{"op": "ratio", ...}`` lines give ours / DGL in
sampled edges per second (for ``build``: DGL seconds / our seconds, so above 1 means faster in
every line). On a shared machine use ``--repeat 5``: our suite and the peer alternate five times
and ``ratio_median`` lines give the median of each ratio.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from _common import MEMBER, SHARED_BENCH, build_from_arrays, emit, load_arrays, reference_graph, run_peer
from boardgraph.graph import PinBoardGraph
from boardgraph.sampling import (BoardMateSampler, GraphFeatureFetcher, NeighborSampler, PinBoardLoader,
                                 PinSageSampler)

FWD, REV = MEMBER, ("board", "has", "pin")
N_BATCHES = 30


def load_graph(path: Path) -> tuple[PinBoardGraph, float, int]:
    pin, board, n_pins, n_boards = load_arrays(path)
    t = time.perf_counter()
    g = build_from_arrays(pin, board, n_pins, n_boards)
    return g, time.perf_counter() - t, int(len(pin))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(name: str, fn, seeds_all: list[torch.Tensor], device: torch.device, reps: int = N_BATCHES,
          extra: dict | None = None) -> dict:
    """Warm up on batch 0, then time ``reps`` batches (as the DGL peer does)."""
    batch = seeds_all[0].numel()
    fn(seeds_all[0])
    sync(device)
    t = time.perf_counter()
    edges = 0
    for s in seeds_all[:reps]:
        edges += fn(s)
    sync(device)
    dt = time.perf_counter() - t
    rec = {"op": name, "device": str(device), "batch": batch, "seeds_per_s": round(batch * reps / dt),
           "sampled_edges_per_s": round(int(edges) / dt), **(extra or {})}
    emit(rec)
    return rec


def run_ours(g: PinBoardGraph, seeds_all: list[torch.Tensor], device: torch.device, repeat: int) -> dict[str, dict]:
    """Time every operation once (JSON lines tagged with ``repeat``); returns the records by op."""
    batch = seeds_all[0].numel()
    seeds_dev = [s.to(device) for s in seeds_all]
    sgen = torch.Generator(device=device).manual_seed(0)
    tag = {"repeat": repeat}
    ours = {}
    two_hop = NeighborSampler(g, {REV: [10, 0], FWD: [0, 10]})
    ours["uniform_2hop_fanout10x10"] = timed(
        "uniform_2hop_fanout10x10", lambda s: two_hop.sample(s, sgen).num_sampled_edges, seeds_dev, device,
        extra={"output": "blocks (relabelled to local ids)", **tag})

    def frontier_2hop(s: torch.Tensor) -> int:  # the peer's exact composition: one hop, unique, one hop
        src1, _, _ = two_hop.sample_neighbors(s, REV, 10, sgen)
        src2, _, _ = two_hop.sample_neighbors(torch.unique(src1), FWD, 10, sgen)
        return src1.numel() + src2.numel()

    ours["uniform_2hop_fanout10x10_frontier"] = timed(
        "uniform_2hop_fanout10x10_frontier", frontier_2hop, seeds_dev, device,
        extra={"output": "global-id frontiers (as DGL's sample_neighbors)", **tag})
    pinsage = PinSageSampler(g, 10, num_walks=10, num_traversals=3, restart_prob=0.5)
    ours["pinsage_walks3_restart0.5_walks10_top10"] = timed(
        "pinsage_walks3_restart0.5_walks10_top10", lambda s: pinsage.sample(s, sgen).mask.sum(), seeds_dev,
        device, reps=10, extra=tag)
    mates = BoardMateSampler(g, 16)
    ours["board_mates_k16"] = timed("board_mates_k16", lambda s: mates.sample(s, sgen).mask.sum(), seeds_dev,
                                    device, extra=tag)
    mates_u = BoardMateSampler(g, 16, unique=True)
    ours["board_mates_k16_unique"] = timed("board_mates_k16_unique", lambda s: mates_u.sample(s, sgen).mask.sum(),
                                           seeds_dev, device, extra=tag)

    loader = PinBoardLoader(g, mates, torch.cat(seeds_all), batch_size=batch, shuffle=False, device=device,
                            features=GraphFeatureFetcher(g, {"pin": ["emb"]}), prefetch=2)
    it = iter(loader)
    next(it)  # warm-up: thread start and first batch
    sync(device)
    t = time.perf_counter()
    n = 0
    for mb in it:
        n += mb.batch_size
        _ = mb.features["pin"]["emb"].sum()  # touch the delivered features
    sync(device)
    rec = {"op": "loader_board_mates_k16_features", "device": str(device), "batch": batch,
           "seeds_per_s": round(n / (time.perf_counter() - t)), "feature": "float32 [N, 32]", **tag}
    emit(rec)
    ours[rec["op"]] = rec
    return ours


def ratios(ours: dict[str, dict], peer: dict[str, dict], build_s: float) -> dict[str, float]:
    """ours / DGL per operation (``build``: DGL seconds / our seconds); the ``_frontier`` variant
    is compared with the peer's operation of the same name without the suffix."""
    out = {}
    if "build" in peer:
        out["build"] = peer["build"]["seconds"] / max(build_s, 1e-9)
    for name, rec in ours.items():
        peer_name = name.removesuffix("_frontier")
        if peer_name in peer and "sampled_edges_per_s" in rec:
            out[name] = rec["sampled_edges_per_s"] / max(peer[peer_name]["sampled_edges_per_s"], 1)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="boardgraph sampler benchmarks (JSON lines)")
    p.add_argument("--graph", type=Path, default=Path("/tmp/boardgraph_bench.npz"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=1024,
                   help="seeds per batch (1024 mirrors the DGL peer; ratios are printed only for 1024)")
    p.add_argument("--repeat", type=int, default=1,
                   help="run our suite (and the peer) this many times, alternating, and print median ratios")
    p.add_argument("--bench-dir", type=Path, default=SHARED_BENCH,
                   help="folder holding make_bench_graph.py and dgl_peer_bench.py (default ../shared/bench)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    reference_graph(args.graph, args.bench_dir)
    g, build_s, n_edges = load_graph(args.graph)
    emit({"op": "build", "edges": g.num_edges(FWD), "input_rows": n_edges, "seconds": round(build_s, 3)})
    gen = torch.Generator().manual_seed(0)
    seeds_all = [torch.randint(0, g.num_nodes("pin"), (args.batch_size,), generator=gen) for _ in range(N_BATCHES)]
    emb = torch.randn(g.num_nodes("pin"), 32, generator=torch.Generator().manual_seed(1))
    g.features("pin").add_tensor("emb", emb)
    if device.type != "cpu":
        g = g.to(device)
    peer_python = os.environ.get("BOARDGRAPH_PEER_PYTHON") if args.batch_size == 1024 else None
    all_ratios: dict[str, list[float]] = {}
    for rep in range(args.repeat):
        ours = run_ours(g, seeds_all, device, rep)
        if not peer_python:
            continue
        peer = run_peer(args.graph, peer_python, args.bench_dir)
        for name, value in ratios(ours, peer, build_s).items():
            all_ratios.setdefault(name, []).append(value)
            metric = "dgl_seconds/our_seconds" if name == "build" else "sampled_edges_per_s ours/dgl"
            emit({"op": "ratio", "name": name, "metric": metric, "ratio": round(value, 2), "repeat": rep})
    if args.repeat > 1:
        for name, values in all_ratios.items():
            emit({"op": "ratio_median", "name": name, "ratio": round(statistics.median(values), 2),
                  "all": [round(v, 2) for v in values]})


if __name__ == "__main__":
    main()
