"""Building what a config names: its graph, the encoder, its input builder, the training model,
the feature cache of its frozen towers and the batch each rank trains with."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist

from boardgraph.datasets import synthetic_lookbooks
from boardgraph.training.config import ConfigError, DataConfig, ModelConfig, TrainConfig
from boardgraph.encoders import (FeatureCache, FusionConfig, MetadataConfig, MetadataSchema, PinEncoder, PinEncoderConfig,
                                 PinInputBuilder, build_encoder)
from boardgraph.graph import PinBoardGraph
from boardgraph.objectives.pinclip import PinCLIPModel

__all__ = ["ModelParts", "build_model", "build_encoder_for", "load_graph_for", "resolve_device", "open_feature_cache",
           "batch_per_rank"]

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """``"auto"``: this process's GPU (``LOCAL_RANK`` under torchrun) when CUDA is there, else CPU;
    ``"cuda"`` likewise gets an explicit index."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return dev


def load_graph_for(cfg: DataConfig) -> PinBoardGraph:
    """The graph of ``cfg.source``: ``"synthetic"`` or a directory saved with ``graph.save()``."""
    if cfg.source == "synthetic":
        return synthetic_lookbooks(cfg.n_pins, cfg.n_boards, seed=cfg.data_seed)
    if not Path(cfg.source).exists():
        raise ConfigError(f"data.source {cfg.source!r} is neither 'synthetic' nor an existing graph directory")
    return PinBoardGraph.load(cfg.source)


@dataclass
class ModelParts:
    model: PinCLIPModel
    builder: PinInputBuilder
    schema: MetadataSchema | None


def build_encoder_for(cfg: ModelConfig, graph: PinBoardGraph, fit_lexical: bool = True, ids: bool = False,
                      ) -> tuple[PinEncoder, PinInputBuilder, MetadataSchema | None]:
    """Towers named by ``cfg`` for the modalities ``graph``'s pins actually have; with ``ids``, an ID
    embedding row per pin of ``graph`` (:class:`~boardgraph.encoders.PinEncoderConfig` ``num_ids``).

    A text tower with a lexical branch (``lexical_dim > 0``) gets its IDF from the texts of all of
    ``graph``'s pins (``fit_lexical``; a loader that restores the IDF from a checkpoint skips it).
    """
    feats = graph.features("pin")
    has_image = bool(feats.names("image"))
    text_fields = tuple(feats.names("text"))
    image = build_encoder(cfg.image, **cfg.image_kwargs) if cfg.image and has_image else None
    text = build_encoder(cfg.text, **cfg.text_kwargs) if cfg.text and text_fields else None
    schema = meta = None
    if cfg.metadata and (feats.names("categorical") or feats.names("numeric")):
        schema = MetadataSchema.fit(feats)
        meta = build_encoder(MetadataConfig.from_schema(schema, dim=cfg.fusion_dim))
    enc_cfg = PinEncoderConfig(FusionConfig(dim=cfg.fusion_dim, depth=cfg.fusion_layers, num_heads=cfg.fusion_heads),
                               embed_dim=cfg.embed_dim, matryoshka_dims=tuple(cfg.matryoshka_dims),
                               num_ids=graph.num_nodes("pin") if ids else 0, id_dropout=cfg.id_dropout,
                               id_buckets=cfg.id_buckets, id_hashes=cfg.id_hashes)
    encoder = PinEncoder(image=image, text=text, metadata=meta, config=enc_cfg)
    builder = encoder.input_builder(schema, text_fields=text_fields or ("title",),
                                    image_field=feats.names("image")[0] if has_image else None,
                                    max_length=cfg.text_max_length)
    if fit_lexical and text is not None and getattr(getattr(text, "config", None), "lexical_dim", 0):
        fit_lexical_idf(text, builder, graph)
    return encoder, builder, schema


def fit_lexical_idf(tower: torch.nn.Module, builder: PinInputBuilder, graph: PinBoardGraph,
                    chunk: int = 8192) -> None:
    """Fit ``tower``'s lexical IDF on the texts of every pin of ``graph`` (read ``chunk`` pins at a time)."""
    text_only = replace(builder, image_field=None, schema=None)
    feats, n = graph.features("pin"), graph.num_nodes("pin")
    ids, masks = [], []
    for start in range(0, n, chunk):
        x = text_only(feats, torch.arange(start, min(start + chunk, n)))
        ids.append(x.input_ids)
        masks.append(x.attention_mask)
    if ids:
        tower.fit_lexical(torch.cat(ids), torch.cat(masks))


def build_model(cfg: TrainConfig, graph: PinBoardGraph, gather: bool = True) -> ModelParts:
    """The :class:`PinCLIPModel` of ``cfg`` (seeded by ``cfg.run.seed``) over ``graph``'s boards."""
    torch.manual_seed(cfg.run.seed)
    encoder, builder, schema = build_encoder_for(cfg.model, graph, ids=cfg.uses_ids())
    if cfg.model.freeze_towers:
        encoder.freeze_towers()
    model = PinCLIPModel(encoder, graph.num_nodes("board"), kind=cfg.objective.kind,
                         alignment=cfg.objective.alignment, mate_heads=cfg.model.mate_heads, gather=gather,
                         bank_size=graph.num_nodes("pin") if cfg.model.mate_encoding == "bank" else 0,
                         project_values=cfg.model.mate_values == "projected", symmetric=cfg.objective.is_symmetric())
    return ModelParts(model, builder, schema)


def open_feature_cache(path: Path, encoder: PinEncoder, graph: PinBoardGraph, builder: PinInputBuilder,
                       device: torch.device, rank: int = 0) -> FeatureCache:
    """The run's :class:`~boardgraph.encoders.FeatureCache` of ``encoder``'s frozen towers over
    ``graph``'s pins at ``path``: rank 0 (re)builds it when it is absent or was built by other
    towers, the other ranks wait for it (every rank calls this under torch.distributed)."""
    if rank == 0:
        try:
            FeatureCache(path).check(encoder)
        except Exception:  # absent, or built by other towers: (re)build it
            FeatureCache.build(path, encoder, graph.features("pin"), builder, overwrite=True, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    cache = FeatureCache(path)
    cache.check(encoder)
    return cache


def batch_per_rank(batch_size: int, n_seeds: int, world: int) -> int:
    """Seeds per batch on each of ``world`` ranks: ``batch_size / world``, clamped to the ``n_seeds``
    pins on a board of the training graph.

    A graph with fewer such pins than ``batch_size`` (a 50-pin graph with the default 256) trains
    with batches of all of them, with a logged note.

    Raises:
        ConfigError: fewer than 2 per rank (no in-batch negative), naming the pin count.
    """
    most = n_seeds // world
    if most < 2:
        raise ConfigError(f"the training graph has {n_seeds} pin(s) on a board"
                          f"{f' for {world} processes' if world > 1 else ''}; training needs at least "
                          f"2 per batch{' per process' if world > 1 else ''} (in-batch negatives). Fix: "
                          f"use a graph with more memberships (or a lower data.holdout_fraction / cold_fraction)")
    per_rank = batch_size // world
    if per_rank > most:
        log.warning("run.batch_size %d is larger than the %d pins on a board of the training graph: training "
                    "with batches of %d (every such pin once per epoch)", batch_size, n_seeds, most * world)
        per_rank = most
    return per_rank
