from __future__ import annotations

import pytest
import torch

from boardgraph.encoders import (TINY_VIT_KWARGS, EncoderConfigError, ImagePreprocess, TimmImageConfig,
                                 TimmImageEncoder, build_encoder)


def test_preprocess_normalises_uint8_and_float_alike():
    p = ImagePreprocess((2, 2), mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    x = torch.tensor([0, 255, 51, 102], dtype=torch.uint8).view(1, 1, 2, 2).expand(1, 3, 2, 2).contiguous()
    out = p(x)
    # channel 0: (v/255 - 0.5) / 0.5 ; channel 1: (v/255 - 0.25) / 0.25 ; channel 2: v/255
    torch.testing.assert_close(out[0, 0].flatten(), torch.tensor([-1.0, 1.0, -0.6, -0.2]))
    torch.testing.assert_close(out[0, 1].flatten(), torch.tensor([-1.0, 3.0, -0.2, 0.6]))
    torch.testing.assert_close(out[0, 2].flatten(), torch.tensor([0.0, 1.0, 0.2, 0.4]))
    torch.testing.assert_close(p(x.float() / 255.0), out)


def test_preprocess_resize_and_centre_crop_follow_crop_pct():
    x = torch.arange(32 * 32, dtype=torch.float32).view(1, 1, 32, 32).expand(2, 3, 32, 32) / 1024.0
    ident = dict(mean=(0.0,) * 3, std=(1.0,) * 3)
    # floor(28 / 0.875) = 32: no resize, centre crop of 28 -> rows/cols 2..29
    out = ImagePreprocess((28, 28), crop_pct=0.875, **ident)(x)
    assert out.shape == (2, 3, 28, 28)
    torch.testing.assert_close(out, x[:, :, 2:30, 2:30])
    # crop_pct=1: straight resize (nearest from 32 to 16 keeps every other pixel)
    out = ImagePreprocess((16, 16), interpolation="nearest", **ident)(x)
    torch.testing.assert_close(out, x[:, :, ::2, ::2])
    with pytest.raises(EncoderConfigError, match="crop_pct"):
        ImagePreprocess((8, 8), crop_pct=1.5, **ident)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        ImagePreprocess((8, 8), **ident)(torch.zeros(3, 8, 8))


def test_tiny_vit_tokens_and_pooled():
    torch.manual_seed(0)
    tower = build_encoder("vit_tiny_random")
    assert (tower.token_dim, tower.pooled_dim) == (32, 32)
    assert tower.preprocess.size == (32, 32) and tower.preprocess.crop_pct == 1.0
    # the model's own data config: vit_tiny_patch16_224 normalises with mean = std = 0.5
    torch.testing.assert_close(tower.preprocess.mean.flatten(), torch.full((3,), 0.5))
    out = tower(torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8))
    assert out.tokens.shape == (3, 1 + 16, 32) and out.mask.all()
    torch.testing.assert_close(out.pooled, out.tokens[:, 0])  # ViT pools the class token


def test_data_config_comes_from_the_model():
    tower = TimmImageEncoder(TimmImageConfig(model_kwargs=dict(TINY_VIT_KWARGS)))
    assert tower.preprocess.crop_pct == pytest.approx(0.9)  # vit_tiny_patch16_224's crop_pct
    assert tower.preprocess.interpolation == "bicubic"
    assert tower.preprocess.size == (32, 32)  # the size the model was built for
    cnn = TimmImageEncoder(TimmImageConfig(model_name="test_efficientnet", input_size=64))
    torch.testing.assert_close(cnn.preprocess.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    out = cnn(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))
    assert out.tokens.shape == (2, 4, cnn.token_dim)  # 64 px / 32 stride -> 2x2 feature map
    torch.testing.assert_close(out.pooled, out.tokens.mean(1))  # average pooling of the map


def test_local_checkpoint_roundtrip(tmp_path):
    torch.manual_seed(0)
    src = build_encoder("vit_tiny_random")
    ckpt = tmp_path / "vit.pth"
    torch.save(src.model.state_dict(), ckpt)
    torch.manual_seed(1)  # a different random init, overwritten by the checkpoint
    loaded = build_encoder("vit_tiny_random", checkpoint_path=str(ckpt))
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    src.eval(), loaded.eval()
    assert torch.equal(src(x).tokens, loaded(x).tokens)
    from safetensors.torch import save_file

    save_file(src.model.state_dict(), tmp_path / "vit.safetensors")
    from_st = build_encoder("vit_tiny_random", checkpoint_path=str(tmp_path / "vit.safetensors")).eval()
    assert torch.equal(src(x).tokens, from_st(x).tokens)


def test_bad_configs_raise():
    with pytest.raises(EncoderConfigError, match="checkpoint '/no/such.pth' does not exist"):
        build_encoder("vit_tiny_random", checkpoint_path="/no/such.pth")
    with pytest.raises(EncoderConfigError, match="timm has no model 'not_a_model'"):
        build_encoder("timm", model_name="not_a_model")
