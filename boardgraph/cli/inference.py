"""``boardgraph embed | index | search | place | export-onnx``: serving a trained run."""
from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from boardgraph._io import check_output
from boardgraph.cli._common import (LEXICAL_WEIGHT_HELP, RAW, RUN_HELP, UsageError, filters, open_search, pairs,
                                    print_table)
from boardgraph.encoders import OnnxPinEncoder, export_onnx
from boardgraph.inference.index import INDEX_ARTEFACT, EmbeddingIndex, IndexConfig, IndexInputError
from boardgraph.inference.index_build import recall_on_shards
from boardgraph.inference.shards import EmbeddingShards
from boardgraph.inference.run import load_run
from boardgraph.inference.search import PinSearch, catalogue_index

__all__ = ["register"]


EPILOG_EMBED = """examples:
  boardgraph embed runs/demo/neighbor                      # -> runs/demo/neighbor/embeddings.npy
  boardgraph embed runs/demo/neighbor --dim 16 --out emb16.npy   # 16-d Matryoshka prefix
"""


EPILOG_INDEX = """examples:
  boardgraph index runs/demo/neighbor                      # exact (flat) index in runs/demo/neighbor/index
  boardgraph index runs/demo/neighbor --kind hnsw --out /srv/pins.index
  boardgraph index runs/demo/neighbor --kind hnsw --target-recall 0.95   # smallest ef_search reaching it
  boardgraph index --from-shards runs/big/embeddings.shards --out /srv/pins.index --pq-m 32

--target-recall keeps the smallest ef_search / nprobe whose Recall@10 against exact search reaches
the target for 500 pins held out of a temporary copy of the index (for HNSW a second build), so that
they query it as new pins and texts would. To tune for your own queries, call
EmbeddingIndex.tune(queries=...) in Python.
"""


EPILOG_SEARCH = """examples:
  boardgraph search runs/demo/neighbor --pin p000042 --k 5
  boardgraph search runs/demo/neighbor --text "rust linen dress" --filter category=dress
  boardgraph search runs/demo/neighbor --image photo.jpg --filter category=bag --filter category=shoes

Uses the index saved by `boardgraph index` (RUN_DIR/index) when there is one, else an exact
in-memory index. Repeating a --filter column allows any of its values.
"""


EPILOG_PLACE = """examples:
  boardgraph place runs/demo/neighbor --text "navy silk blouse" --meta brand=Kestrel --meta price=49
  boardgraph place runs/demo/neighbor --image photo.jpg --k-boards 3 --k-pins 5
"""


EPILOG_EXPORT = """examples:
  boardgraph export-onnx runs/demo/neighbor encoder.onnx

The graph takes the encoder's raw inputs (present, images, input_ids, attention_mask, categorical,
numeric, numeric_missing; batch size dynamic) and returns the L2-normalised embedding. The
parity check compares ONNX Runtime with torch on pins of the run's graph.
"""


def _cmd_embed(args: argparse.Namespace) -> int:
    t = time.perf_counter()
    run = load_run(args.run_dir, device=args.device)
    emb = run.embed_pins(path=args.out, dim=args.dim, overwrite=args.overwrite)
    path = args.out or run.embeddings_path(args.dim)
    print(f"embedded {emb.shape[0]} pins ({emb.shape[1]}-d) to {path} in {time.perf_counter() - t:.1f} s")
    return 0


def _cmd_index(args: argparse.Namespace) -> int:
    if args.target_recall is not None and not 0 < args.target_recall <= 1:  # before the slow part
        raise IndexInputError(f"target_recall must be in (0, 1], got {args.target_recall}")
    if (args.run_dir is None) == (args.from_shards is None):
        raise UsageError("give a run directory, or --from-shards DIR (with --out), not both")
    if args.from_shards is not None:
        return _index_from_shards(args)

    t = time.perf_counter()
    out = Path(args.out) if args.out else Path(args.run_dir) / "index"
    check_output(out, INDEX_ARTEFACT, overwrite=args.overwrite)   # before the slow part
    run = load_run(args.run_dir, device=args.device)
    if args.lexical_weight:

        search = PinSearch.from_run(run, kind=args.kind, dim=args.dim, lexical_weight=args.lexical_weight)
        index = search.index
    else:
        index = catalogue_index(run.graph, run.embed_pins(dim=args.dim), kind=args.kind)
    if args.target_recall is not None:
        if index.kind == "flat":
            print("flat index: exact search, nothing to tune")
        else:

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                res = index.tune(target_recall=args.target_recall)
            print(res.sweep.to_string(index=False, formatters={"recall": "{:.3f}".format,
                                                                "queries_per_s": "{:.0f}".format,
                                                                "speedup": "{:.1f}x".format}))
            print(f"{res.param} = {res.value}: Recall@{res.k} {res.recall:.3f} on {res.n_queries} {res.queries} "
                  f"({'reached' if res.reached else 'NOT reached'}: target {res.target_recall}), "
                  f"{res.speedup:.1f}x the queries/s of exact search")
            for w in caught:  # e.g. the fix when the target is out of reach, as one plain line
                print(f"boardgraph index: warning: {w.message}", file=sys.stderr)
    if args.lexical_weight:
        search.save_index(out, overwrite=args.overwrite)
    else:
        index.save(out, overwrite=args.overwrite)
    cols = [] if index.metadata is None else list(index.metadata.columns)
    print(f"{index.kind} index of {len(index)} pins ({index.dim}-d), filter columns {cols}, saved to {out} "
          f"in {time.perf_counter() - t:.1f} s")
    return 0


