"""Command line: ``boardgraph <command>`` (also ``python -m boardgraph``).

User errors (bad tables, missing files) print one line and exit with status 2; no tracebacks.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import pandas as pd

from boardgraph.graph.errors import BoardgraphError

#: Model names of ``boardgraph evaluate``: :data:`boardgraph.experiments.MODELS` and the hybrids with
#: TF-IDF (a test keeps the two lists in step).
_EMBEDDING_MODELS = ["minilm", "towers", "pinsage", "content", "coboard", "neighbor"]
EVALUATE_MODELS = (["random", "popularity", "itemknn", "ease", "pixie", "bpr", "minilm", "tfidf", "towers", "pinsage",
                    "content", "coboard", "neighbor"] + [f"{m}+tfidf" for m in _EMBEDDING_MODELS])

EPILOG_DEMO = """examples:
  boardgraph demo                         # synthetic lookbooks, 2,000 pins, about 30 s on 2 cores
  boardgraph demo --pins 10000 --boards 1000 --steps 300 --seed 1
"""
EPILOG_BUILD = """examples:
  boardgraph build memberships.csv out/graph --collection board_id --item pin_id
  boardgraph build saves.parquet out/graph --items items.csv --text title description \\
      --categorical brand category --numeric price --image image_path --on-error skip
"""

EPILOG_TRAIN = """examples:
  boardgraph train --config configs/neighbor.yaml
  boardgraph train --config run.yaml --resume --embed
  torchrun --nproc_per_node=2 -m boardgraph train --config run.yaml
"""
EPILOG_EMBED = """examples:
  boardgraph embed runs/demo/neighbor                      # -> runs/demo/neighbor/embeddings.npy
  boardgraph embed runs/demo/neighbor --dim 16 --out emb16.npy   # 16-d Matryoshka prefix
"""
EPILOG_INDEX = """examples:
  boardgraph index runs/demo/neighbor                      # exact (flat) index in runs/demo/neighbor/index
  boardgraph index runs/demo/neighbor --kind hnsw --out /srv/pins.index
  boardgraph index runs/demo/neighbor --kind hnsw --target-recall 0.95   # smallest ef_search reaching it

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


class UsageError(BoardgraphError, ValueError):
    """A malformed command-line value (e.g. a --filter without '=')."""


def _pairs(items: Sequence[str] | None, flag: str) -> list[tuple[str, str]]:
    """``["col=value", ...]`` -> ``[(col, value), ...]``."""
    out = []
    for item in items or ():
        col, sep, value = item.partition("=")
        if not sep or not col.strip():
            raise UsageError(f"{flag} {item!r} is not COLUMN=VALUE; write e.g. {flag} category=dress")
        out.append((col.strip(), value))
    return out


def _filters(items: Sequence[str] | None, metadata) -> dict[str, list] | None:
    """``--filter col=value`` pairs -> ``{col: [values]}``, values cast to the column's dtype."""
    import pandas as pd

    pairs = _pairs(items, "--filter")
    if not pairs:
        return None
    out: dict[str, list] = {}
    for col, value in pairs:
        if metadata is not None and col in metadata.columns and pd.api.types.is_numeric_dtype(metadata[col]):
            try:
                value = float(value)
            except ValueError:
                raise UsageError(f"--filter {col}={value!r}: column {col!r} is numeric; give a number") from None
        out.setdefault(col, []).append(value)
    return out


def _print_table(df) -> None:
    import pandas as pd

    with pd.option_context("display.max_colwidth", 40, "display.width", 200):
        print(df.to_string(index=False, formatters={"score": "{:.4f}".format}) if len(df) else "(no results)")


