"""The main job on the embedded default: synthetic lookbooks -> graph -> train content-only and
neighbor-alignment models -> board completion (warm and cold start) against baselines -> report,
plus how well the embeddings recover the hidden styles."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from boardgraph.datasets import synthetic_lookbooks
from boardgraph.evaluation.audit import matching_labels
from boardgraph.evaluation.completion import board_completion
from boardgraph.evaluation.harness import Experiment
from boardgraph.evaluation.splits import DataSplit
from boardgraph.graph import PinBoardGraph
from boardgraph.evaluation.study import evaluate_graph
from boardgraph.models import MODEL_KINDS
from boardgraph.training.config import TrainConfig

__all__ = ["style_purity", "demo_config", "run_demo", "headline", "StyleOracle", "DemoResult", "DEMO_MODELS"]


def style_purity(emb: Tensor, style: Tensor, k: int = 10) -> float:
    """Mean fraction of each pin's ``k`` nearest pins (cosine on ``emb [N, E]``, itself excluded)
    that share its hidden ``style [N]``. Chance level is about ``1 / num_styles``."""
    emb = F.normalize(emb.float(), dim=1)
    sim = emb @ emb.T
    sim.fill_diagonal_(-2.0)
    nn = sim.topk(k, dim=1).indices
    return (style[nn] == style[:, None]).float().mean().item()


def demo_config(kind: str, out_dir: str | Path, n_pins: int = 2000, n_boards: int = 200, steps: int = 150,
                seed: int = 0) -> TrainConfig:
    """A small CPU-friendly config for the demo (tiny random towers, frozen and cached)."""
    cfg = TrainConfig()
    cfg.data.n_pins, cfg.data.n_boards, cfg.data.data_seed = n_pins, n_boards, seed
    m = cfg.model
    m.fusion_dim, m.embed_dim, m.matryoshka_dims, m.mate_heads, m.text_max_length = 64, 64, (16, 32, 64), 4, 16
    cfg.objective.kind, cfg.objective.num_mates = kind, 8
    cfg.optim.lr, cfg.optim.warmup_steps = 2e-3, 20
    r = cfg.run
    r.batch_size, r.steps, r.seed, r.out_dir = 256, steps, seed, str(Path(out_dir) / kind)
    r.log_every, r.checkpoint_every = 25, steps
    return cfg


@dataclass
class DemoResult:
    """What the demo produced: the main table (models x metrics, warm and cold), the report's
    path, style purity@10 of each trained model (full width and 16-d prefix), the time taken and
    the protocol's sanity checks (:func:`~boardgraph.evaluation.harness.sanity_checks`), the style
    precision@10 table (share of a board's top 10 suggestions in the board's hidden style:
    :func:`~boardgraph.evaluation.completion.label_precision`), the experiment itself, and the warm
    Recall@10 of :class:`StyleOracle` (what the data lets any model reach)."""

    table: "pd.DataFrame"
    report: Path
    purity: dict[str, tuple[float, float]]
    seconds: float
    checks: list[str] = field(default_factory=list)
    style_table: "pd.DataFrame | None" = None
    experiment: "Experiment | None" = None
    ceiling: float | None = None


DEMO_MODELS = ("random", "popularity", "itemknn", "ease", "pixie", "bpr", "content", "neighbor", "neighbor_cf")
#: The demo's headline: the recipe, and the models it must beat.
HEADLINE_MODEL, HEADLINE_AGAINST = "neighbor_cf", ("popularity", "content")


class StyleOracle:
    """A scorer that knows each pin's hidden style: pins of the board's style first, by their
    training degree. Its warm Recall@10 is about the most any model can reach on boards curated
    by style, where every pin of the style is about equally plausible (a ceiling for the demo)."""

    def __init__(self, graph: "PinBoardGraph") -> None:
        self.board_style, self.pin_style = matching_labels(graph, "style")

    def score(self, boards: Tensor, split: "DataSplit") -> Tensor:
        indptr = split.train_graph.csr(("pin", "in", "board"))[0].long()
        deg = (indptr[1:] - indptr[:-1]).float()
        same = (self.pin_style[None, :] == self.board_style[boards, None]).float()
        return same + 0.01 * torch.log1p(deg)[None, :]


def headline(res: "DemoResult", model: str = HEADLINE_MODEL,
             against: tuple[str, ...] = HEADLINE_AGAINST) -> list[str]:
    """The demo's headline lines: ``model``'s warm style precision@10 (not capped by the data) and
    Recall@10 (capped: with the oracle's ceiling), each with the paired difference [95% CI] to every
    model of ``against`` that ran. Empty when ``model`` did not run."""
    exp = res.experiment
    if exp is None or model not in exp.models:
        return []
    others = [m for m in against if m in exp.models]
    out = []
    for metric, name in (("label_precision@10", "style precision@10"), ("recall@10", "Recall@10")):
        mine = sum(exp.run(model, s).completion.warm[metric].mean for s in exp.seeds) / len(exp.seeds)
        parts = []
        for o in others:
            d = exp.paired(model, o, metric, "warm")
            parts.append(f"{o} {d.estimate:+.3f} [{d.low:+.3f}, {d.high:+.3f}]")
        out.append(f"{model} warm {name} {mine:.3f}; versus " + ", ".join(parts))
    if res.ceiling is not None:
        out[-1] += f" (ceiling here: {res.ceiling:.3f}, an oracle that knows the hidden styles)"
    return out


def run_demo(out_dir: str | Path = "runs/demo", n_pins: int = 2000, n_boards: int = 200, steps: int = 150,
             seed: int = 0, progress: bool = False, echo: Callable[[str], None] = lambda s: None,
             models: tuple[str, ...] = DEMO_MODELS) -> DemoResult:
    """The main job on the synthetic lookbooks: generate them, hold out 15% of the memberships
    (warm) and 10% of the pins (cold), train the content-only and neighbor-alignment models,
    score board completion for every group next to the random, popularity and collaborative-filtering
    baselines (ItemKNN, EASE, Pixie, BPR), write
    ``<out_dir>/report.md`` with its figures, and measure how well each model's embeddings
    recover the hidden styles (style purity@10)."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    graph = synthetic_lookbooks(n_pins, n_boards, seed=seed)
    echo(str(graph.describe()))
    echo(f"\ntraining {', '.join(m for m in models if m in MODEL_KINDS.names('trained'))} "
         f"({steps} steps each) and scoring board completion ...")

    def make(kind: str, s: int) -> TrainConfig:
        cfg = demo_config(kind, out_dir, n_pins, n_boards, steps, s)  # runs in <out_dir>/<kind>
        cfg.run.progress = "on" if progress else "off"
        return cfg

    res = evaluate_graph(graph, out_dir, models=list(models), seeds=[seed], make_config=make,
                         title="boardgraph demo: synthetic lookbooks", holdout=0.15, cold=0.1,
                         audit_by=["category"], label="style",
                         notes=f"Command: `boardgraph demo --pins {n_pins} --boards {n_boards} --steps {steps} "
                               f"--seed {seed}`. {n_pins} pins on {n_boards} boards curated by 12 hidden styles.")
    split0 = res.experiment.splits[seed]
    ceiling = board_completion(StyleOracle(graph), split0, ks=(10,)).warm["recall@10"].mean
    style = torch.as_tensor(graph.features("pin").table["style"].to_numpy().astype("int64"))
    purity = {}
    for m in res.experiment.models:
        emb = res.experiment.run(m, seed).embeddings
        if emb is not None:
            purity[m] = (style_purity(emb, style), style_purity(emb[:, :16], style))
    return DemoResult(res.table, res.report, purity, time.perf_counter() - t0, res.checks, res.label_table,
                      res.experiment, ceiling)
