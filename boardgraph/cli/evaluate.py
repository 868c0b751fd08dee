"""``boardgraph evaluate`` (models on held-out splits -> a report) and ``boardgraph models`` (the
model kinds it accepts, from :data:`boardgraph.models.MODEL_KINDS`)."""
from __future__ import annotations

import argparse
import copy
from pathlib import Path

from boardgraph.cli._common import RAW, UsageError, print_checks
from boardgraph.evaluation.audit import matching_labels
from boardgraph.evaluation.harness import LEXICAL_SUFFIX, check_models
from boardgraph.evaluation.report import markdown_table
from boardgraph.evaluation.study import evaluate_graph
from boardgraph.models import MODEL_KINDS
from boardgraph.training.config import ConfigError, TrainConfig
from boardgraph.training.factory import load_graph_for

__all__ = ["register", "model_choices"]

DEFAULT_MODELS = ["random", "popularity", "content", "neighbor"]


def model_choices() -> list[str]:
    """What ``--models`` accepts: every registered kind and the ``+tfidf`` hybrid of each embedding kind."""
    return list(MODEL_KINDS.names()) + [f"{k.name}{LEXICAL_SUFFIX}" for k in MODEL_KINDS if k.hybrid_base]


def _models_help() -> str:
    fams = {f: ", ".join(MODEL_KINDS.names(f)) for f in ("trained", "scorer", "embedding")}
    return (f"models: trained kinds ({fams['trained']}), scorers ({fams['scorer']}), embedding baselines "
            f"({fams['embedding']}) and hybrids with TF-IDF ('neighbor{LEXICAL_SUFFIX}', after 'neighbor'); "
            f"`boardgraph models` describes them; default: {' '.join(DEFAULT_MODELS)}")


EPILOG_EVALUATE = """examples:
  boardgraph evaluate --graph out/graph --out reports/mine                      # content vs neighbor + baselines
  boardgraph evaluate --config run.yaml --models popularity content coboard neighbor --seeds 0 1 2 \\
      --holdout 0.2 --cold 0.1 --audit-by category --out reports/mine
"""


def _cmd_evaluate(args: argparse.Namespace) -> int:
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
    if args.label_match:
        try:
            matching_labels(graph, args.label_match)
        except KeyError as e:
            raise ConfigError(f"--label-match {args.label_match!r}: {e.args[0]}") from None
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
           f"{f' --lexical-weight {args.lexical_weight}' if any(m.endswith('+tfidf') for m in args.models) else ''}"
           f"{f' --label-match {args.label_match}' if args.label_match else ''}")
    res = evaluate_graph(graph, out, models=args.models, seeds=args.seeds, make_config=make,
                         title=f"boardgraph evaluation: {base.data.source}", holdout=args.holdout, cold=args.cold,
                         audit_by=args.audit_by, notes=f"Command: `{cmd}`.", lexical_weight=args.lexical_weight,
                         label=args.label_match)

    print(markdown_table(res.table))
    if res.label_table is not None:
        print(f"\nLabel precision@10 (share of a board's top 10 with the board's {args.label_match}):\n")
        print(markdown_table(res.label_table))
    print_checks(res.checks)
    print(f"\nreport: {res.report}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    if args.markdown:
        print(MODEL_KINDS.markdown())
    else:
        for k in MODEL_KINDS:
            print(f"{k.name:<12} {k.family:<10} {k.summary}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``evaluate`` and ``models`` to the subcommands ``sub``."""
    ev = sub.add_parser("evaluate", help="train models on held-out splits, score board completion (warm and cold), "
                                         "write a Markdown report with plots", epilog=EPILOG_EVALUATE,
                        formatter_class=RAW)
    ev.add_argument("--config", help="base TrainConfig (YAML/JSON); each model kind trains a copy of it")
    ev.add_argument("--graph", help="saved graph directory (overrides the config's data.source)")
    ev.add_argument("--models", nargs="+", default=DEFAULT_MODELS, metavar="MODEL", choices=model_choices(),
                    help=_models_help())
    ev.add_argument("--seeds", nargs="+", type=int, default=[0], help="one split and training seed per seed")
    ev.add_argument("--lexical-weight", type=float, default=0.5,
                    help="weight of the TF-IDF cosine in the '+tfidf' hybrids (default 0.5)")
    ev.add_argument("--holdout", type=float, default=0.2, help="share of memberships held out (warm queries)")
    ev.add_argument("--cold", type=float, default=0.1, help="share of pins held out entirely (cold start)")
    ev.add_argument("--steps", type=int, help="override run.steps of every trained model")
    ev.add_argument("--audit-by", nargs="*", default=[], help="pin features to slice Recall@10 by (bias audit)")
    ev.add_argument("--label-match", metavar="FEATURE",
                    help="a feature of both boards and pins (e.g. style): also score label precision@10, the "
                         "share of a board's top 10 suggestions with the board's value (not capped like Recall@10)")
    ev.add_argument("--out", required=True, help="report folder (report.md, PNG plots, runs/)")
    ev.add_argument("--no-progress", action="store_true", help="no progress bars")
    ev.set_defaults(fn=_cmd_evaluate)
    m = sub.add_parser("models", help="list the model kinds `evaluate --models` accepts")
    m.add_argument("--markdown", action="store_true", help="as the README's Markdown list")
    m.set_defaults(fn=_cmd_models)
