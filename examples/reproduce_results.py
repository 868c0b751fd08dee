"""Reproduce the README's results tables: every model on the four data sets, with reports.

    python examples/reproduce_results.py synthetic            # embedded synthetic lookbooks
    python examples/reproduce_results.py dense                # their dense preset (user histories)
    python examples/reproduce_results.py steam                # ../shared/data/steam-bundles
    python examples/reproduce_results.py polyvore             # ../shared/data/polyvore (+ fill-in-the-blank)
    python examples/reproduce_results.py all --seeds 0 1 2 --out results
    python examples/reproduce_results.py steam --finetune --device cuda --seeds 0 1 2 3 4   # GPU

Each data set gets ``<out>/<data>/report.md`` with the main table (models x metrics, warm and
cold, paired differences to content-only and to pairwise co-board training), Recall@K curves,
similarity histograms, the degree distribution, cross-modal retrieval and a bias audit.

Protocols:

* synthetic: 2,000 pins / 200 boards; 15% of memberships held out (warm), 10% of pins held out
  entirely (cold).
* dense: the generator's dense preset (2,000 pins, 600 user-history boards of 50-150 pins, a heavy
  popularity tail, hidden taste groups that no modality shows); 20% of memberships held out, 10%
  of pins cold; text tower MiniLM-L6 (frozen) when installed. The local stand-in for dense
  collaborative data.
* steam: identical bundles ("twins") reduced to one copy (a twin's training pins would reveal the
  held-out pins of its copy); 20% of memberships held out, 10% of items cold. Text tower: MiniLM-L6
  (frozen) when the ``pretrained`` extra is installed.
* polyvore: outfits touched by a fill-in-the-blank question are never trained on
  (:func:`boardgraph.evaluation.splits.split_reserved_boards`); 20% of the other outfits' items are held out
  (items never recur across outfits, so every held-out item is cold). Outfit completion ranks the
  held-out (new) items for each outfit; fill-in-the-blank accuracy is strict (fully resolved questions) and relaxed (full +
  partial), with 1/ties credit.

Every table ranks warm queries among every pin that is not cold, and cold queries twice: among the
new items only and among all pins (:mod:`boardgraph.evaluation.completion`); the sanity checks (random at
K / |candidates|, the Recall@K ceiling, popularity against the trained models) end each report.

Models: random, popularity, itemknn, ease, pixie, bpr (collaborative filtering on the training
memberships, :mod:`boardgraph.evaluation.baselines.cf`), minilm (pretrained text only, no training), tfidf (TF-IDF of the pins'
words, no training), towers (frozen tower features, no training), content (content-only training),
coboard (pairwise co-board contrastive), pinsage (random-walk GNN) and neighbor (ours: PinCLIP
neighbor alignment); ``<model>+tfidf`` is the hybrid of a model's embeddings with TF-IDF (cosines
mixed half and half, :func:`boardgraph.inference.lexical.hybrid_embeddings`). Each seed draws its own split
and trains every model on it.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from boardgraph.evaluation.baselines import PinSageConfig, minilm_available  # noqa: E402
from boardgraph.evaluation.demo import demo_config  # noqa: E402
from boardgraph.models import MODEL_KINDS  # noqa: E402
from boardgraph.graph import MEMBER  # noqa: E402
from boardgraph.evaluation.report import markdown_table  # noqa: E402
from boardgraph.evaluation.audit import majority_board_label  # noqa: E402
from boardgraph.evaluation.study import evaluate_graph  # noqa: E402

DEFAULT_MODELS = ["random", "popularity", "itemknn", "ease", "pixie", "bpr", "minilm", "tfidf", "towers", "content",
                  "coboard", "pinsage", "neighbor", "content+tfidf", "coboard+tfidf", "neighbor+tfidf"]
DATA_SETS = ("synthetic", "dense", "steam", "polyvore")
VERSUS = ("content", "coboard", "tfidf", "ease")


def steam_graph():
    from boardgraph.datasets import load_steam_bundles

    data = load_steam_bundles()
    g = data.graph
    drop = [b for group in data.twins for b in group[1:]]
    if not drop:
        return g, ""
    _, board = g.edges(MEMBER)
    eids = torch.nonzero(torch.isin(board, g.index("board", drop))).squeeze(1)
    note = f"{len(drop)} twin bundles reduced to their first copy ({eids.numel()} memberships dropped)."
    return g.remove_edges(MEMBER, eids=eids), note


def run(data: str, args, out: Path) -> Path:
    # The lookbook keeps the tiny random text tower of `make demo`; the dense preset and the real data
    # sets use the frozen MiniLM-L6 when it is installed (the `minilm` baseline is then the `towers`
    # text part, so it is left out on the two synthetic sets).
    text = args.text or ("hf_text" if args.text_path else
                         "minilm_l6" if minilm_available() and data != "synthetic" else "hf_text")
    models = [m for m in args.models if not (m == "minilm" and data in ("synthetic", "dense"))]
    kwargs: dict = {}
    note = ""
    holdout, cold, steps, batch = 0.2, 0.1, args.steps or 300, 128
    audit_by: list[str] = []
    if data == "synthetic":
        from boardgraph.datasets import synthetic_lookbooks

        graph = synthetic_lookbooks(2000, 200, seed=0)
        holdout, steps, batch = 0.15, args.steps or 150, 256
        audit_by = ["category"]
        kwargs["label"] = "style"    # style precision@10: the share of a board's top 10 in its hidden style
    elif data == "dense":
        from boardgraph.datasets import synthetic_lookbooks

        graph = synthetic_lookbooks(2000, 600, seed=0, preset="dense")
        steps, batch = args.steps or 150, 256
        audit_by = ["category"]
        # taste precision@10: the share of a board's top 10 in its main hidden taste group
        graph.features("board").add_column("taste", majority_board_label(graph, "taste"), kind="label")
        kwargs["label"] = "taste"
        note = "Dense preset: 600 user-history boards of 50-150 pins, heavy popularity tail."
    elif data == "steam":
        graph, note = steam_graph()
        audit_by = ["price"]
    else:
        from boardgraph.evaluation.splits import split_reserved_boards
        from boardgraph.datasets import load_polyvore
        from boardgraph.evaluation.fitb import fill_in_the_blank

        pv = load_polyvore()
        graph = pv.graph
        reserved = graph.index("board", pv.outfits.loc[pv.outfits["in_fitb"], "board_id"].tolist())
        kwargs["split_fn"] = lambda g, seed: split_reserved_boards(g, reserved, cold_fraction=0.2, seed=seed)
        audit_by = ["category"]

        def fitb(model, emb, exp, seed):
            s = fill_in_the_blank(emb, pv).summary()
            return {"FITB strict": s["fitb_strict"], "FITB relaxed": s["fitb_relaxed"]}

        counts = fill_in_the_blank(torch.randn(graph.num_nodes("pin"), 8), pv)
        kwargs["extra_score"] = fitb
        kwargs["extra_section"] = lambda extra: (
            f"Fill-in-the-blank: {counts.n_strict} strict questions (fully resolved) and {counts.n_relaxed} "
            f"relaxed (full + partial); chance {counts.chance('strict'):.3f} / {counts.chance('relaxed'):.3f}. "
            f"Credit 1/ties among candidates with exactly equal top scores.\n\n"
            + markdown_table(__import__("pandas").DataFrame(extra).T.rename_axis("model")))
        note = (f"{len(reserved)} outfits touched by FITB questions are never trained on; 20% of the other "
                f"outfits' items are held out (cold); outfit completion ranks these new items for each outfit.")

    def make(kind, seed):
        cfg = demo_config(kind, out / data / "runs" / f"seed{seed}", steps=steps, seed=seed)
        cfg.model.text = text
        if args.embed_dim:   # wider embeddings than the demo's 64 (prefixes 16, 32, ... up to it)
            d = args.embed_dim
            cfg.model.embed_dim, cfg.model.matryoshka_dims = d, tuple(x for x in (16, 32, 64) if x < d) + (d,)
        if args.text_path:
            cfg.model.text_kwargs["path"] = args.text_path
        if args.lexical_dim:
            cfg.model.text_kwargs["lexical_dim"] = args.lexical_dim
        cfg.run.batch_size, cfg.run.progress, cfg.run.tensorboard = batch, "off", False
        if kind == "neighbor" and args.neighbor_weights:
            cfg.objective.weights = json.loads(args.neighbor_weights)
        if args.finetune:  # fine-tune the (pretrained) towers at a small fraction of the lr
            cfg.model.freeze_towers, cfg.optim.tower_lr_scale = False, args.tower_lr_scale
        cfg.run.device = args.device
        if args.board_query:
            cfg.objective.board_query = args.board_query
        if args.id_buckets:   # a hashed ID table of that share of the pins' rows
            cfg.model.id_buckets = max(1, round(args.id_buckets * graph.num_nodes("pin")))
        return cfg

    t0 = time.perf_counter()
    cmd = f"python examples/reproduce_results.py {data} --seeds {' '.join(map(str, args.seeds))}"
    if args.models != DEFAULT_MODELS:
        cmd += f" --models {' '.join(args.models)}"
    if args.steps:
        cmd += f" --steps {args.steps}"
    if args.neighbor_weights:
        cmd += f" --neighbor-weights '{args.neighbor_weights}'"
    if args.finetune:
        cmd += f" --finetune --tower-lr-scale {args.tower_lr_scale} --device {args.device}"
    if args.text_path:
        cmd += f" --text-path {args.text_path}"
    if args.lexical_dim:
        cmd += f" --lexical-dim {args.lexical_dim}"
    if args.embed_dim:
        cmd += f" --embed-dim {args.embed_dim}"
    if args.board_query:
        cmd += f" --board-query {args.board_query}"
    if args.id_buckets:
        cmd += f" --id-buckets {args.id_buckets}"
    if args.lexical_weight != 0.5:
        cmd += f" --lexical-weight {args.lexical_weight}"
    if tuple(args.versus) != VERSUS:
        cmd += f" --versus {' '.join(args.versus)}"
    res = evaluate_graph(graph, out / data, models=models, seeds=args.seeds, make_config=make,
                         title=f"boardgraph results: {data}", holdout=holdout, cold=cold, audit_by=audit_by,
                         pinsage=PinSageConfig(steps=args.pinsage_steps),
                         versus=tuple(args.versus),
                         lexical_weight=args.lexical_weight,
                         notes=f"Command: `{cmd}`. Text tower: `{text}`{' from ' + args.text_path if args.text_path else ''} "
                               f"({'fine-tuned' if args.finetune else 'frozen'}); "
                               f"{steps} training steps, batch {batch}. "
                               f"{note}", **kwargs)
    logging.info("%s: %.0f s; report %s", data, time.perf_counter() - t0, res.report)
    print(f"\n## {data}\n")
    print(markdown_table(res.table))
    if res.label_table is not None:
        print(f"\nlabel precision@10 ({kwargs['label']}):\n")
        print(markdown_table(res.label_table))
    print("\nsanity checks:\n" + "\n".join(f"  {c}" for c in res.checks))
    return res.report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", choices=[*DATA_SETS, "all"])
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS,
                    help=f"models among {', '.join(MODEL_KINDS.names())}, and '<model>+tfidf' hybrids listed after their model")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--versus", nargs="+", default=list(VERSUS),
                    help=f"models every model is compared with, paired (default {' '.join(VERSUS)})")
    ap.add_argument("--steps", type=int, default=None,
                    help="training steps (default 150 synthetic and dense, 300 real data)")
    ap.add_argument("--pinsage-steps", type=int, default=150)
    ap.add_argument("--text", default=None, help="text tower (default minilm_l6 on real data when installed)")
    ap.add_argument("--neighbor-weights", default=None,
                    help='loss weights of the neighbor model as JSON, e.g. \'{"clip": 1, "pin_modality": 1, "pairs": 1, '
                         '"mates": 1, "board": 0.5, "matryoshka": 0.5}\' (default: the built-in ones)')
    ap.add_argument("--text-path", default=None,
                    help="local Hugging Face model folder for the hf_text tower (e.g. a copy of MiniLM)")
    ap.add_argument("--lexical-weight", type=float, default=0.5,
                    help="weight of the TF-IDF cosine in the '<model>+tfidf' hybrids (default 0.5, fixed in advance)")
    ap.add_argument("--lexical-dim", type=int, default=0,
                    help="width of the text tower's lexical branch (TF-IDF bag of tokens; 0: off)")
    ap.add_argument("--finetune", action="store_true",
                    help="fine-tune the towers (MiniLM on real data) instead of freezing them; wants a GPU")
    ap.add_argument("--tower-lr-scale", type=float, default=0.02, help="with --finetune: tower lr = lr * this")
    ap.add_argument("--embed-dim", type=int, default=0,
                    help="embedding width of the trained kinds (default: the demo's 64)")
    ap.add_argument("--device", default="auto", help="training device: auto, cpu, cuda")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy 2-core machine)")
    ap.add_argument("--board-query", choices=("centroid", "attention", "auto"),
                    help="board query of every trained kind (default: each kind's own; neighbor_cf: attention; auto: chosen on the refinement's validation copy)")
    ap.add_argument("--id-buckets", type=float, default=0.0,
                    help="a hashed ID table with this share of the pins' rows (e.g. 0.25; 0: a row per pin)")
    ap.add_argument("--out", default=None, help="output folder (default: a temporary one)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    out = Path(args.out or tempfile.mkdtemp(prefix="boardgraph-results-"))
    for data in (DATA_SETS if args.data == "all" else [args.data]):
        print(f"report: {run(data, args, out)}")


if __name__ == "__main__":
    main()
