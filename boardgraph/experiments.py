"""Comparing model kinds on one split: train each, embed every pin, score board completion (warm
and cold), and pair each model with a reference by bootstrap over the query boards."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from boardgraph.config import TrainConfig
from boardgraph.data import DataSplit
from boardgraph.evaluate import BoardCompletion, board_completion
from boardgraph.stats import BootstrapResult, paired_bootstrap

__all__ = ["ModelRun", "compare_models", "format_table"]


@dataclass
class ModelRun:
    kind: str
    completion: BoardCompletion
    seconds: float
    vs_reference: dict[str, BootstrapResult] = field(default_factory=dict)


def compare_models(split: DataSplit, kinds: list[str], make_config: Callable[[str], TrainConfig],
                   reference: str = "content", metric: str = "recall@10") -> list[ModelRun]:
    """Train ``make_config(kind)`` for each kind on ``split`` and score board completion; each run's
    ``vs_reference`` holds the paired bootstrap of ``metric`` (warm and cold) against ``reference``."""
    from boardgraph.embed import embed_pins, load_embeddings
    from boardgraph.trainer import Trainer

    runs = []
    for kind in kinds:
        t0 = time.perf_counter()
        cfg = make_config(kind)
        trainer = Trainer(cfg, split=split)
        trainer.fit()
        n = split.graph.num_nodes("pin")
        path = embed_pins(trainer.model.encoder, n, Path(cfg.run.out_dir) / "embeddings.npy", cache=trainer.cache,
                          builder=trainer.builder, features=split.graph.features("pin"), device=trainer.device)
        runs.append(ModelRun(kind, board_completion(load_embeddings(path), split), time.perf_counter() - t0))
    ref = next((r for r in runs if r.kind == reference), None)
    if ref is not None:
        for r in runs:
            if r is not ref:
                r.vs_reference = {g: paired_bootstrap(getattr(r.completion, g)[metric], getattr(ref.completion, g)[metric])
                                  for g in ("warm", "cold")}
    return runs


def format_table(runs: list[ModelRun], metric: str = "recall@10", reference: str = "content") -> str:
    """A Markdown table: warm/cold ``metric``, MRR, cold/warm ratio, and the paired difference to
    the reference with its 95% CI."""
    lines = [f"| model | warm {metric} | cold {metric} | warm MRR | cold/warm | warm - {reference} [95% CI] |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in runs:
        w, c = r.completion.warm, r.completion.cold
        ratio = c[metric].mean / w[metric].mean if w[metric].mean else float("nan")
        d = r.vs_reference.get("warm")
        diff = f"{d.estimate:+.3f} [{d.low:+.3f}, {d.high:+.3f}]" if d else "-"
        lines.append(f"| {r.kind} | {w[metric].mean:.3f} | {c[metric].mean:.3f} | {w['mrr'].mean:.3f} | "
                     f"{ratio:.2f} | {diff} |")
    return "\n".join(lines)
