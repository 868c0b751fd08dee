from __future__ import annotations

import pytest
import torch

from boardgraph.encoders import (EncoderConfigError, PinEncoder, build_encoder, check_tower, load_vlm_towers)


def test_clip_serves_as_both_towers(clip_dir):
    image, text = load_vlm_towers(clip_dir, max_length=16)
    check_tower(image, "image"), check_tower(text, "text")
    assert (image.token_dim, image.pooled_dim, text.token_dim, text.pooled_dim) == (32, 24, 32, 24)
    # preprocessing from preprocessor_config.json: CLIP statistics, 32 px, bicubic
    torch.testing.assert_close(image.preprocess.mean.flatten(), torch.tensor([0.48145466, 0.4578275, 0.40821073]))
    assert image.preprocess.size == (32, 32) and image.preprocess.interpolation == "bicubic"

    image.eval(), text.eval()
    imgs = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    out = image(imgs)
    assert out.tokens.shape == (2, 1 + 16, 32)
    v = image.vision(pixel_values=image.preprocess(imgs))
    torch.testing.assert_close(out.pooled, v.pooler_output @ image.projection.weight.T)  # CLIP: no bias

    ids, mask = text.tokenize(["red dress", "a"])
    t = text(ids, mask)
    assert t.tokens.shape == (2, ids.shape[1], 32) and t.pooled.shape == (2, 24)
    # CLIP pools the end-of-text ([SEP] here) state of the final layer norm, then projects
    eos = (ids == text.tokenizer.sep_token_id).int().argmax(1)
    states = text.text(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(t.pooled, states[torch.arange(2), eos] @ text.projection.weight.T)


def test_registry_builds_each_half(clip_dir):
    image = build_encoder({"name": "hf_vlm_image", "path": str(clip_dir)})
    text = build_encoder({"name": "hf_vlm_text", "path": str(clip_dir)})
    enc = PinEncoder(image=image, text=text)
    assert enc.modalities == ("image", "text")
    with pytest.raises(EncoderConfigError, match="VLM checkpoint directory None does not exist"):
        build_encoder("hf_vlm_image")


def test_siglip_defaults_without_preprocessor_config(tmp_path):
    from transformers import SiglipConfig, SiglipModel

    from boardgraph.encoders import wordpiece_tokenizer

    tok = wordpiece_tokenizer()
    cfg = SiglipConfig(text_config=dict(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                        intermediate_size=64, max_position_embeddings=16, pad_token_id=0,
                                        bos_token_id=2, eos_token_id=3),
                       vision_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                          intermediate_size=64, image_size=32, patch_size=8))
    SiglipModel(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    image, text = load_vlm_towers(tmp_path, max_length=16)
    torch.testing.assert_close(image.preprocess.mean.flatten(), torch.full((3,), 0.5))
    assert image.pooled_dim == 32 and image.projection is None
    out = image(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))
    assert out.tokens.shape == (2, 16, 32)  # SigLIP has no class token
    ids, mask = text.tokenize(["red", "a"])
    assert ids.shape == (2, 16)  # SigLIP pools the last position: always padded to max_length
    assert text(ids, mask).pooled.shape == (2, 32)


def test_non_vlm_directory_is_refused(tmp_path):
    build_encoder("hf_text").save_pretrained(tmp_path)
    with pytest.raises(EncoderConfigError, match="BertModel .* is not a vision-language model"):
        load_vlm_towers(tmp_path)