def _open_search(run_dir: str, index_dir: str | None, lexical_weight: float = 0.0):
    from pathlib import Path

    from boardgraph.apps import PinSearch, saved_lexical_weight

    auto = Path(run_dir) / "index"
    # RUN_DIR/index serves when it is what was asked for (its own kind, or the same hybrid weight);
    # otherwise the hybrid is built in memory
    if index_dir is None and auto.is_dir() and lexical_weight in (0, saved_lexical_weight(auto)):
        index_dir = str(auto)
    return PinSearch.from_run(run_dir, index_dir=index_dir, lexical_weight=lexical_weight)


def _cmd_embed(args: argparse.Namespace) -> int:
    from boardgraph.runs import load_run

    t = time.perf_counter()
    run = load_run(args.run_dir, device=args.device)
    emb = run.embed_pins(path=args.out, dim=args.dim, overwrite=args.overwrite)
    path = args.out or run.embeddings_path(args.dim)
    print(f"embedded {emb.shape[0]} pins ({emb.shape[1]}-d) to {path} in {time.perf_counter() - t:.1f} s")
    return 0


def _cmd_index(args: argparse.Namespace) -> int:
    from pathlib import Path

    from boardgraph.apps import catalogue_index
    from boardgraph.index import IndexInputError
    from boardgraph.runs import load_run

    if args.target_recall is not None and not 0 < args.target_recall <= 1:  # before the slow part
        raise IndexInputError(f"target_recall must be in (0, 1], got {args.target_recall}")
    from boardgraph.graph.io import check_output
    from boardgraph.index import INDEX_ARTEFACT

    t = time.perf_counter()
    out = Path(args.out) if args.out else Path(args.run_dir) / "index"
    check_output(out, INDEX_ARTEFACT, overwrite=args.overwrite)   # before the slow part
    run = load_run(args.run_dir, device=args.device)
    if args.lexical_weight:
        from boardgraph.apps import PinSearch

        search = PinSearch.from_run(run, kind=args.kind, dim=args.dim, lexical_weight=args.lexical_weight)
        index = search.index
    else:
        index = catalogue_index(run.graph, run.embed_pins(dim=args.dim), kind=args.kind)
    if args.target_recall is not None:
        if index.kind == "flat":
            print("flat index: exact search, nothing to tune")
        else:
            import warnings

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


def _cmd_search(args: argparse.Namespace) -> int:
    search = _open_search(args.run_dir, args.index, args.lexical_weight)
    flt = _filters(args.filter, search.index.metadata)
    if args.pin is not None:
        df = search.similar(args.pin, k=args.k, filter=flt)
    elif args.text is not None:
        df = search.search_by_text(args.text, k=args.k, filter=flt)
    else:
        df = search.match_content(args.image, k=args.k, filter=flt)
    _print_table(df)
    return 0


def _cmd_place(args: argparse.Namespace) -> int:
    if args.text is None and args.image is None and not args.meta:
        raise UsageError("give the new pin's content: --text, --image and/or --meta key=value")
    search = _open_search(args.run_dir, args.index, args.lexical_weight)
    meta = dict(_pairs(args.meta, "--meta"))
    placed = search.place_new_pin(image=args.image, text=args.text, metadata=meta or None, k_boards=args.k_boards,
                                  k_pins=args.k_pins)
    print("suggested boards:")
    _print_table(placed.boards)
    print("\nnearest pins:")
    _print_table(placed.pins)
    return 0


def _cmd_export_onnx(args: argparse.Namespace) -> int:
    import copy
    from pathlib import Path

    import torch

    from boardgraph.encoders import OnnxPinEncoder, export_onnx
    from boardgraph.runs import load_run

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


