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
from boardgraph.evaluation.study import evaluate_graph
from boardgraph.models import MODEL_KINDS
from boardgraph.training.config import TrainConfig

__all__ = ["style_purity", "demo_config", "run_demo", "DemoResult", "DEMO_MODELS"]


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
    the protocol's sanity checks (:func:`~boardgraph.evaluation.harness.sanity_checks`)."""

    table: "pd.DataFrame"
    report: Path
    purity: dict[str, tuple[float, float]]
    seconds: float
    checks: list[str] = field(default_factory=list)


DEMO_MODELS = ("random", "popularity", "itemknn", "ease", "pixie", "bpr", "content", "neighbor")


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
                         audit_by=["category"],
                         notes=f"Command: `boardgraph demo --pins {n_pins} --boards {n_boards} --steps {steps} "
                               f"--seed {seed}`. {n_pins} pins on {n_boards} boards curated by 12 hidden styles.")
    style = torch.as_tensor(graph.features("pin").table["style"].to_numpy().astype("int64"))
    purity = {}
    for m in res.experiment.models:
        emb = res.experiment.run(m, seed).embeddings
        if emb is not None:
            purity[m] = (style_purity(emb, style), style_purity(emb[:, :16], style))
    return DemoResult(res.table, res.report, purity, time.perf_counter() - t0, res.checks)
