"""Board completion, warm and cold start: content-only vs co-board vs neighbor alignment.

    python examples/board_completion.py synthetic [--steps 150]
    python examples/board_completion.py steam --text minilm_l6      # needs ../shared/data and the pretrained extra

Prints a Markdown table with paired bootstrap CIs against the content-only model (one seed).
"""
import argparse
import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from boardgraph.data import split_memberships  # noqa: E402
from boardgraph.demo import demo_config  # noqa: E402
from boardgraph.experiments import compare_models, format_table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", choices=["synthetic", "steam"])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--text", default="hf_text", help="text tower (registry name), e.g. minilm_l6")
    ap.add_argument("--holdout", type=float, default=0.2)
    ap.add_argument("--cold", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.data == "synthetic":
        from boardgraph.datasets import synthetic_lookbooks

        graph = synthetic_lookbooks(2000, 200, seed=args.seed)
    else:
        from boardgraph.datasets import load_steam_bundles

        graph = load_steam_bundles().graph
    split = split_memberships(graph, args.holdout, args.cold, seed=args.seed)
    out = tempfile.mkdtemp(prefix="boardgraph-bc-")

    def make(kind):
        cfg = demo_config(kind, out, steps=args.steps, seed=args.seed)
        cfg.model.text = args.text
        cfg.run.batch_size, cfg.run.progress = 128, "off"
        return cfg

    runs = compare_models(split, ["content", "coboard", "neighbor"], make)
    print(format_table(runs))


if __name__ == "__main__":
    main()
