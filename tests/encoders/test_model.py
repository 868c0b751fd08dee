"""PinEncoder and hybrid fusion: shapes, masks (each modality missing in turn), gradients."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from boardgraph.encoders import (MODALITIES, EncoderConfigError, FusionConfig, HybridFusion, PinEncoder,
                                 PinEncoderConfig)


def test_shapes_and_normalisation(encoder, builder, pin_features):
    x = builder(pin_features, torch.arange(6))
    out = encoder(x)
    assert out.embedding.shape == (6, 64) and out.embedding.dtype == torch.float32
    torch.testing.assert_close(out.embedding.norm(dim=1), torch.ones(6))
    assert out.early.shape == out.late.shape == (6, 32)
    assert set(out.modality) == set(MODALITIES)
    for v in out.modality.values():
        assert v.shape == (6, 64)
        torch.testing.assert_close(v.norm(dim=1), torch.ones(6))
    torch.testing.assert_close(out.weights.sum(1), torch.ones(6))
    torch.testing.assert_close(out.truncate(16).norm(dim=1), torch.ones(6))
    torch.testing.assert_close(out.truncate(16), torch.nn.functional.normalize(out.embedding[:, :16], dim=1))


@pytest.mark.parametrize("missing", MODALITIES)
def test_each_modality_missing_in_turn(encoder, builder, pin_features, missing):
    x = builder(pin_features, torch.arange(5)).without(missing)
    j = MODALITIES.index(missing)
    out = encoder(x)
    assert torch.isfinite(out.embedding).all()
    torch.testing.assert_close(out.embedding.norm(dim=1), torch.ones(5))
    assert out.weights[:, j].eq(0).all() and not out.present[:, j].any()
    torch.testing.assert_close(out.weights.sum(1), torch.ones(5))
    assert out.modality[missing].eq(0).all()  # no alignment vector for an absent modality
    # the absent modality's content has no influence at all
    y = builder(pin_features, torch.arange(5)).without(missing)
    if missing == "image":
        y.images = 255 - y.images
    elif missing == "text":
        y.input_ids = torch.flip(y.input_ids, [0])
    else:
        y.numeric = y.numeric + 100.0
        y.categorical = torch.flip(y.categorical, [0])
    torch.testing.assert_close(encoder(y).embedding, out.embedding, atol=1e-6, rtol=0)


def test_no_modality_at_all_is_finite(encoder, builder, pin_features):
    out = encoder(builder(pin_features, torch.arange(3)).without(*MODALITIES))
    assert torch.isfinite(out.embedding).all() and out.late.eq(0).all() and out.weights.eq(0).all()
    # every pin then gets the same embedding (only [CLS] is attended)
    torch.testing.assert_close(out.embedding, out.embedding[:1].expand(3, -1))


def test_padding_tokens_do_not_matter(encoder, builder, pin_features):
    x = builder(pin_features, torch.arange(4))
    x.attention_mask[:, 10:] = 0  # the last 14 positions become padding
    y = builder(pin_features, torch.arange(4))
    y.attention_mask[:, 10:] = 0
    y.input_ids[:, 10:] = 7
    outs_x, outs_y = encoder.encode_towers(x), encoder.encode_towers(y)
    # the padded ids change padded token *states*, which the fusion must ignore
    assert not torch.equal(outs_x["text"].tokens, outs_y["text"].tokens)
    torch.testing.assert_close(encoder.fuse(outs_y, y.present).embedding, encoder.fuse(outs_x, x.present).embedding)


def test_batch_composition_does_not_change_a_pin(encoder, builder, pin_features):
    x = builder(pin_features, torch.arange(6))
    full = encoder(x).embedding
    single = encoder(x.select(torch.tensor([4]))).embedding
    torch.testing.assert_close(single[0], full[4], atol=1e-5, rtol=0)


def test_text_only_and_image_only_encoders(make, schema, pin_features):
    for modalities in (("text",), ("image",), ("metadata",)):
        enc = make(modalities).eval()
        x = enc.input_builder(schema, max_length=16)(pin_features, torch.arange(3))
        out = enc(x)
        assert out.embedding.shape == (3, 64) and enc.modalities == modalities
        assert set(out.modality) == set(modalities)
        assert out.present[:, [MODALITIES.index(m) for m in MODALITIES if m not in modalities]].eq(False).all()


def test_gradients_reach_every_trainable_parameter(make, schema, pin_features):
    enc = make()
    x = enc.input_builder(schema, max_length=16)(pin_features, torch.arange(6))
    x.numeric_missing[0] = True  # so that the "missing" embedding is used
    out = enc(x)
    loss = out.embedding.pow(3).sum() + sum(v.pow(3).sum() for v in out.modality.values())
    loss.backward()
    missing = [n for n, p in enc.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert missing == []


def test_freeze_towers_keeps_them_in_eval(make, schema, pin_features):
    enc = make().freeze_towers()
    enc.train()
    assert not enc.towers.training and enc.fusion.training
    names = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert names and all(not n.startswith("towers.") for n in names)
    assert {id(p) for p in enc.trainable_parameters()} == {id(p) for n, p in enc.named_parameters() if n in names}
    enc.freeze_towers(False)
    assert all(p.requires_grad for p in enc.parameters())


def test_late_fusion_weights_by_hand():
    fusion = HybridFusion(FusionConfig(dim=4, num_heads=1))
    with torch.no_grad():
        fusion.late_gate.weight.zero_()  # equal scores -> uniform weights over present modalities
    b = 2
    tokens = {m: torch.randn(b, 2, 4) for m in MODALITIES}
    masks = {m: torch.ones(b, 2, dtype=torch.bool) for m in MODALITIES}
    pooled = {m: torch.randn(b, 4) for m in MODALITIES}
    present = torch.tensor([[True, True, False], [False, False, True]])
    early, late, w = fusion(tokens, masks, pooled, present)
    assert w.tolist() == [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]
    ln = fusion.late_norm
    torch.testing.assert_close(late[0], (ln(pooled["image"][0]) + ln(pooled["text"][0])) / 2)
    torch.testing.assert_close(late[1], ln(pooled["metadata"][1]))


def test_config_errors():
    with pytest.raises(EncoderConfigError, match="must be ascending.*end at embed_dim=128"):
        PinEncoderConfig(embed_dim=128, matryoshka_dims=(64, 256))
    with pytest.raises(EncoderConfigError, match="at least one tower"):
        PinEncoder()


def test_input_builder_needs_the_schema_of_a_metadata_tower(encoder):
    with pytest.raises(EncoderConfigError, match="has a metadata tower but no schema"):
        encoder.input_builder()


def test_missing_input_tensor_is_named(encoder, builder, pin_features):
    x = builder(pin_features, torch.arange(2))
    x.images = None
    with pytest.raises(EncoderConfigError, match="PinInputs.images is None"):
        encoder(x)


def test_runs_on_device(make, schema, pin_features, device):
    enc = make().eval()
    x = enc.input_builder(schema, max_length=16)(pin_features, torch.arange(4))
    with torch.no_grad():
        ref = enc(x).embedding
        got = enc.to(device)(x.to(device)).embedding
    assert got.device.type == device
    torch.testing.assert_close(got.cpu(), ref, atol=1e-4, rtol=0)


def test_id_embedding_adds_to_warm_pins_only(schema, tiny_config, pin_features, make_with):
    """Content + ID: a warm pin's embedding moves with its ID row; a cold pin, a pin outside the
    table and a new pin (no index) keep the content embedding; dropout acts in training only."""
    plain = make_with(tiny_config).eval()
    enc = make_with(replace(tiny_config, num_ids=6, id_dropout=0.5)).eval()
    assert "id_warm" not in plain.state_dict() and "ids.weight" not in plain.state_dict()  # old checkpoints load
    enc.load_state_dict(plain.state_dict(), strict=False)
    x = enc.input_builder(schema, max_length=24)(pin_features, torch.arange(8))
    assert torch.equal(x.index, torch.arange(8))
    torch.testing.assert_close(enc(x).embedding, plain(x).embedding)   # zero-initialised IDs: the content model
    with torch.no_grad():
        enc.ids.weight.copy_(torch.randn(6, 64) * 5)
    enc.set_warm_ids(torch.tensor([True, True, False, True, False, True]))
    out, content = enc(x).embedding, plain(x).embedding
    moved = ~torch.isclose(out, content, atol=1e-6).all(1)
    assert moved.tolist() == [True, True, False, True, False, True, False, False]   # pins 6, 7: outside the table
    z = enc.head(torch.cat([plain(x).early, plain(x).late], -1))
    torch.testing.assert_close(out[0], torch.nn.functional.normalize(z[0] + enc.ids.weight[0], dim=0))
    new = replace(x, index=None)
    torch.testing.assert_close(enc(new).embedding, content)          # a new pin: content only
    enc.train()
    torch.manual_seed(0)
    kept = torch.stack([enc.id_term(torch.arange(6)).abs().sum(1) > 0 for _ in range(200)]).float().mean(0)
    assert kept[[2, 4]].tolist() == [0.0, 0.0] and all(0.4 < float(k) < 0.6 for k in kept[[0, 1, 3, 5]])
    with pytest.raises(EncoderConfigError, match=r"warm must be bool \[6\]"):
        enc.set_warm_ids(torch.ones(5, dtype=torch.bool))
    with pytest.raises(EncoderConfigError, match="no ID embedding"):
        plain.set_warm_ids(torch.ones(6, dtype=torch.bool))
    with pytest.raises(EncoderConfigError, match="id_dropout"):
        PinEncoderConfig(num_ids=3, id_dropout=1.0, embed_dim=64, matryoshka_dims=(64,))


def test_hashed_id_table_serves_warm_pins_the_sum_of_their_buckets(schema, tiny_config, pin_features, make_with):
    plain = make_with(tiny_config).eval()
    enc = make_with(replace(tiny_config, num_ids=8, id_buckets=3, id_hashes=2)).eval()
    assert tuple(enc.state_dict()["ids.weight"].shape) == (3, 64)          # 3 rows serve 8 pins
    enc.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        enc.ids.weight.copy_(torch.randn(3, 64) * 5)
    enc.set_warm_ids(torch.tensor([True] * 4 + [False] * 4))
    x = enc.input_builder(schema, max_length=24)(pin_features, torch.arange(8))
    out, ref = enc(x).embedding, plain(x)
    z = enc.head(torch.cat([ref.early, ref.late], -1))
    rows = enc.ids.rows(torch.arange(4))
    torch.testing.assert_close(out[:4], torch.nn.functional.normalize(z[:4] + enc.ids.weight[rows].sum(1), dim=1))
    torch.testing.assert_close(out[4:], ref.embedding[4:])               # cold pins: content only