def _index_from_shards(args: argparse.Namespace) -> int:
    """``index --from-shards``: an IVF-PQ index built shard by shard, its memory and its recall."""
    if not args.out:
        raise UsageError("--from-shards needs --out DIR (where the index goes)")
    t = time.perf_counter()
    cfg = IndexConfig(kind="ivfpq", pq_m=args.pq_m, nlist=args.nlist, nprobe=args.nprobe, rerank=args.rerank)
    index = EmbeddingIndex.from_shards(args.from_shards, args.out, cfg, train_size=args.train_size,
                                       overwrite=args.overwrite)
    built = time.perf_counter() - t
    ids_bytes = int(np.asarray(index.ids).nbytes) // max(1, len(index))
    print(f"ivfpq index of {len(index)} pins ({index.dim}-d) saved to {args.out} in {built:.1f} s: nlist "
          f"{index.config.nlist}, nprobe {index.config.nprobe}, {index.config.rerank}x candidates re-ranked exactly")
    print(f"bytes per vector: {index.code_bytes} of PQ code + 8 of FAISS list id + {ids_bytes} of external id in "
          f"memory; {4 * index.dim} of exact vector on disk (vectors.npy, read to re-rank)")
    if args.check_queries > 0:
        rec = recall_on_shards(index, EmbeddingShards.open(args.from_shards), k=10, n_queries=args.check_queries)
        print(f"Recall@10 {rec['recall']:.3f} against exact search on {rec['queries']} stored pins (each excluding "
              f"itself), {rec['index_queries_per_s'] / rec['exact_queries_per_s']:.1f}x exact search's queries/s")
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    search = open_search(args.run_dir, args.index, args.lexical_weight)
    flt = filters(args.filter, search.index.metadata)
    if args.pin is not None:
        df = search.similar(args.pin, k=args.k, filter=flt)
    elif args.text is not None:
        df = search.search_by_text(args.text, k=args.k, filter=flt)
    else:
        df = search.match_content(args.image, k=args.k, filter=flt)
    print_table(df)
    return 0


def _cmd_place(args: argparse.Namespace) -> int:
    if args.text is None and args.image is None and not args.meta:
        raise UsageError("give the new pin's content: --text, --image and/or --meta key=value")
    search = open_search(args.run_dir, args.index, args.lexical_weight)
    meta = dict(pairs(args.meta, "--meta"))
    placed = search.place_new_pin(image=args.image, text=args.text, metadata=meta or None, k_boards=args.k_boards,
                                  k_pins=args.k_pins)
    print("suggested boards:")
    print_table(placed.boards)
    print("\nnearest pins:")
    print_table(placed.pins)
    return 0


def _cmd_export_onnx(args: argparse.Namespace) -> int:
    parent = Path(args.out).resolve().parent
    if not parent.is_dir():
        raise UsageError(f"the folder {parent} for {args.out} does not exist; create it first")
    run = load_run(args.run_dir)
    feats, n = run.graph.features("pin"), run.graph.num_nodes("pin")
    encoder = copy.deepcopy(run.encoder).cpu()
    example = run.builder(feats, torch.arange(min(8, n)))
    path = export_onnx(encoder, args.out, example, opset=args.opset, atol=args.atol)
    session = OnnxPinEncoder(path)
    print(f"exported the {'/'.join(encoder.modalities)} encoder ({encoder.config.embed_dim}-d) to {path}")
    checks = [("export example", example), ("other pins", run.builder(feats, torch.arange(max(0, n - 3), n)))]
    for what, x in checks:
        with torch.no_grad():
            want = encoder(x).embedding
        err = float((session(x) - want).abs().max())
        print(f"parity ({what}, {x.batch_size} pins): max |onnx - torch| = {err:.2e}  "
              f"{'ok' if err <= args.atol else 'FAILED'} (atol {args.atol:g})")
        if err > args.atol:
            return 1
    return 0


def _add_index_options(p: argparse.ArgumentParser) -> None:
    """``--index`` and ``--lexical-weight``, which ``search`` and ``place`` share."""
    p.add_argument("--index", help="saved index directory (default RUN_DIR/index when present)")
    p.add_argument("--lexical-weight", type=float, default=0.0, help=LEXICAL_WEIGHT_HELP)


