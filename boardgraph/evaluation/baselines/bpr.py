"""The ``bpr`` baseline: matrix factorisation trained with Bayesian personalised ranking on sampled
negatives (Rendle et al., UAI 2009, https://arxiv.org/abs/1205.2618), with the project's negative
samplers and lazy Adam on sparse gradients."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from boardgraph.evaluation.baselines.cf import board_rows
from boardgraph.evaluation.splits import DataSplit
from boardgraph.graph import PinBoardGraph
from boardgraph.models import register_model
from boardgraph.sampling import PopularityNegativeSampler, UniformNegativeSampler
from boardgraph.schema import HAS, MEMBER
from boardgraph.training.config import ConfigError

__all__ = ["BPRConfig", "BPRResult", "train_bpr", "BPRScorer"]

log = logging.getLogger(__name__)


@dataclass
class BPRConfig:
    """Hyper-parameters of BPR-MF (defaults: ~5 s on 2k pins / 60k memberships, one CPU thread).

    ``steps`` batches of ``batch_size`` memberships, drawn epoch by epoch (every training
    membership once per epoch, in random order, so a small graph gets many epochs); each
    membership ``(b, i)`` meets ``num_negatives`` negatives ``j`` from the project's
    ``negatives`` sampler (``"uniform"``: :class:`~boardgraph.sampling.UniformNegativeSampler` over
    all pins; ``"popularity"``: :class:`~boardgraph.sampling.PopularityNegativeSampler`,
    ``degree ** 0.75``); a draw that is a pin of the board is dropped. Loss per triple:
    ``-log sigmoid(u_b . v_i - u_b . v_j) + reg * (|u_b|^2 + |v_i|^2 + |v_j|^2)``, minimised by
    lazy Adam (``torch.optim.SparseAdam``) on sparse embedding gradients (a step costs
    ``O(batch_size * num_negatives * dim)``, not the size of the catalogue). The defaults were
    picked on a planted 2k-pin / 600-board / 60k-membership graph and the synthetic lookbooks
    (2k pins, 300 boards): a strong ``reg`` matters on sparse boards.
    """

    dim: int = 64
    steps: int = 1000
    batch_size: int = 1024
    lr: float = 0.003
    reg: float = 0.01
    num_negatives: int = 4
    negatives: str = "uniform"
    init_std: float = 0.1
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.negatives not in ("uniform", "popularity"):
            raise ConfigError(f"BPRConfig.negatives must be 'uniform' or 'popularity', got {self.negatives!r}")
        for name in ("dim", "steps", "batch_size", "num_negatives"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"BPRConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and self.reg >= 0 and self.init_std > 0):
            raise ConfigError(f"BPRConfig needs lr > 0, reg >= 0, init_std > 0; got {self.lr}, {self.reg}, "
                              f"{self.init_std}")


@dataclass
class BPRResult:
    """What :func:`train_bpr` returns.

    Attributes:
        board_factors: float32 ``[N_boards, D]`` on CPU (zero rows for boards without training pins).
        pin_factors: float32 ``[N_pins, D]`` on CPU (zero rows for cold pins).
        losses: mean loss of every epoch.
    """

    board_factors: Tensor
    pin_factors: Tensor
    losses: list[float] = field(default_factory=list)

    def score(self, boards: Tensor) -> Tensor:
        """float32 ``[Q, N_pins]``: ``u_b . v_i`` for the boards ``[Q]``."""
        return self.board_factors[torch.as_tensor(boards).cpu().long()] @ self.pin_factors.T


def train_bpr(split: DataSplit, config: BPRConfig | None = None) -> BPRResult:
    """Train BPR-MF on the memberships of ``split.train_graph`` (see :class:`BPRConfig`).

    Deterministic under ``config.seed`` for a given device and thread count.

    Raises:
        ConfigError: the training graph has no membership.
    """
    cfg = config or BPRConfig()
    g = split.train_graph
    n_pins, n_boards = g.num_nodes("pin"), g.num_nodes("board")
    pin, board = (t.cpu().long() for t in g.edges(MEMBER))
    if pin.numel() == 0:
        raise ConfigError("the training graph has no membership; BPR needs (board, pin) pairs to train on")
    dev = torch.device(cfg.device)
    gen = torch.Generator().manual_seed(cfg.seed)
    sample_gen = torch.Generator(device=g.device).manual_seed(cfg.seed + 1)
    sampler = (UniformNegativeSampler(g, "pin", anchor_type="board", edge_check=HAS) if cfg.negatives == "uniform"
               else PopularityNegativeSampler(g, "pin", relation=MEMBER, anchor_type="board", edge_check=HAS))
    users = torch.nn.Embedding(n_boards, cfg.dim, sparse=True)
    items = torch.nn.Embedding(n_pins, cfg.dim, sparse=True)
    with torch.no_grad():
        users.weight.copy_(torch.randn(n_boards, cfg.dim, generator=gen) * cfg.init_std)
        items.weight.copy_(torch.randn(n_pins, cfg.dim, generator=gen) * cfg.init_std)
    users, items = users.to(dev), items.to(dev)
    opt = torch.optim.SparseAdam([users.weight, items.weight], lr=cfg.lr)
    losses: list[float] = []
    step = 0
    while step < cfg.steps:                                   # epochs: every membership once, random order
        order = torch.randperm(pin.numel(), generator=gen)
        total, count = 0.0, 0
        for s in range(0, order.numel(), cfg.batch_size):
            if step == cfg.steps:
                break
            step += 1
            idx = order[s:s + cfg.batch_size]
            b, i = board[idx], pin[idx]
            neg = sampler.sample(b.to(g.device), cfg.num_negatives, sample_gen, positives=i.to(g.device))
            j, mask = neg.nodes.to(dev).clamp(min=0), neg.mask.to(dev).float()            # [B, M]
            u, vi, vj = users(b.to(dev)), items(i.to(dev)), items(j)                       # [B, D], [B, D], [B, M, D]
            x = (u * vi).sum(-1, keepdim=True) - (u.unsqueeze(1) * vj).sum(-1)              # [B, M]
            n_ok = mask.sum().clamp(min=1)
            rank = (F.softplus(-x) * mask).sum() / n_ok
            l2 = (u.pow(2).sum(-1, keepdim=True) + vi.pow(2).sum(-1, keepdim=True) + vj.pow(2).sum(-1)) * mask
            loss = rank + cfg.reg * l2.sum() / n_ok
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, count = total + float(loss.detach()) * idx.numel(), count + idx.numel()
        losses.append(total / count)
    with torch.no_grad():
        bf, pf = users.weight.detach().float().cpu().clone(), items.weight.detach().float().cpu().clone()
    bf[torch.bincount(board, minlength=n_boards) == 0] = 0.0
    pf[torch.bincount(pin, minlength=n_pins) == 0] = 0.0
    log.info("bpr: %d steps (%d epochs), final loss %.4f", cfg.steps, len(losses), losses[-1])
    return BPRResult(bf, pf, losses)


@register_model("bpr", family="scorer",
                summary="BPR matrix factorisation (Rendle et al. 2009) on the training memberships, 64-d")
class BPRScorer:
    """BPR-MF (:func:`train_bpr`): a board scores a pin by ``u_b . v_i``; trained once per
    training graph, on its first :meth:`score`.

    Shapes:
        ``score(boards [Q] int64, split) -> float32 [Q, N_pins]`` on CPU; cold pins score 0.

    Args:
        config: the hyper-parameters; or give ``seed`` and any :class:`BPRConfig` field as keywords.

    Raises:
        ConfigError: both ``config`` and keywords, or an unknown field.
    """

    def __init__(self, config: BPRConfig | None = None, **fields) -> None:
        if config is not None and fields:
            raise ConfigError(f"give BPRScorer a config or BPRConfig fields {sorted(fields)}, not both")
        try:
            self.config = config or BPRConfig(**fields)
        except TypeError as e:
            raise ConfigError(f"bad option for the 'bpr' baseline: {e}") from e
        self._fit: tuple[PinBoardGraph, BPRResult] | None = None

    def __repr__(self) -> str:
        c = self.config
        return f"{type(self).__name__}(dim={c.dim}, steps={c.steps}, negatives={c.negatives!r}, seed={c.seed})"

    def fit(self, split: DataSplit) -> BPRResult:
        """The trained factors of ``split.train_graph`` (trained on the first call per graph)."""
        if self._fit is None or self._fit[0] is not split.train_graph:
            self._fit = (split.train_graph, train_bpr(split, self.config))
        return self._fit[1]

    def score(self, boards: Tensor, split: DataSplit) -> Tensor:
        return self.fit(split).score(torch.from_numpy(board_rows(boards, split.train_graph.num_nodes("board"))))
