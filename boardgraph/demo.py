"""The main job on the embedded default: synthetic lookbooks -> graph -> train content-only and
neighbor-alignment models -> compare how well their embeddings recover the hidden styles."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from boardgraph.config import TrainConfig
from boardgraph.data import split_memberships

__all__ = ["style_purity", "demo_config", "run_demo", "DemoResult"]


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
    kind: str
    purity: float
    purity_16d: float
    seconds: float
    final_loss: float


def run_demo(out_dir: str | Path = "runs/demo", n_pins: int = 2000, n_boards: int = 200, steps: int = 150,
             seed: int = 0, progress: bool = False, echo: Callable[[str], None] = lambda s: None) -> list[DemoResult]:
    """Train the content-only and the neighbor-alignment model on the synthetic lookbooks and
    measure style purity@10 of their pin embeddings (full and 16-d Matryoshka prefix)."""
    from boardgraph.datasets import synthetic_lookbooks
    from boardgraph.embed import embed_pins, load_embeddings
    from boardgraph.trainer import Trainer

    graph = synthetic_lookbooks(n_pins, n_boards, seed=seed)
    echo(str(graph.describe()))
    split = split_memberships(graph)
    style = torch.as_tensor(graph.features("pin").table["style"].to_numpy().astype("int64"))
    results = []
    for kind in ("content", "neighbor"):
        echo(f"\ntraining the {kind} model ({steps} steps) ...")
        t0 = time.perf_counter()
        trainer = Trainer(demo_config(kind, out_dir, n_pins, n_boards, steps, seed), split=split, progress=progress)
        hist = trainer.fit().history
        path = embed_pins(trainer.model.encoder, n_pins, Path(out_dir) / kind / "embeddings.npy", cache=trainer.cache)
        emb = load_embeddings(path)
        results.append(DemoResult(kind, style_purity(emb, style), style_purity(emb[:, :16], style),
                                  time.perf_counter() - t0, hist[-1]["total"]))
    return results
