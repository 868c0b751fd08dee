"""Choose the TF-IDF weight of the hybrid on a validation FITB, then score the Polyvore FITB questions.

The Polyvore questions' outfits are never trained on. Here a further 20% of the other outfits
(seeded) is held out too, and :func:`boardgraph.evaluation.fitb.make_fitb_questions` turns them into
validation questions (negatives of the hidden item's category). The model trains on the rest.
Every weight of the grid is scored on the validation questions; the best one's test accuracy is
reported. So the weight is chosen without looking at the test questions.

Usage::

    python examples/fitb_lexical_weight.py --seeds 0 1 2            # ../shared/data/polyvore (or $BOARDGRAPH_DATA)
    python examples/fitb_lexical_weight.py --seeds 0 --steps 5       # smoke run

Prints one line per weight and seed, then the chosen weight's test accuracy (strict / relaxed).
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from boardgraph.evaluation.baselines import minilm_available
from boardgraph.evaluation.splits import split_reserved_boards
from boardgraph.datasets import load_polyvore
from boardgraph.evaluation.demo import demo_config
from boardgraph.inference.embed import embed_pins, load_embeddings
from boardgraph.evaluation.fitb import fill_in_the_blank, make_fitb_questions
from boardgraph.inference.lexical import hybrid_embeddings, tfidf_embeddings
from boardgraph.training.trainer import Trainer

GRID = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--kind", default="neighbor", choices=["content", "coboard", "neighbor"])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--val-fraction", type=float, default=0.2, help="share of the trainable outfits held out")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pv = load_polyvore()
    g = pv.graph
    reserved = g.index("board", pv.outfits.loc[pv.outfits["in_fitb"], "board_id"].tolist())
    free = g.index("board", pv.outfits.loc[~pv.outfits["in_fitb"], "board_id"].tolist())
    lexical = tfidf_embeddings(g)
    out = Path(args.out or tempfile.mkdtemp(prefix="boardgraph-fitb-"))
    chosen = []
    for seed in args.seeds:
        perm = torch.randperm(len(free), generator=torch.Generator().manual_seed(100 + seed))
        val = free[perm[: int(len(free) * args.val_fraction)]]
        split = split_reserved_boards(g, torch.cat([reserved, val]), cold_fraction=0.2, seed=seed)
        questions = make_fitb_questions(g, boards=val, attribute="category", n_candidates=5, seed=seed)
        cfg = demo_config(args.kind, out / f"seed{seed}", steps=args.steps, seed=seed)
        cfg.model.text = "minilm_l6" if minilm_available() else "hf_text"
        cfg.run.batch_size, cfg.run.progress, cfg.run.tensorboard = 128, "off", False
        trainer = Trainer(cfg, split=split)
        trainer.fit()
        emb = load_embeddings(embed_pins(trainer.model.encoder, g.num_nodes("pin"), Path(cfg.run.out_dir) / "emb.npy",
                                         cache=trainer.cache)).clone()
        print(f"seed {seed}: {len(val)} validation outfits, {len(questions)} validation questions "
              f"({questions.attrs['skipped']} skipped)")
        scores = {}
        for w in GRID:
            h = hybrid_embeddings(emb, lexical, w)
            test = fill_in_the_blank(h, pv).summary()
            scores[w] = (fill_in_the_blank(h, questions, g).accuracy_strict, test["fitb_strict"], test["fitb_relaxed"])
            print(f"  weight {w:.1f}: validation {scores[w][0]:.3f}, test {scores[w][1]:.3f} / {scores[w][2]:.3f}")
        best = max(GRID, key=lambda w: scores[w][0])
        chosen.append(scores[best][1:])
        print(f"seed {seed}: chosen weight {best:.1f}, test FITB {scores[best][1]:.3f} / {scores[best][2]:.3f}")
    n = len(chosen)
    print(f"\n{args.kind}+tfidf, weight chosen on validation, mean over {n} seed(s): test FITB strict "
          f"{sum(c[0] for c in chosen) / n:.3f}, relaxed {sum(c[1] for c in chosen) / n:.3f}")


if __name__ == "__main__":
    main()
