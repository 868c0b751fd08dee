"""``boardgraph index --from-shards``: an IVF-PQ index built shard by shard (prints JSON lines).

Writes ``--n`` vectors as ``--shards`` embedding shards (``inference.shards.write_shard``, one call
per shard as each rank would), then runs ``boardgraph index --from-shards`` in a child process:
build time, its peak resident memory against a child that only imports boardgraph (so the
difference is the build's), the bytes per vector it prints; then, in this process, its Recall@10
against exact search (stored pins as queries, each excluding itself) and its speed-up, for each
``--nprobe`` x ``--rerank``.

The vectors: ``--data lowrank`` (default) a 32-dim subspace of 64 dims plus noise, the stand-in for
learned embeddings of ``retrieval.py``; ``--data learned`` embeds synthetic lookbook pins with a
trained run (slow: about 10 minutes per million on 2 cores).

Usage: python benchmarks/index_shards.py [--n 1000000] [--shards 4] [--pq-m 32] [--nlist 1024]
       [--nprobe 16 64] [--rerank 1 10 50]
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from _common import emit
from _rows import run_measured
from boardgraph.inference.index import EmbeddingIndex
from boardgraph.inference.index_build import recall_on_shards
from boardgraph.inference.shards import EmbeddingShards, shard_rows, write_manifest, write_shard
from retrieval import learned_vectors, vectors

_CLI = [sys.executable, "-c", "from boardgraph.cli import main; raise SystemExit(main())"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--data", choices=("lowrank", "learned"), default="lowrank")
    ap.add_argument("--pq-m", type=int, default=32)
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--nprobe", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--rerank", type=int, nargs="+", default=[1, 10, 50])
    ap.add_argument("--train-size", type=int, default=100_000)
    ap.add_argument("--check-queries", type=int, default=1000)
    ap.add_argument("--run", help="--data learned: a trained run (default: trained here)")
    ap.add_argument("--epochs", type=int, default=1, help="--data learned: epochs of the run trained here")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bg_shards_"))
    try:
        x = vectors(args.n, args.dim, 0, "lowrank", 32) if args.data == "lowrank" else learned_vectors(args, args.n, tmp)
        ids = np.arange(args.n, dtype=np.int64)
        for r in range(args.shards):
            lo, hi = shard_rows(args.n, r, args.shards)
            write_shard(tmp / "shards", r, args.shards, ids[lo:hi], [x[lo:hi]], args.n)
        write_manifest(tmp / "shards", args.shards)
        del x
        base = run_measured([sys.executable, "-c", "import boardgraph.cli, boardgraph.inference.index"])
        r = run_measured(_CLI + ["index", "--from-shards", str(tmp / "shards"), "--out", str(tmp / "index"),
                                 "--pq-m", str(args.pq_m), "--nlist", str(args.nlist), "--train-size", str(args.train_size),
                                 "--check-queries", "0"], env={"OMP_NUM_THREADS": str(args.threads)})
        text = " ".join(r["tail"])
        built = re.search(r"in ([0-9.]+) s", text)
        code = re.search(r"bytes per vector: (\d+) of PQ code \+ 8 of FAISS list id \+ (\d+) of external id", text)
        extra = r["peak_rss_bytes"] - base["peak_rss_bytes"]
        emit({"op": "index_from_shards", "data": args.data, "n": args.n, "dim": args.dim, "shards": args.shards,
              "pq_m": args.pq_m, "nlist": args.nlist, "exit": r["exit"],
              "build_seconds": float(built.group(1)) if built else None,
              "code_bytes": int(code.group(1)) if code else None, "id_bytes": int(code.group(2)) if code else None,
              "disk_bytes_per_vector": 4 * args.dim,
              "index_file_bytes_per_vector": round((tmp / "index" / "index.faiss").stat().st_size / args.n, 1)
              if r["exit"] == 0 else None,
              "peak_rss_gb": round(r["peak_rss_bytes"] / 2**30, 3),
              "import_only_peak_rss_gb": round(base["peak_rss_bytes"] / 2**30, 3),
              "peak_rss_over_import_bytes_per_vector": round(extra / args.n, 1),
              "tail": r["tail"] if r["exit"] else None})
        if r["exit"]:
            return
        index, shards = EmbeddingIndex.load(tmp / "index"), EmbeddingShards.open(tmp / "shards")
        for nprobe in args.nprobe:
            for rerank in args.rerank:
                index.config = replace(index.config, nprobe=nprobe, rerank=rerank)
                rec = recall_on_shards(index, shards, k=10, n_queries=args.check_queries)
                emit({"op": "ivfpq_recall", "n": args.n, "nprobe": nprobe, "rerank": rerank,
                      "recall_at_10": round(rec["recall"], 4), "queries": rec["queries"],
                      "speedup_vs_exact": round(rec["index_queries_per_s"] / rec["exact_queries_per_s"], 1)})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
