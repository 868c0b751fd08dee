"""What one training rank holds when it memory-maps a big saved graph (prints JSON lines).

Loads the graph at GRAPH with ``PinBoardGraph.load(mmap=True)`` and samples, for ``--seconds``,
what a rank of a ``--world``-rank run samples: its shard of the pins as seeds, board-mates (K = 16,
what training reads) and a uniform two-hop 10x10. Reports seeds/s and the rank's memory from
``/proc/self/status``: ``RssAnon`` (its own, not shared), ``RssFile`` (pages of the mapped graph
files, shared through the page cache with every other rank of the machine) and the peak.

Usage: python benchmarks/mmap_rank.py GRAPH [--world 8] [--rank 0] [--seconds 30] [--batch 1024]
"""
from __future__ import annotations

import argparse
import time

import torch

from _common import emit
from boardgraph.graph import PinBoardGraph
from boardgraph.inference.shards import shard_rows
from boardgraph.sampling import BoardMateSampler, NeighborSampler


def status() -> dict[str, float]:
    """Resident memory now, in GB: anonymous, file-backed, total and peak."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "VmRSS", "VmHWM"):
                out[key] = round(int(value.split()[0]) / 2**20, 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("graph")
    ap.add_argument("--world", type=int, default=8)
    ap.add_argument("--rank", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t = time.perf_counter()
    g = PinBoardGraph.load(args.graph, mmap=True)
    emit({"op": "load_mmap", "seconds": round(time.perf_counter() - t, 2), "pins": g.num_nodes("pin"),
          "boards": g.num_nodes("board"), "edges": g.num_edges("in"), **status()})
    lo, hi = shard_rows(g.num_nodes("pin"), args.rank, args.world)
    gen = torch.Generator().manual_seed(args.rank)
    mates = BoardMateSampler(g, 16)
    two_hop = NeighborSampler(g, {("board", "has", "pin"): [10, 0], ("pin", "in", "board"): [0, 10]})
    for name, fn in (("board_mates_k16", lambda s: mates.sample(s, gen)),
                     ("uniform_2hop_10x10", lambda s: two_hop.sample(s, gen))):
        n, t = 0, time.perf_counter()
        while time.perf_counter() - t < args.seconds:
            fn(torch.randint(lo, hi, (args.batch,), generator=gen))
            n += args.batch
        emit({"op": name, "rank": args.rank, "world": args.world, "seeds": n,
              "seeds_per_s": round(n / (time.perf_counter() - t)), **status()})


if __name__ == "__main__":
    main()