EPILOG_EVALUATE = """examples:
  boardgraph evaluate --graph out/graph --out reports/mine                      # content vs neighbor + baselines
  boardgraph evaluate --config run.yaml --models popularity content coboard neighbor --seeds 0 1 2 \\
      --holdout 0.2 --cold 0.1 --audit-by category --out reports/mine
"""


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import copy
    from pathlib import Path

    from boardgraph.config import ConfigError, TrainConfig
    from boardgraph.data import load_graph_for
    from boardgraph.experiments import check_models
    from boardgraph.study import evaluate_graph

    try:
        check_models(args.models)  # before loading data or training: a hybrid listed before its model
    except ValueError as e:
        raise UsageError(f"--models: {e}") from None
    if not 0.0 <= args.lexical_weight <= 1.0:
        raise UsageError(f"--lexical-weight must be in [0, 1], got {args.lexical_weight}")
    base = TrainConfig.load(args.config) if args.config else TrainConfig()
    if args.graph:
        base.data.source = args.graph
    graph = load_graph_for(base.data)
    for attr in args.audit_by:
        if attr not in graph.features("pin").names():
            raise ConfigError(f"--audit-by {attr!r}: the pins have no feature {attr!r}; "
                              f"they have {graph.features('pin').names()}")
    out = Path(args.out)
    if args.no_progress:
        base.run.progress = "off"

    def make(kind: str, seed: int) -> TrainConfig:
        cfg = copy.deepcopy(base)
        cfg.objective.kind, cfg.run.seed = kind, seed
        cfg.objective.weights = base.objective.weights if base.objective.kind == kind else None
        cfg.run.out_dir = str(out / "runs" / f"seed{seed}" / kind)
        if args.steps:
            cfg.run.steps = args.steps
        return cfg

    cmd = (f"boardgraph evaluate {'--config ' + args.config + ' ' if args.config else ''}"
           f"{'--graph ' + args.graph + ' ' if args.graph else ''}--models {' '.join(args.models)} "
           f"--seeds {' '.join(map(str, args.seeds))} --holdout {args.holdout} --cold {args.cold} --out {args.out}"
           f"{f' --lexical-weight {args.lexical_weight}' if any(m.endswith('+tfidf') for m in args.models) else ''}")
    res = evaluate_graph(graph, out, models=args.models, seeds=args.seeds, make_config=make,
                         title=f"boardgraph evaluation: {base.data.source}", holdout=args.holdout, cold=args.cold,
                         audit_by=args.audit_by, notes=f"Command: `{cmd}`.", lexical_weight=args.lexical_weight)
    from boardgraph.report import markdown_table

    print(markdown_table(res.table))
    _print_checks(res.checks)
    print(f"\nreport: {res.report}")
    return 0


def _compact(table: "pd.DataFrame") -> "pd.DataFrame":
    """The columns of a results table that fit a terminal: Recall@10 of each group, warm MRR and
    the warm difference to content-only (the report has them all)."""
    keep = [c for c in table.columns if c.endswith(" recall@10") and " / " not in c]
    keep += [c for c in ("warm mrr", "warm - content") if c in table.columns]
    return table[keep]


def _print_checks(checks: Sequence[str]) -> None:
    """The protocol's sanity checks under a results table (warnings first)."""
    if checks:
        print("\nsanity checks:")
        for c in sorted(checks, key=lambda c: not c.startswith("WARNING")):
            print(f"  {c}")