def _add_shard_options(i: argparse.ArgumentParser) -> None:
    """``index``'s options for ``--from-shards`` and the IVF-PQ settings."""
    i.add_argument("--from-shards", metavar="DIR",
                   help="build an ivfpq index from embedding shards (train --embed-shards), shard by shard, "
                        "without holding every vector; prints its bytes per vector and its Recall@10")
    i.add_argument("--pq-m", type=int, default=32, help="ivfpq: code bytes per vector (default 32)")
    i.add_argument("--nlist", type=int, help="ivf/ivfpq cells (default 4 sqrt(N))")
    i.add_argument("--nprobe", type=int, help="ivf/ivfpq cells probed per query (default nlist / 4)")
    i.add_argument("--rerank", type=int, default=10, help="ivfpq: candidates re-ranked exactly, times k (default 10)")
    i.add_argument("--train-size", type=int, default=100_000, help="ivfpq from shards: vectors sampled to train on")
    i.add_argument("--check-queries", type=int, default=1000,
                   help="from shards: stored pins whose Recall@10 against exact search is reported (0: skip)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``embed``, ``index``, ``search``, ``place`` and ``export-onnx`` to the subcommands ``sub``."""
    e = sub.add_parser("embed", help="embed every pin of a trained run's graph (.npy)", epilog=EPILOG_EMBED,
                       formatter_class=RAW)
    e.add_argument("run_dir", help=RUN_HELP)
    e.add_argument("--out", help="output .npy (default RUN_DIR/embeddings.npy, or embeddings_<dim>.npy)")
    e.add_argument("--dim", type=int, help="keep this Matryoshka prefix (renormalised)")
    e.add_argument("--overwrite", action="store_true", help="recompute even if the file is up to date")
    e.add_argument("--device", default="cpu", help="where the encoder runs (cpu, cuda)")
    e.set_defaults(fn=_cmd_embed)
    i = sub.add_parser("index", help="build and save a FAISS index over a run's pin embeddings", epilog=EPILOG_INDEX,
                       formatter_class=RAW)
    i.add_argument("run_dir", nargs="?", help=RUN_HELP + " (or --from-shards)")
    i.add_argument("--kind", choices=("flat", "hnsw", "ivf", "ivfpq"), default="flat", help="exact or approximate")
    _add_shard_options(i)
    i.add_argument("--out", help="index directory (default RUN_DIR/index)")
    i.add_argument("--overwrite", action="store_true",
                   help="replace an index already saved there (anything else there is never replaced)")
    i.add_argument("--dim", type=int, help="index this Matryoshka prefix")
    i.add_argument("--device", default="cpu", help="where the encoder runs when embedding is needed")
    i.add_argument("--lexical-weight", type=float, default=0.0,
                   help="build a hybrid index: learned embeddings + TF-IDF of the pins' text at this weight "
                        "(saved with its vectorizer; search and place then use it)")
    i.add_argument("--target-recall", type=float, metavar="R",
                   help="hnsw/ivf: set ef_search/nprobe to the smallest value whose Recall@10 against exact "
                        "search reaches R (measured on 500 held-out pins; see below)")
    i.set_defaults(fn=_cmd_index)
    s = sub.add_parser("search", help="pins similar to a pin, a text or an image", epilog=EPILOG_SEARCH,
                       formatter_class=RAW)
    s.add_argument("run_dir", help=RUN_HELP)
    q = s.add_mutually_exclusive_group(required=True)
    q.add_argument("--pin", help="a pin id of the run's graph")
    q.add_argument("--text", help="a free-text query")
    q.add_argument("--image", help="an image file")
    s.add_argument("--k", type=int, default=10, help="results (default 10)")
    s.add_argument("--filter", action="append", metavar="COL=VALUE", help="keep pins with this value (repeatable)")
    _add_index_options(s)
    s.set_defaults(fn=_cmd_search)
    pl = sub.add_parser("place", help="suggest boards and neighbours for a new pin (cold start)",
                        epilog=EPILOG_PLACE, formatter_class=RAW)
    pl.add_argument("run_dir", help=RUN_HELP)
    pl.add_argument("--text", help="the new pin's text (title)")
    pl.add_argument("--image", help="the new pin's image file")
    pl.add_argument("--meta", action="append", metavar="KEY=VALUE", help="a metadata field, e.g. brand=Cobble")
    pl.add_argument("--k-boards", type=int, default=5, help="boards to suggest (default 5)")
    pl.add_argument("--k-pins", type=int, default=10, help="nearest pins to list (default 10)")
    _add_index_options(pl)
    pl.set_defaults(fn=_cmd_place)
    x = sub.add_parser("export-onnx", help="export a run's encoder to ONNX and check parity with torch",
                       epilog=EPILOG_EXPORT, formatter_class=RAW)
    x.add_argument("run_dir", help=RUN_HELP)
    x.add_argument("out", help="the .onnx file to write")
    x.add_argument("--opset", type=int, default=17)
    x.add_argument("--atol", type=float, default=1e-4, help="largest allowed |onnx - torch| (default 1e-4)")
    x.set_defaults(fn=_cmd_export_onnx)
