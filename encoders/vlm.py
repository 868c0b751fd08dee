"""A vision-language backbone (transformers CLIP or SigLIP, local directory) serving as both towers.

:func:`load_vlm_towers` loads the checkpoint once and returns an image tower (vision model +
visual projection) and a text tower (text model + text projection) over the same model, so their
pooled vectors start in the backbone's shared image-text space. The registered names
``hf_vlm_image`` / ``hf_vlm_text`` build one half each from :class:`HFVLMConfig`.

Image preprocessing comes from the checkpoint's ``preprocessor_config.json`` (mean, std, resize
and crop sizes, resample filter); without one, from the model type's usual statistics and the
vision config's ``image_size``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Sequence

from torch import Tensor, nn

from .errors import EncoderConfigError
from .image import ImagePreprocess
from .registry import EncoderConfig, TowerOutput, register_encoder

__all__ = ["HFVLMConfig", "VLMImageEncoder", "VLMTextEncoder", "load_vlm_towers"]

_DEFAULT_STATS = {"clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
                  "siglip": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))}
_PIL_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}


@dataclass
class HFVLMConfig(EncoderConfig):
    """Config of the VLM towers.

    Attributes:
        path: local directory of a CLIP/SigLIP checkpoint (``save_pretrained`` layout, with its
            tokenizer and optionally ``preprocessor_config.json``). Required.
        max_length: truncation length of the text tower's ``tokenize``.
    """

    name: str = "hf_vlm_image"
    path: str | None = None
    max_length: int = 32


def _load_model(path: str | os.PathLike | None) -> nn.Module:
    from transformers import AutoModel

    if path is None or not os.path.isdir(path):
        raise EncoderConfigError(f"VLM checkpoint directory {None if path is None else str(path)!r} does not exist",
                                 fix="set path to a local CLIP/SigLIP directory written by save_pretrained")
    model = AutoModel.from_pretrained(str(path), local_files_only=True)
    if not (hasattr(model, "vision_model") and hasattr(model, "text_model")):
        raise EncoderConfigError(f"{type(model).__name__} at {str(path)!r} is not a vision-language model",
                                 fix="use a CLIP or SigLIP checkpoint (a model with vision_model and text_model)")
    return model


def _preprocess_for(model: nn.Module, path: str | os.PathLike) -> ImagePreprocess:
    vcfg = model.config.vision_config
    kind = "siglip" if "siglip" in model.config.model_type else "clip"
    mean, std = _DEFAULT_STATS[kind]
    size, interp, crop_pct = int(vcfg.image_size), "bicubic" if kind == "clip" else "bilinear", 1.0
    proc_file = os.path.join(str(path), "preprocessor_config.json")
    if os.path.isfile(proc_file):
        with open(proc_file) as f:
            proc: dict[str, Any] = json.load(f)
        mean, std = proc.get("image_mean", mean), proc.get("image_std", std)
        interp = _PIL_RESAMPLE.get(int(proc.get("resample", 3)), "bicubic")
        resize = proc.get("size") or {}
        crop = proc.get("crop_size") or {}
        if proc.get("do_center_crop") and "shortest_edge" in resize and "height" in crop:
            crop_pct = min(1.0, int(crop["height"]) / int(resize["shortest_edge"]))
    return ImagePreprocess(size=(size, size), mean=mean, std=std, interpolation=interp, crop_pct=crop_pct)


class VLMImageEncoder(nn.Module):
    """Image half of a CLIP/SigLIP model.

    Shapes: uint8 ``[B, 3, H, W]`` (or float in ``[0, 1]``) -> tokens ``[B, 1 + P, vision_hidden]``
    (CLIP: class + patch tokens; SigLIP: patch tokens), pooled ``[B, projection_dim]`` (CLIP:
    ``visual_projection(pooler_output)``; SigLIP: the attention-pooling head output).
    """

    modality = "image"

    def __init__(self, model: nn.Module, preprocess: ImagePreprocess) -> None:
        super().__init__()
        self.vision = model.vision_model
        self.projection = getattr(model, "visual_projection", None)
        self.preprocess = preprocess
        self.token_dim = int(model.config.vision_config.hidden_size)
        self.pooled_dim = int(self.projection.out_features) if self.projection is not None else self.token_dim

    def forward(self, images: Tensor) -> TowerOutput:
        out = self.vision(pixel_values=self.preprocess(images))
        pooled = out.pooler_output if self.projection is None else self.projection(out.pooler_output)
        tokens = out.last_hidden_state
        return TowerOutput(tokens=tokens, mask=tokens.new_ones(tokens.shape[:2], dtype=bool), pooled=pooled)


class VLMTextEncoder(nn.Module):
    """Text half of a CLIP/SigLIP model, with the checkpoint's tokenizer.

    Shapes: ids/mask int64 ``[B, L]`` -> tokens ``[B, L, text_hidden]``, pooled
    ``[B, projection_dim]`` (CLIP: projected end-of-text state; SigLIP: head of the last token,
    so SigLIP inputs are padded to ``max_length``).
    """

    modality = "text"

    def __init__(self, model: nn.Module, tokenizer: Any, max_length: int = 32) -> None:
        super().__init__()
        self.text = model.text_model
        self.projection = getattr(model, "text_projection", None)
        self.tokenizer, self.max_length = tokenizer, int(max_length)
        self.pad_to_max = "siglip" in model.config.model_type
        self.token_dim = int(model.config.text_config.hidden_size)
        self.pooled_dim = int(self.projection.out_features) if self.projection is not None else self.token_dim

    def tokenize(self, texts: Sequence[str], pairs: Sequence[str] | None = None,
                 max_length: int | None = None, pad_to_max: bool = False) -> tuple[Tensor, Tensor]:
        """Tokenise -> int64 ids and mask ``[B, L]``; ``pairs`` are appended to ``texts`` with a space."""
        if pairs is not None:
            texts = [f"{a} {b}".strip() for a, b in zip(texts, pairs)]
        enc = self.tokenizer(list(texts), truncation=True, max_length=max_length or self.max_length,
                             padding="max_length" if (pad_to_max or self.pad_to_max) else "longest",
                             return_tensors="pt")
        return enc["input_ids"].long(), enc["attention_mask"].long()

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> TowerOutput:
        out = self.text(input_ids=input_ids, attention_mask=attention_mask)
        pooled = out.pooler_output if self.projection is None else self.projection(out.pooler_output)
        return TowerOutput(tokens=out.last_hidden_state, mask=attention_mask.bool(), pooled=pooled)


def load_vlm_towers(path: str | os.PathLike, max_length: int = 32) -> tuple[VLMImageEncoder, VLMTextEncoder]:
    """Load a CLIP/SigLIP directory once -> (image tower, text tower) over the same model.

    Raises:
        EncoderConfigError: the directory is missing or holds no vision-language model.
    """
    from transformers import AutoTokenizer

    model = _load_model(path)
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    return VLMImageEncoder(model, _preprocess_for(model, path)), VLMTextEncoder(model, tokenizer, max_length)


@register_encoder("hf_vlm_image", modality="image", default_config=HFVLMConfig(name="hf_vlm_image"))
def hf_vlm_image(config: HFVLMConfig) -> VLMImageEncoder:
    """Image tower of the CLIP/SigLIP checkpoint at ``config.path``."""
    model = _load_model(config.path)
    return VLMImageEncoder(model, _preprocess_for(model, str(config.path)))


@register_encoder("hf_vlm_text", modality="text", default_config=HFVLMConfig(name="hf_vlm_text"))
def hf_vlm_text(config: HFVLMConfig) -> VLMTextEncoder:
    """Text tower of the CLIP/SigLIP checkpoint at ``config.path``."""
    from transformers import AutoTokenizer

    model = _load_model(config.path)
    return VLMTextEncoder(model, AutoTokenizer.from_pretrained(str(config.path), local_files_only=True),
                          config.max_length)
