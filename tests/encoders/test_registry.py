"""The registry drives these tests: every registered encoder is built, run forward and backward."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from boardgraph.encoders import (MODALITIES, EncoderConfig, EncoderConfigError, EncoderProtocolError,
                                 MetadataConfig, MissingDependencyError, PinEncoder, TimmImageConfig, TowerOutput,
                                 UnknownEncoderError, build_encoder, check_tower, encoder_entry, list_encoders,
                                 register_encoder, unregister_encoder)

BUILTIN = {"timm": "image", "vit_tiny_random": "image", "efficientnet_lite0": "image", "hf_vlm_image": "image",
           "hf_text": "text", "minilm_l6": "text", "hf_vlm_text": "text", "metadata": "metadata"}


def _config_for(name: str, schema, clip_dir):
    """Configs for the entries whose defaults cannot be built in a test (need a path or a schema, or are big)."""
    if name in ("hf_vlm_image", "hf_vlm_text"):
        return {"name": name, "path": str(clip_dir)}
    if name == "metadata":
        return MetadataConfig.from_schema(schema, dim=16)
    if name == "efficientnet_lite0":  # pretrained weights, smaller input to keep the test fast
        return {"name": name, "input_size": 64}
    if name == "timm":  # the default is a full-size ViT-Ti: shrink it
        return {"name": "timm", "model_kwargs": dict(img_size=32, patch_size=16, embed_dim=16, depth=1, num_heads=1)}
    return name


def _inputs(tower: nn.Module, schema) -> tuple:
    g = torch.Generator().manual_seed(0)
    if tower.modality == "image":
        return (torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=g),)
    if tower.modality == "text":
        return tower.tokenize(["red silk dress", "a"], ["with stripes", ""], max_length=12)
    cards = torch.tensor(schema.cardinalities)
    cat = (torch.rand(2, len(cards), generator=g) * cards).long()
    return cat, torch.tensor([[120.0], [0.0]]), torch.tensor([[False], [True]])


def test_builtins_are_registered_with_their_modality():
    assert set(BUILTIN) <= set(list_encoders())
    for name, modality in BUILTIN.items():
        assert encoder_entry(name).modality == modality
        assert name in list_encoders(modality)
    assert set(list_encoders("image")) & set(list_encoders("text")) == set()


@pytest.mark.parametrize("name", list_encoders())
def test_every_registered_encoder_forward_backward(name, schema, clip_dir):
    try:
        tower = build_encoder(_config_for(name, schema, clip_dir))
    except MissingDependencyError as e:
        pytest.skip(f"optional dependency missing: {e}")
    check_tower(tower, encoder_entry(name).modality)
    out = tower(*_inputs(tower, schema))
    assert isinstance(out, TowerOutput)
    b, n, d = out.tokens.shape
    assert b == 2 and n >= 1 and d == tower.token_dim
    assert out.mask.dtype == torch.bool and out.mask.shape == (2, n)
    assert out.pooled.shape == (2, tower.pooled_dim)
    assert torch.isfinite(out.tokens).all() and torch.isfinite(out.pooled).all()
    (out.tokens.float().pow(2).mean() + out.pooled.float().pow(2).mean()).backward()
    no_grad = [k for k, p in tower.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert no_grad == []


def test_build_from_name_mapping_and_config_agree(schema):
    torch.manual_seed(0)
    a = build_encoder("vit_tiny_random")
    torch.manual_seed(0)
    b = build_encoder({"name": "vit_tiny_random"})
    torch.manual_seed(0)
    c = build_encoder(encoder_entry("vit_tiny_random").default_config)
    x = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(a(x).pooled, b(x).pooled) and torch.equal(a(x).pooled, c(x).pooled)
    assert build_encoder("hf_text", pooling="cls").config.pooling == "cls"
    assert build_encoder({"name": "metadata", "cardinalities": (3,), "dim": 8}).token_dim == 8


def test_build_errors_name_the_problem():
    with pytest.raises(UnknownEncoderError, match=r"no encoder named 'nope'.*registered: \[.*'timm'"):
        build_encoder("nope")
    with pytest.raises(EncoderConfigError, match=r"has no field\(s\) \['depthh'\]"):
        build_encoder("timm", depthh=3)
    with pytest.raises(EncoderConfigError, match="has no 'name'"):
        build_encoder({"model_name": "resnet18"})
    with pytest.raises(EncoderConfigError, match="no fields"):
        build_encoder("metadata")
    with pytest.raises(EncoderConfigError, match="'hf_text' takes a HFTextConfig, got a TimmImageConfig"):
        build_encoder(TimmImageConfig(name="hf_text"))
    with pytest.raises(EncoderConfigError, match="modality must be one of"):
        register_encoder("x", modality="audio")
    with pytest.raises(EncoderConfigError, match="already registered"):
        register_encoder("timm", modality="image")(lambda cfg: None)


# -- a user's own tower, defined outside the library ------------------------------------------
@dataclass
class TinyCNNConfig(EncoderConfig):
    name: str = "test_tiny_cnn"
    width: int = 8


class TinyCNN(nn.Module):
    modality = "image"

    def __init__(self, config: TinyCNNConfig) -> None:
        super().__init__()
        self.token_dim = self.pooled_dim = config.width
        self.conv = nn.Conv2d(3, config.width, kernel_size=8, stride=8)

    def forward(self, images: Tensor) -> TowerOutput:
        tokens = self.conv(images.float() / 255.0).flatten(2).transpose(1, 2)  # [B, 16, width] at 32px
        return TowerOutput(tokens, torch.ones(tokens.shape[:2], dtype=torch.bool), tokens.mean(1))


@pytest.fixture
def tiny_cnn_registered():
    register_encoder("test_tiny_cnn", modality="image", default_config=TinyCNNConfig())(TinyCNN)
    yield
    if "test_tiny_cnn" in list_encoders():
        unregister_encoder("test_tiny_cnn")


def test_custom_encoder_roundtrip(tiny_cnn_registered, schema, tiny_config, pin_features):
    assert "test_tiny_cnn" in list_encoders("image")
    tower = build_encoder({"name": "test_tiny_cnn", "width": 12})
    assert isinstance(tower, TinyCNN) and tower.token_dim == 12
    enc = PinEncoder.from_configs(image=TinyCNNConfig(width=12), text="hf_text",
                                  metadata=MetadataConfig.from_schema(schema, dim=16), config=tiny_config)
    x = enc.input_builder(schema, max_length=16)(pin_features, torch.arange(4))
    out = enc(x)
    assert out.embedding.shape == (4, 64)
    torch.testing.assert_close(out.embedding.norm(dim=1), torch.ones(4))
    out.embedding.sum().backward()
    assert enc.towers["image"].conv.weight.grad.abs().sum() > 0
    unregister_encoder("test_tiny_cnn")
    with pytest.raises(UnknownEncoderError):
        build_encoder("test_tiny_cnn")


def test_unregistered_module_following_the_protocol_plugs_in(schema, tiny_config, pin_features):
    tower = TinyCNN(TinyCNNConfig(width=6))  # never registered
    enc = PinEncoder(image=tower, config=tiny_config)
    assert enc.modalities == ("image",)
    x = enc.input_builder(schema)(pin_features, torch.arange(3))
    assert x.input_ids is None and x.categorical is None
    assert enc(x).embedding.shape == (3, 64)


def test_protocol_violations_are_named():
    class NoDims(nn.Module):
        modality = "image"

    with pytest.raises(EncoderProtocolError, match=r"token_dim=None.*pooled_dim=None"):
        check_tower(NoDims())

    class TextNoTokenize(nn.Module):
        modality, token_dim, pooled_dim = "text", 4, 4

    with pytest.raises(EncoderProtocolError, match="no tokenize"):
        check_tower(TextNoTokenize())
    with pytest.raises(EncoderProtocolError, match="where a 'image' tower is needed"):
        PinEncoder(image=TextNoTokenize())
    with pytest.raises(EncoderProtocolError, match="not an nn.Module"):
        check_tower(object())
    assert MODALITIES == ("image", "text", "metadata")