def _cmd_demo(args: argparse.Namespace) -> int:
    import shutil

    from boardgraph.demo import run_demo
    from pathlib import Path

    from boardgraph.report import markdown_table

    out = Path(args.out_dir)
    marker = out / ".boardgraph-demo"   # written first, so an interrupted demo's folder is known too
    ours = (out / "report.md").exists() or marker.exists()
    if out.is_symlink() or out.is_file() or (out.is_dir() and any(out.iterdir()) and not ours):
        raise UsageError(f"--out-dir {out} exists and is not the output of an earlier demo: the demo "
                         f"replaces its folder, so choose a new or empty one")
    shutil.rmtree(out, ignore_errors=True)  # the demo always starts fresh: only an earlier demo's folder goes
    out.mkdir(parents=True)
    marker.write_text("boardgraph demo output; `boardgraph demo` replaces this folder\n")
    res = run_demo(out, args.pins, args.boards, args.steps, args.seed, progress=not args.no_progress, echo=print)
    print("\nBoard completion (warm: held-out memberships of known pins, ranked among every known pin; "
          "cold: pins never seen in training, ranked among the new items and among all pins):\n")
    print(markdown_table(_compact(res.table)))
    _print_checks(res.checks)
    print("\nHidden-style recovery (style purity@10 of the pin embeddings; chance ~ 1/12):")
    print(f"  {'model':<10} {'purity@10':>10} {'16-d prefix':>12}")
    for kind, (full, short) in res.purity.items():
        print(f"  {kind:<10} {full:>10.3f} {short:>12.3f}")
    t = res.table
    if {"content", "neighbor"} <= set(t.index):
        w = lambda m, g: float(str(t.loc[m, f"{g} recall@10"]).split()[0])  # noqa: E731
        ratio = w("neighbor", "warm") / max(w("content", "warm"), 1e-9)
        cold_warm = w("neighbor", "cold among all pins") / max(w("neighbor", "warm"), 1e-9)
        print(f"\nneighbor alignment / content-only warm Recall@10: {ratio:.2f}x; neighbor cold (among all pins) / "
              f"warm: {cold_warm:.2f}")
    print(f"report: {res.report} (runs and embeddings in {out}/<model>; {res.seconds:.0f} s in all)")
    print(f"next: boardgraph search {out}/neighbor --pin <pin id>   |   boardgraph place {out}/neighbor --text \"...\"")
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    from boardgraph.graph import from_collections
    from boardgraph.graph.io import GRAPH_ARTEFACT, check_output

    check_output(args.out, GRAPH_ARTEFACT, overwrite=args.overwrite)   # before the slow part
    graph, report = from_collections(
        args.memberships, collection=args.collection, item=args.item, items=args.items, boards=args.boards,
        text=args.text, image=args.image, categorical=args.categorical, numeric=args.numeric,
        weight=args.weight, timestamp=args.timestamp, consent=args.consent, min_board_size=args.min_board_size,
        image_root=args.image_root, on_error=args.on_error, encoding=args.encoding,
        allow_outside_root=args.allow_outside_root,
        max_image_pixels=args.max_image_pixels if args.max_image_pixels > 0 else None)
    print(report)
    graph.save(args.out, overwrite=args.overwrite)
    print(f"saved to {args.out}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from boardgraph.config import TrainConfig
    from boardgraph.trainer import Trainer

    cfg = TrainConfig.load(args.config) if args.config else TrainConfig()
    if args.out_dir:
        cfg.run.out_dir = args.out_dir
    if args.steps:
        cfg.run.steps = args.steps
    if args.no_progress:
        cfg.run.progress = "off"
    trainer = Trainer(cfg)
    result = trainer.fit(resume=args.resume)
    if trainer.rank == 0:
        last = result.history[-1] if result.history else {}
        print(f"trained to step {result.step}; final loss {last.get('total', float('nan')):.4f}; "
              f"checkpoint and metrics in {result.out_dir}")
    if args.embed:   # the final step's weights, with the graph's fingerprint (every rank takes part)
        path = trainer.embed_pins(result.out_dir / "embeddings.npy")
        if trainer.rank == 0:
            print(f"pin embeddings written to {path}")
    trainer.close()
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    from boardgraph.graph import PinBoardGraph

    print(PinBoardGraph.load(args.graph).describe())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="boardgraph", description="Multimodal representations on Pin-Board graphs.")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="run the main job on the embedded synthetic lookbooks", epilog=EPILOG_DEMO,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("--pins", type=int, default=2000)
    d.add_argument("--boards", type=int, default=200)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--steps", type=int, default=150, help="training steps per model")
    d.add_argument("--out-dir", default="runs/demo", help="where runs go (replaced)")
    d.add_argument("--no-progress", action="store_true", help="no progress bars")
    d.set_defaults(fn=_cmd_demo)
    b = sub.add_parser("build", help="build a graph from a membership table (CSV/Parquet) and save it",
                       epilog=EPILOG_BUILD, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("memberships", help="CSV/Parquet with one row per pin on a board")
    b.add_argument("out", help="directory to save the graph to")
    b.add_argument("--collection", default="board_id", help="board id column (default board_id)")
    b.add_argument("--item", default="pin_id", help="pin id column (default pin_id)")
    b.add_argument("--items", help="pin table (CSV/Parquet) keyed by the pin id column")
    b.add_argument("--boards", help="board table keyed by the board id column")
    b.add_argument("--text", nargs="*", default=(), help="pin text columns")
    b.add_argument("--image", help="pin image path column")
    b.add_argument("--image-root", help="folder that relative image paths are relative to")
    b.add_argument("--categorical", nargs="*", default=(), help="pin categorical columns")
    b.add_argument("--numeric", nargs="*", default=(), help="pin numeric columns")
    b.add_argument("--weight", help="membership weight column")
    b.add_argument("--timestamp", help="membership timestamp column")
    b.add_argument("--consent", help="keep only rows whose consent column is true")
    b.add_argument("--min-board-size", type=int, default=1)
    b.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                   help="raise on the first bad row (default) or skip and count bad rows")
    b.add_argument("--encoding", default="utf-8", help="text encoding of CSV tables (default utf-8)")
    b.add_argument("--allow-outside-root", action="store_true",
                   help="accept image paths outside --image-root (refused by default)")
    b.add_argument("--max-image-pixels", type=int, default=89_478_485,
                   help="refuse images larger than this many pixels (default PIL's 89,478,485; 0: no limit of ours)")
    b.add_argument("--overwrite", action="store_true",
                   help="replace a graph already saved at OUT (anything else there is never replaced)")
    b.set_defaults(fn=_cmd_build)
    t = sub.add_parser("train", help="train a model from a config (YAML/JSON); runs under torchrun too",
                       epilog=EPILOG_TRAIN, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--config", help="YAML or JSON TrainConfig (default: the built-in synthetic demo config)")
    t.add_argument("--out-dir", help="override run.out_dir")
    t.add_argument("--steps", type=int, help="override run.steps")
    t.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    t.add_argument("--embed", action="store_true", help="embed every pin after training (embeddings.npy)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(fn=_cmd_train)
    s = sub.add_parser("describe", help="print counts, degree distributions and components of a saved graph")
    s.add_argument("graph", help="directory written by `boardgraph build` or graph.save()")
    s.set_defaults(fn=_cmd_describe)
    _add_inference_commands(sub)
    return p


def _add_inference_commands(sub) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    run_help = "a trained run directory (holds checkpoint.pt and config.yaml)"
    e = sub.add_parser("embed", help="embed every pin of a trained run's graph (.npy)", epilog=EPILOG_EMBED,
                       formatter_class=raw)
    e.add_argument("run_dir", help=run_help)
    e.add_argument("--out", help="output .npy (default RUN_DIR/embeddings.npy, or embeddings_<dim>.npy)")
    e.add_argument("--dim", type=int, help="keep this Matryoshka prefix (renormalised)")
    e.add_argument("--overwrite", action="store_true", help="recompute even if the file is up to date")
    e.add_argument("--device", default="cpu", help="where the encoder runs (cpu, cuda)")
    e.set_defaults(fn=_cmd_embed)
    i = sub.add_parser("index", help="build and save a FAISS index over a run's pin embeddings", epilog=EPILOG_INDEX,
                       formatter_class=raw)
    i.add_argument("run_dir", help=run_help)
    i.add_argument("--kind", choices=("flat", "hnsw", "ivf"), default="flat", help="exact or approximate")
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
                       formatter_class=raw)
    s.add_argument("run_dir", help=run_help)
    q = s.add_mutually_exclusive_group(required=True)
    q.add_argument("--pin", help="a pin id of the run's graph")
    q.add_argument("--text", help="a free-text query")
    q.add_argument("--image", help="an image file")
    s.add_argument("--k", type=int, default=10, help="results (default 10)")
    s.add_argument("--filter", action="append", metavar="COL=VALUE", help="keep pins with this value (repeatable)")
    s.add_argument("--index", help="saved index directory (default RUN_DIR/index when present)")
    s.add_argument("--lexical-weight", type=float, default=0.0,
                   help="weight of TF-IDF word matching in a hybrid index built in memory (0: learned embeddings only; 0.5 weighs them alike)")
    s.set_defaults(fn=_cmd_search)
    pl = sub.add_parser("place", help="suggest boards and neighbours for a new pin (cold start)",
                        epilog=EPILOG_PLACE, formatter_class=raw)
    pl.add_argument("run_dir", help=run_help)
    pl.add_argument("--text", help="the new pin's text (title)")
    pl.add_argument("--image", help="the new pin's image file")
    pl.add_argument("--meta", action="append", metavar="KEY=VALUE", help="a metadata field, e.g. brand=Cobble")
    pl.add_argument("--k-boards", type=int, default=5, help="boards to suggest (default 5)")
    pl.add_argument("--k-pins", type=int, default=10, help="nearest pins to list (default 10)")
    pl.add_argument("--index", help="saved index directory (default RUN_DIR/index when present)")
    pl.add_argument("--lexical-weight", type=float, default=0.0,
                    help="weight of TF-IDF word matching in a hybrid index built in memory (0: learned embeddings only; 0.5 weighs them alike)")
    pl.set_defaults(fn=_cmd_place)
    x = sub.add_parser("export-onnx", help="export a run's encoder to ONNX and check parity with torch",
                       epilog=EPILOG_EXPORT, formatter_class=raw)
    x.add_argument("run_dir", help=run_help)
    x.add_argument("out", help="the .onnx file to write")
    x.add_argument("--opset", type=int, default=17)
    x.add_argument("--atol", type=float, default=1e-4, help="largest allowed |onnx - torch| (default 1e-4)")
    x.set_defaults(fn=_cmd_export_onnx)
    ev = sub.add_parser("evaluate", help="train models on held-out splits, score board completion (warm and cold), "
                                         "write a Markdown report with plots", epilog=EPILOG_EVALUATE,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ev.add_argument("--config", help="base TrainConfig (YAML/JSON); each model kind trains a copy of it")
    ev.add_argument("--graph", help="saved graph directory (overrides the config's data.source)")
    ev.add_argument("--models", nargs="+", default=["random", "popularity", "content", "neighbor"], metavar="MODEL",
                    choices=EVALUATE_MODELS,
                    help="models: trained kinds (content, coboard, neighbor), baselines (random, popularity, "
                         "itemknn, ease, pixie, bpr, minilm, tfidf, towers, pinsage) and hybrids with TF-IDF ('neighbor+tfidf', after "
                         "'neighbor'); default: random popularity content neighbor")
    ev.add_argument("--seeds", nargs="+", type=int, default=[0], help="one split and training seed per seed")
    ev.add_argument("--lexical-weight", type=float, default=0.5,
                    help="weight of the TF-IDF cosine in the '+tfidf' hybrids (default 0.5)")
    ev.add_argument("--holdout", type=float, default=0.2, help="share of memberships held out (warm queries)")
    ev.add_argument("--cold", type=float, default=0.1, help="share of pins held out entirely (cold start)")
    ev.add_argument("--steps", type=int, help="override run.steps of every trained model")
    ev.add_argument("--audit-by", nargs="*", default=[], help="pin features to slice Recall@10 by (bias audit)")
    ev.add_argument("--out", required=True, help="report folder (report.md, PNG plots, runs/)")
    ev.add_argument("--no-progress", action="store_true", help="no progress bars")
    ev.set_defaults(fn=_cmd_evaluate)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return args.fn(args)
    except (BoardgraphError, FileNotFoundError, PermissionError) as e:
        print(f"boardgraph {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
