"""Image towers on timm: any timm model, tokens ``[B, N, D]`` + pooled ``[B, D]``, local weights only.

Preprocessing (resize, centre crop, normalise) comes from the model's own data config
(``timm.data.resolve_model_data_config``) and runs inside the module as tensor operations, so
the tower accepts uint8 images straight from the graph store and exports to ONNX with them.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import EncoderConfigError
from .registry import EncoderConfig, TowerOutput, register_encoder

__all__ = ["ImagePreprocess", "TimmImageConfig", "TimmImageEncoder", "TINY_VIT_KWARGS"]

#: Keyword arguments of the tiny random ViT used by tests and benchmarks (32x32 images, 4x4 patches of 8px).
TINY_VIT_KWARGS: dict[str, Any] = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0)


class ImagePreprocess(nn.Module):
    """Resize, centre-crop and normalise images as timm's eval transform does, on tensors.

    The shorter side is resized to ``floor(size / crop_pct)`` (keeping the aspect ratio), the
    centre ``size`` crop is taken, and channels are normalised with ``mean``/``std``. Resizing
    uses ``F.interpolate`` without antialiasing (PIL antialiases when downscaling), so outputs
    differ slightly from timm's PIL pipeline when images are shrunk.

    Args:
        size: output ``(H, W)``.
        mean, std: per-channel statistics of images in ``[0, 1]``.
        interpolation: ``"bilinear"``, ``"bicubic"`` or ``"nearest"``.
        crop_pct: fraction of the resized image kept by the centre crop (1.0: resize straight to ``size``).

    Shapes: uint8 ``[B, 3, H, W]`` (0-255) or float ``[B, 3, H, W]`` (0-1) -> float32 ``[B, 3, *size]``.
    """

    def __init__(self, size: Sequence[int], mean: Sequence[float], std: Sequence[float],
                 interpolation: str = "bilinear", crop_pct: float = 1.0) -> None:
        super().__init__()
        if interpolation not in ("bilinear", "bicubic", "nearest"):
            raise EncoderConfigError(f"interpolation {interpolation!r} is not supported",
                                     fix="use bilinear, bicubic or nearest")
        if not 0.0 < crop_pct <= 1.0:
            raise EncoderConfigError(f"crop_pct must be in (0, 1], got {crop_pct}", fix="use e.g. 0.875 or 1.0")
        self.size = (int(size[0]), int(size[1]))
        self.interpolation, self.crop_pct = interpolation, float(crop_pct)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B, 3, H, W], got {tuple(images.shape)}; stack RGB images channels-first")
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        h, w = int(x.shape[-2]), int(x.shape[-1])
        th, tw = self.size
        if self.crop_pct >= 1.0:
            rh, rw = th, tw
        else:  # shorter side to floor(size / crop_pct), as timm's eval transform
            scale = math.floor(min(th, tw) / self.crop_pct) / min(h, w)
            rh, rw = max(th, round(h * scale)), max(tw, round(w * scale))
        if (rh, rw) != (h, w):
            kw: dict[str, Any] = {} if self.interpolation == "nearest" else {"align_corners": False}
            x = F.interpolate(x, size=(rh, rw), mode=self.interpolation, **kw)
            if self.interpolation == "bicubic":  # bicubic overshoots the input range
                x = x.clamp(0.0, 1.0)
        if (rh, rw) != (th, tw):
            top, left = (rh - th) // 2, (rw - tw) // 2
            x = x[:, :, top:top + th, left:left + tw]
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return (f"size={self.size}, interpolation={self.interpolation!r}, crop_pct={self.crop_pct}, "
                f"mean={tuple(round(v, 4) for v in self.mean.flatten().tolist())}, "
                f"std={tuple(round(v, 4) for v in self.std.flatten().tolist())}")


@dataclass
class TimmImageConfig(EncoderConfig):
    """Config of :class:`TimmImageEncoder`.

    Attributes:
        model_name: any name of ``timm.list_models()``.
        checkpoint_path: local weights file (``.pth``/``.bin``/``.safetensors``) loaded through timm's
            pretrained loader (which adapts e.g. position embeddings); None keeps the random init.
            Nothing is ever downloaded.
        model_kwargs: extra arguments of ``timm.create_model`` (e.g. ``img_size``, ``depth``).
        input_size, crop_pct, mean, std, interpolation: override the model's data config.
    """

    name: str = "timm"
    model_name: str = "vit_tiny_patch16_224"
    checkpoint_path: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    input_size: int | None = None
    crop_pct: float | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    interpolation: str | None = None


def _model_image_size(model: nn.Module) -> tuple[int, int] | None:
    """The fixed input size a model was built for (ViT-like patch embeddings), else None."""
    pe = getattr(model, "patch_embed", None)
    size = getattr(pe, "img_size", None)
    if size is None or getattr(pe, "dynamic_img_size", False):
        return None
    return (int(size[0]), int(size[1])) if isinstance(size, (tuple, list)) else (int(size), int(size))


@register_encoder("timm", modality="image", default_config=TimmImageConfig())
class TimmImageEncoder(nn.Module):
    """Image tower wrapping a timm model (classifier removed).

    Tokens are ``model.forward_features`` (ViT: prefix + patch tokens; CNN: the final feature
    map flattened to ``H*W`` tokens); the pooled vector is ``forward_head(..., pre_logits=True)``,
    i.e. the model's own pooling.

    Args:
        config: :class:`TimmImageConfig`.

    Shapes: ``forward(images)``: uint8 ``[B, 3, H, W]`` or float in ``[0, 1]`` -> :class:`TowerOutput`
    with tokens ``[B, N, token_dim]``, mask all True ``[B, N]``, pooled ``[B, pooled_dim]``.

    Raises:
        EncoderConfigError: unknown model name or missing checkpoint file.
    """

    modality = "image"

    def __init__(self, config: TimmImageConfig | None = None) -> None:
        super().__init__()
        import timm

        config = config or TimmImageConfig()
        self.config = config
        if config.checkpoint_path is not None and not os.path.isfile(config.checkpoint_path):
            raise EncoderConfigError(f"checkpoint {config.checkpoint_path!r} does not exist",
                                     fix="give the path of a local weights file (no downloads are made)")
        kwargs = dict(config.model_kwargs)
        if config.checkpoint_path is not None:
            # custom_load is set explicitly: older timm keeps the registry's value (True for some ViTs,
            # meaning "an original .npz"), which would route a .pth/.safetensors to the npz loader.
            path = str(config.checkpoint_path)
            kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=path, custom_load=path.endswith(".npz")))
        try:
            self.model = timm.create_model(config.model_name, num_classes=0, **kwargs)
        except RuntimeError as e:
            if "Unknown model" in str(e):
                raise EncoderConfigError(f"timm has no model {config.model_name!r}",
                                         fix="pick a name from timm.list_models()") from e
            raise
        self.output_fmt = getattr(self.model, "output_fmt", "NCHW")
        self.token_dim = int(self.model.num_features)
        self.pooled_dim = int(getattr(self.model, "head_hidden_size", None) or self.model.num_features)

        data = timm.data.resolve_model_data_config(self.model)
        size = (config.input_size, config.input_size) if config.input_size else \
            (_model_image_size(self.model) or tuple(data["input_size"][-2:]))
        self.preprocess = ImagePreprocess(
            size=size, mean=config.mean or data["mean"], std=config.std or data["std"],
            interpolation=config.interpolation or data.get("interpolation", "bilinear"),
            crop_pct=config.crop_pct if config.crop_pct is not None else data.get("crop_pct", 1.0))

    def forward(self, images: Tensor) -> TowerOutput:
        feats = self.model.forward_features(self.preprocess(images))
        pooled = self.model.forward_head(feats, pre_logits=True)
        if feats.dim() == 4:  # feature map -> tokens
            feats = feats.flatten(1, 2) if self.output_fmt == "NHWC" else feats.flatten(2).transpose(1, 2)
        mask = torch.ones(feats.shape[:2], dtype=torch.bool, device=feats.device)
        return TowerOutput(tokens=feats, mask=mask, pooled=pooled)

    def extra_repr(self) -> str:
        return f"model_name={self.config.model_name!r}, token_dim={self.token_dim}, pooled_dim={self.pooled_dim}"


@register_encoder("vit_tiny_random", modality="image",
                  default_config=TimmImageConfig(name="vit_tiny_random", model_kwargs=dict(TINY_VIT_KWARGS),
                                                 crop_pct=1.0))
def vit_tiny_random(config: TimmImageConfig) -> TimmImageEncoder:
    """A randomly initialised 2-layer ViT for 32x32 images (width 32, 17 tokens); for tests and CPU demos."""
    return TimmImageEncoder(config)
