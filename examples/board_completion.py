"""Board completion, warm and cold start: trained kinds and baselines over several seeds.

    python examples/board_completion.py synthetic --seeds 0 1 --models random popularity content coboard pinsage neighbor
    python examples/board_completion.py steam --text minilm_l6 --seeds 0 1 \
        --models random popularity minilm towers content coboard pinsage neighbor

``steam`` needs ../shared/data (or $BOARDGRAPH_DATA) and, for ``--text minilm_l6`` and the
``minilm`` baseline, the ``pretrained`` extra. Identical Steam bundles ("twins") are reduced to
one bundle each unless ``--keep-twins``: a twin's training pins would otherwise reveal the
held-out pins of its copy. Each seed draws its own split (``--holdout`` of the memberships,
``--cold`` of the pins held out entirely) and trains every model on it.

Prints a Markdown table (means over seeds with 95% CIs; differences to content-only and to
pairwise co-board, paired bootstrap pooled over seeds), the warm and cold Recall@K curves and, for
trained models, image <-> text retrieval.
"""
import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from boardgraph.baselines import PinSageConfig  # noqa: E402
from boardgraph.demo import demo_config  # noqa: E402
from boardgraph.experiments import MODELS, format_table, run_experiment  # noqa: E402


def markdown(df) -> str:
    """A numeric DataFrame as a Markdown table (3 decimals)."""
    head = [df.index.name or ""] + [f"K={c}" for c in df.columns]
    rows = ["| " + " | ".join([str(i)] + [f"{v:.3f}" for v in r]) + " |" for i, r in zip(df.index, df.to_numpy())]
    return "\n".join(["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)] + rows)


def load(name: str, keep_twins: bool):
    if name == "synthetic":
        from boardgraph.datasets import synthetic_lookbooks

        return synthetic_lookbooks(2000, 200, seed=0)
    from boardgraph.datasets import load_steam_bundles

    data = load_steam_bundles()
    g = data.graph
    if keep_twins or not data.twins:
        return g
    drop = [b for group in data.twins for b in group[1:]]
    _, board = g.edges(("pin", "in", "board"))
    eids = torch.nonzero(torch.isin(board, g.index("board", drop))).squeeze(1)
    logging.info("steam: %d twin bundles reduced to their first copy (%d memberships dropped)", len(drop), eids.numel())
    return g.remove_edges(("pin", "in", "board"), eids=eids)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", choices=["synthetic", "steam"])
    ap.add_argument("--models", nargs="+", choices=list(MODELS),
                    default=["random", "popularity", "towers", "content", "coboard", "pinsage", "neighbor"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--steps", type=int, default=150, help="training steps of the trained kinds")
    ap.add_argument("--pinsage-steps", type=int, default=150)
    ap.add_argument("--text", default="hf_text", help="text tower (registry name), e.g. minilm_l6")
    ap.add_argument("--holdout", type=float, default=0.2)
    ap.add_argument("--cold", type=float, default=0.1)
    ap.add_argument("--keep-twins", action="store_true", help="steam: keep identical bundles")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is fastest on a busy machine)")
    ap.add_argument("--out", default=None, help="run directory (default: a temporary one)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    graph = load(args.data, args.keep_twins)
    out = Path(args.out or tempfile.mkdtemp(prefix="boardgraph-bc-"))

    def make(kind, seed):
        cfg = demo_config(kind, out / f"seed{seed}", steps=args.steps, seed=seed)
        cfg.model.text = args.text
        cfg.run.batch_size, cfg.run.progress, cfg.run.tensorboard = 128, "off", False
        return cfg

    t0 = time.perf_counter()
    exp = run_experiment(graph, args.models, args.seeds, make, holdout=args.holdout, cold=args.cold,
                         pinsage=PinSageConfig(steps=args.pinsage_steps))
    print(f"\n## Board completion ({args.data}, text tower {args.text}, {time.perf_counter() - t0:.0f} s)\n")
    print(format_table(exp))
    for group in ("warm", "cold"):
        print(f"\n{group} Recall@K (mean over seeds):\n")
        print(markdown(exp.curves(group)))
    cm = {m: exp.run(m, s).cross_modal.summary() for m in exp.models for s in exp.seeds[:1]
          if exp.run(m, s).cross_modal is not None}
    if cm:
        print(f"\nimage <-> text retrieval (seed {exp.seeds[0]}):\n")
        print("| model | i2t R@1 | i2t R@10 | i2t MRR | t2i R@1 | t2i R@10 | t2i MRR |\n" + "|" + " --- |" * 7)
        keys = ("i2t_recall@1", "i2t_recall@10", "i2t_mrr", "t2i_recall@1", "t2i_recall@10", "t2i_mrr")
        for m, s in cm.items():
            print(f"| {m} | " + " | ".join(f"{s[k]:.3f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
