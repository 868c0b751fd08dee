"""The ``pinsage`` baseline: :class:`PinSage` (Ying et al., KDD 2018,
https://arxiv.org/abs/1806.01973) on frozen content features (:func:`~.text.tower_features`),
trained by :func:`train_pinsage` with the max-margin loss and the hard-negative curriculum on
co-board pairs."""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from boardgraph.evaluation.splits import DataSplit
from boardgraph.models import register_model
from boardgraph.objectives import HardNegativeCurriculum, pinsage_margin_loss
from boardgraph.sampling import HardNegativeSampler, PairSampler, PinSageSampler
from boardgraph.schema import MEMBER

if TYPE_CHECKING:
    from boardgraph.evaluation.harness import RunContext

__all__ = ["PinSageConfig", "PinSageConv", "PinSage", "PinSageResult", "train_pinsage"]

log = logging.getLogger(__name__)


@dataclass
class PinSageConfig:
    """Hyper-parameters of the PinSage baseline (defaults: seconds on 2k pins on a CPU).

    The defaults were picked on the Steam bundles and the synthetic lookbooks (split seed 0):
    one layer and margin 0.3 beat two layers and PinSage's margin 0.1 there.

    ``num_neighbors`` (T) importance neighbours per pin from ``num_walks`` walks of
    ``num_traversals`` pin-board-pin hops; each step draws ``batch_size`` co-board pairs,
    ``num_negatives`` shared uniform negatives and the curriculum's hard negatives per query
    (pins ranked ``hard_rank_range`` by random-walk visits). ``neighbor_dropout``: share of pins
    whose neighbourhood is dropped in a step, so the content-only path that embeds cold pins is
    trained too.
    """

    dim: int = 128
    embed_dim: int = 128
    layers: int = 1
    num_neighbors: int = 10
    num_walks: int = 20
    num_traversals: int = 2
    restart_prob: float = 0.5
    steps: int = 150
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    margin: float = 0.3
    num_negatives: int = 32
    hard_per_epoch: int = 2
    max_hard: int = 12
    hard_rank_range: tuple[int, int] = (50, 150)
    neighbor_dropout: float = 0.5
    seed: int = 0


