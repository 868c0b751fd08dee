"""Fixtures of the encoder tests: a small synthetic graph, its metadata schema, tiny towers and encoders.

Everything is randomly initialised and tiny (width 32) so that the suite runs in seconds on CPU;
nothing is downloaded (HF_HUB_OFFLINE is set before transformers is imported).
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

from boardgraph.datasets import synthetic_lookbooks
from boardgraph.encoders import (FusionConfig, MetadataConfig, MetadataSchema, PinEncoder, PinEncoderConfig,
                                 build_encoder, wordpiece_tokenizer)

N_PINS = 120


@pytest.fixture(scope="session")
def graph():
    return synthetic_lookbooks(N_PINS, 12, seed=0)


@pytest.fixture(scope="session")
def pin_features(graph):
    return graph.features("pin")


@pytest.fixture(scope="session")
def schema(pin_features):
    """Fitted on the first 80 pins, so later pins may carry unseen brands."""
    return MetadataSchema.fit(pin_features, idx=torch.arange(80), num_buckets=4)


@pytest.fixture
def tiny_config() -> PinEncoderConfig:
    return PinEncoderConfig(FusionConfig(dim=32, depth=1, num_heads=2), embed_dim=64, matryoshka_dims=(16, 32, 64))


def make_encoder(schema, config, modalities=("image", "text", "metadata"), seed: int = 0) -> PinEncoder:
    torch.manual_seed(seed)
    towers = {}
    if "image" in modalities:
        towers["image"] = build_encoder("vit_tiny_random")
    if "text" in modalities:
        towers["text"] = build_encoder("hf_text")
    if "metadata" in modalities:
        towers["metadata"] = build_encoder(MetadataConfig.from_schema(schema, dim=32))
    return PinEncoder(**towers, config=config)


@pytest.fixture
def make(schema, tiny_config):
    """``make(modalities=..., seed=0)`` -> a new tiny encoder with those towers (train mode)."""
    return lambda modalities=("image", "text", "metadata"), seed=0: make_encoder(schema, tiny_config, modalities, seed)


@pytest.fixture
def make_with(schema):
    """``make_with(config)`` -> a new seeded three-tower encoder with that :class:`PinEncoderConfig`."""
    return lambda config: make_encoder(schema, config)


@pytest.fixture
def encoder(schema, tiny_config) -> PinEncoder:
    """A tiny three-tower encoder, seeded, in eval mode (BERT has dropout)."""
    return make_encoder(schema, tiny_config).eval()


@pytest.fixture
def builder(encoder, schema):
    return encoder.input_builder(schema, max_length=24)


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    """A tiny random CLIP checkpoint (with the offline tokenizer and a preprocessor config) on disk."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tok = wordpiece_tokenizer()
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=32, pad_token_id=tok.pad_token_id,
                         bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id),
        vision_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                           image_size=32, patch_size=8),
        projection_dim=24)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_clip")
    CLIPModel(cfg).save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    tok.save_pretrained(path)
    return path
