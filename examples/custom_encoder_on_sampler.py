"""Train your own ``nn.Module`` on boardgraph's sampler and loader.

The contract (see ``boardgraph.sampling.minibatch``): a :class:`MiniBatch` carries
``input_nodes["pin"]`` (the distinct pins of the batch), ``features["pin"][name]`` (row ``i`` for
``input_nodes["pin"][i]``), ``seed_local`` (each seed's row) and ``mates_local`` (``[B, K]`` rows of
its board-mates, ``-1`` padding). So a model embeds the batch's pins once and gathers rows.

Here a tiny image + metadata encoder is trained with an InfoNCE loss that pulls a pin towards its
board-mates (PinCLIP-style neighbor alignment) and pushes it from the other seeds' mates, with
in-batch positives masked. Run::

    python examples/custom_encoder_on_sampler.py --epochs 8

It prints the loss per epoch and how often a pin's nearest neighbor shares its hidden style.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from boardgraph.datasets import synthetic_lookbooks
from boardgraph.sampling import (BoardMateSampler, GraphFeatureFetcher, MiniBatch, PinBoardLoader,
                                 in_batch_negative_mask)


class PinEncoder(nn.Module):
    """Embeds pins from an image ``uint8 [N, 3, S, S]``, category/brand codes and price -> ``[N, dim]``."""

    def __init__(self, n_categories: int, n_brands: int, dim: int = 32) -> None:
        super().__init__()
        self.image = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
                                   nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                                   nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, dim))
        self.category = nn.Embedding(n_categories + 1, dim)  # last row: missing (-1)
        self.brand = nn.Embedding(n_brands + 1, dim)
        self.price = nn.Linear(1, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, feats: dict[str, Tensor]) -> Tensor:
        img = feats["image"].float() / 255.0
        cat = feats["category"].where(feats["category"] >= 0, self.category.num_embeddings - 1)
        brand = feats["brand"].where(feats["brand"] >= 0, self.brand.num_embeddings - 1)
        price = torch.log1p(feats["price"].nan_to_num(0.0).clamp(min=0)).unsqueeze(1)
        h = self.image(img) + self.category(cat) + self.brand(brand) + self.price(price)
        return F.normalize(self.out(torch.relu(h)), dim=-1)


def neighbor_alignment_loss(z: Tensor, mb: MiniBatch, temperature: float = 0.1) -> Tensor:
    """InfoNCE between each seed and its first board-mate; other seeds' mates are negatives."""
    has = mb.board_mates.mask[:, 0]
    seeds, mates = mb.seeds[has], mb.board_mates.mates[has, 0]
    zs, zm = z[mb.seed_local[has]], z[mb.mates_local[has, 0]]
    logits = zs @ zm.T / temperature
    usable = in_batch_negative_mask(seeds, mates)  # drop in-batch positives (and the seed itself)
    usable.fill_diagonal_(True)  # the diagonal holds each seed's own positive
    logits = logits.masked_fill(~usable, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(seeds), device=z.device))


@torch.no_grad()
def style_hit_rate(model: PinEncoder, graph, fetcher: GraphFeatureFetcher, device: torch.device) -> float:
    """Share of pins whose nearest other pin (cosine) has the same hidden style."""
    model.eval()
    idx = torch.arange(graph.num_nodes("pin"))
    feats = {k: v.to(device) for k, v in fetcher({"pin": idx})["pin"].items() if isinstance(v, Tensor)}
    z = model(feats)
    sim = z @ z.T
    sim.fill_diagonal_(-2.0)
    style = torch.tensor(graph.features("pin").table["style"].to_numpy(), device=device)
    model.train()
    return float((style[sim.argmax(1)] == style).float().mean())


def main(argv: list[str] | None = None) -> list[float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pins", type=int, default=2000)
    p.add_argument("--boards", type=int, default=200)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--mates", type=int, default=4)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)

    graph = synthetic_lookbooks(args.pins, args.boards, seed=args.seed)
    fetcher = GraphFeatureFetcher(graph, {"pin": ["image", "category", "brand", "price"]})
    sampler = BoardMateSampler(graph, args.mates, weighting="size")
    seeds = torch.nonzero(graph.degree(("pin", "in", "board")) > 0).squeeze(1)  # pins on some board
    loader = PinBoardLoader(graph, sampler, seeds, batch_size=args.batch_size, features=fetcher,
                            device=device, seed=args.seed, drop_last=True)
    feats = graph.features("pin")
    model = PinEncoder(len(feats.categories("category")), len(feats.categories("brand"))).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

    print(f"before training: nearest-neighbor style hit rate {style_hit_rate(model, graph, fetcher, device):.3f}")
    losses = []
    for epoch in range(args.epochs):
        loader.set_epoch(epoch)
        total, n = 0.0, 0
        for mb in loader:
            z = model(mb.features["pin"])
            loss = neighbor_alignment_loss(z, mb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + loss.item(), n + 1
        losses.append(total / max(n, 1))
        print(f"epoch {epoch}: loss {losses[-1]:.3f}, style hit rate "
              f"{style_hit_rate(model, graph, fetcher, device):.3f}")
    return losses


if __name__ == "__main__":
    main()