class PinSageConv(nn.Module):
    r"""One PinSage convolution with importance pooling (Ying et al. 2018, Algorithm 1).

    .. math::
        n_u = \sum_{v \in N(u)} \alpha_{uv}\, \mathrm{ReLU}(Q h_v + q), \qquad
        z_u = \frac{\mathrm{ReLU}(W [h_u; n_u] + w)}{\lVert \mathrm{ReLU}(W [h_u; n_u] + w) \rVert_2}

    where :math:`\alpha_{uv}` are the normalised visit counts of the random-walk neighbours.
    A node without neighbours has :math:`n_u = 0` (its content alone).

    Args:
        in_dim: width of ``h``. hidden_dim: width of the pooled messages. out_dim: width of ``z``.

    Shapes:
        ``h [N, in_dim]``, ``neighbors`` int64 ``[N, T]`` (rows of ``h``, ``-1`` padding),
        ``weights [N, T]`` (0 on padding) -> ``[N, out_dim]``, L2-normalised.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.in_dim, self.hidden_dim, self.out_dim = in_dim, hidden_dim, out_dim
        self.message = nn.Linear(in_dim, hidden_dim)
        self.update = nn.Linear(in_dim + hidden_dim, out_dim)

    def reset_parameters(self) -> None:
        self.message.reset_parameters()
        self.update.reset_parameters()

    def forward(self, h: Tensor, neighbors: Tensor, weights: Tensor) -> Tensor:
        msg = F.relu(self.message(h))                                   # [N, H]
        w = torch.where(neighbors >= 0, weights, 0.0).to(msg.dtype)     # [N, T]
        pooled = (msg[neighbors.clamp(min=0)] * w.unsqueeze(-1)).sum(1)  # [N, H]
        return F.normalize(F.relu(self.update(torch.cat([h, pooled], -1))), dim=-1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_dim}, {self.out_dim}, hidden={self.hidden_dim})"


class PinSage(nn.Module):
    """Input MLP -> ``layers`` :class:`PinSageConv` -> dense head -> L2-normalised embedding.

    Shapes: ``x [N, in_dim]``, ``neighbors`` / ``weights [N, T]`` -> ``[N, embed_dim]``.
    """

    def __init__(self, in_dim: int, config: PinSageConfig) -> None:
        super().__init__()
        d = config.dim
        self.input = nn.Sequential(nn.Linear(in_dim, d), nn.ReLU())
        self.convs = nn.ModuleList(PinSageConv(d, d, d) for _ in range(config.layers))
        self.head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, config.embed_dim))

    def forward(self, x: Tensor, neighbors: Tensor, weights: Tensor) -> Tensor:
        h = self.input(x)
        for conv in self.convs:
            h = conv(h, neighbors, weights)
        return F.normalize(self.head(h), dim=-1)


@dataclass
class PinSageResult:
    """What :func:`train_pinsage` returns: ``embeddings`` float32 ``[N_pins, E]`` on CPU, the
    trained ``model`` and the loss of every step."""

    embeddings: Tensor
    model: PinSage
    losses: list[float]


def train_pinsage(split: DataSplit, features: Tensor, config: PinSageConfig | None = None,
                  device: torch.device | str | None = None) -> PinSageResult:
    """Train :class:`PinSage` on ``split.train_graph`` and embed every pin.

    Every step propagates over all pins (importance neighbours resampled each epoch; an epoch is
    one pass of the warm pins in batches) and scores ``batch_size`` co-board pairs (a pin and one
    of its training board-mates) against shared uniform negatives plus
    ``HardNegativeCurriculum(hard_per_epoch, max_hard).num_hard(epoch)`` hard negatives per pair,
    with :func:`~boardgraph.objectives.pinsage_margin_loss`. Warm pins are embedded from their
    neighbourhood, cold pins (no training edge) from their content alone.

    Args:
        split: the split; only its training graph is seen.
        features: float ``[N_pins, F]`` frozen content features (e.g. :func:`tower_features`).
        config: hyper-parameters and seed.
        device: where the model trains (default: the device of ``features``); the walks run on the
            graph's device.

    Raises:
        ValueError: ``features`` does not have one row per pin, or no pin has a board-mate.
    """
    cfg = config or PinSageConfig()
    g = split.train_graph
    n = g.num_nodes("pin")
    if features.dim() != 2 or features.shape[0] != n:
        raise ValueError(f"features must be [N_pins={n}, F], got {tuple(features.shape)}")
    dev = torch.device(device) if device is not None else features.device
    x = features.float().to(dev)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = PinSage(x.shape[1], cfg).to(dev)
    gen = torch.Generator(device=g.device).manual_seed(cfg.seed)
    walker = PinSageSampler(g, cfg.num_neighbors, num_walks=cfg.num_walks, num_traversals=cfg.num_traversals,
                            restart_prob=cfg.restart_prob)
    pairs = PairSampler(g)
    lo, hi = cfg.hard_rank_range
    hard = HardNegativeSampler(g, (lo, hi), walker=PinSageSampler(
        g, 1, num_walks=max(50, -(-hi // 4)), num_traversals=4, restart_prob=0.3))
    curriculum = HardNegativeCurriculum(cfg.hard_per_epoch, cfg.max_hard)
    warm = torch.nonzero(g.degree(MEMBER) > 0).squeeze(1)
    if warm.numel() < 2:
        raise ValueError("the training graph has fewer than 2 pins on a board; PinSage needs co-board pairs")
    per_epoch = max(1, warm.numel() // cfg.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    all_pins = torch.arange(n, device=g.device)
    losses: list[float] = []
    model.train()
    for step in range(cfg.steps):
        epoch, i = divmod(step, per_epoch)
        if i == 0:
            nb = walker.sample(all_pins, gen)
            neighbors, weights = nb.neighbors.to(dev), nb.weights.to(dev)
            order = warm[torch.randperm(warm.numel(), generator=gen, device=g.device)]
        pp = pairs.pin_pin(order[i * cfg.batch_size:(i + 1) * cfg.batch_size], gen)
        if len(pp) == 0:
            continue
        keep = torch.rand(n, generator=gen, device=g.device).to(dev) >= cfg.neighbor_dropout
        z = model(x, torch.where(keep[:, None], neighbors, -1), weights)
        b = len(pp)
        negs = torch.randint(0, n, (b, cfg.num_negatives), generator=gen, device=g.device)
        k = curriculum.num_hard(epoch)
        if k:
            hn = hard.sample(pp.anchors, k, gen, positives=pp.positives)
            fill = torch.randint(0, n, hn.nodes.shape, generator=gen, device=g.device)
            negs = torch.cat([negs, torch.where(hn.mask, hn.nodes, fill)], 1)
        anchors, positives, negs = pp.anchors.to(dev), pp.positives.to(dev), negs.to(dev)
        loss = pinsage_margin_loss(z[anchors], z[positives], z[negs], margin=cfg.margin)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    with torch.no_grad():
        nb = walker.sample(all_pins, torch.Generator(device=g.device).manual_seed(cfg.seed + 1))
        emb = model(x, nb.neighbors.to(dev), nb.weights.to(dev)).float().cpu()
    log.info("pinsage: %d steps, final loss %.4f", len(losses), losses[-1] if losses else float("nan"))
    return PinSageResult(emb, model, losses)


@register_model("pinsage", family="embedding", needs_config=True,
                summary="PinSage (random-walk GNN) on the frozen tower features, trained on co-board pairs")
def pinsage(ctx: RunContext, seed: int, split: DataSplit) -> Tensor:
    """:func:`train_pinsage` on the towers' features, with ``ctx.option("pinsage")`` (a
    :class:`PinSageConfig`) or the defaults, under ``seed``."""
    feats, dev = ctx.features(seed, split)
    cfg = dataclasses.replace(ctx.option("pinsage") or PinSageConfig(), seed=seed)
    return train_pinsage(split, feats, cfg, device=dev).embeddings
