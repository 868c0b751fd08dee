"""Frozen-tower feature cache: identical outputs, atomic writes, staleness checks, fusion-only training."""
from __future__ import annotations

import pytest
import torch

from boardgraph.encoders import FeatureCache, FeatureCacheError, MODALITIES


@pytest.fixture
def cache(encoder, builder, pin_features, tmp_path):
    return FeatureCache.build(tmp_path / "cache", encoder, pin_features, builder, batch_size=32)


def test_cached_outputs_equal_the_towers(cache, encoder, builder, pin_features):
    assert len(cache) == pin_features.num_nodes and cache.modalities == MODALITIES
    idx = torch.tensor([5, 119, 0, 64, 31])
    x = builder(pin_features, idx)
    with torch.no_grad():
        live = encoder.encode_towers(x)
        cached, present = cache.get(idx)
        assert torch.equal(present, x.present)
        for m in MODALITIES:
            assert torch.equal(cached[m].tokens, live[m].tokens), m
            assert torch.equal(cached[m].mask, live[m].mask) and torch.equal(cached[m].pooled, live[m].pooled)
        assert torch.equal(encoder.fuse(cached, present).embedding, encoder(x).embedding)
    cache.check(encoder)
    assert cache.meta["shapes"]["text"] == dict(num_tokens=24, token_dim=32, pooled_dim=32)


def test_reopen_and_errors(cache, encoder, builder, pin_features, tmp_path):
    again = FeatureCache(cache.path)
    assert again.fingerprint == cache.fingerprint
    with pytest.raises(IndexError, match="pin index 120 is outside the cache"):
        again.get(torch.tensor([0, 120]))
    with pytest.raises(FeatureCacheError, match="already exists"):
        FeatureCache.build(cache.path, encoder, pin_features, builder)
    with pytest.raises(FeatureCacheError, match="meta.json missing"):
        FeatureCache(tmp_path / "nothing")
    with torch.no_grad():
        encoder.towers["image"].model.patch_embed.proj.weight.add_(0.01)
    with pytest.raises(FeatureCacheError, match="built by towers with other weights"):
        cache.check(encoder)


def test_failed_build_leaves_the_old_cache_intact(cache, encoder, builder, pin_features, tmp_path):
    calls = []

    def failing(features, idx):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return builder(features, idx)

    before = cache.get(torch.arange(3))[0]["text"].pooled
    with pytest.raises(RuntimeError, match="disk on fire"):
        FeatureCache.build(cache.path, encoder, pin_features, failing, batch_size=32, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # no temporary directory left behind
    assert torch.equal(FeatureCache(cache.path).get(torch.arange(3))[0]["text"].pooled, before)
    with torch.no_grad():
        encoder.towers["text"].model.embeddings.word_embeddings.weight.mul_(2.0)
    rebuilt = FeatureCache.build(cache.path, encoder, pin_features, builder, batch_size=64, overwrite=True)
    rebuilt.check(encoder)
    assert not torch.equal(rebuilt.get(torch.arange(3))[0]["text"].pooled, before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_float16_storage(encoder, builder, pin_features, tmp_path):
    c = FeatureCache.build(tmp_path / "c16", encoder, pin_features, builder, dtype=torch.float16)
    assert c.meta["dtype"] == "float16"
    assert (tmp_path / "c16" / "image.tokens.npy").stat().st_size < 120 * 17 * 32 * 2 + 1024
    idx = torch.arange(10)
    with torch.no_grad():
        live = encoder.encode_towers(builder(pin_features, idx))
    got = c.get(idx)[0]
    assert got["image"].tokens.dtype == torch.float32
    torch.testing.assert_close(got["image"].tokens, live["image"].tokens, atol=1e-2, rtol=1e-3)


def test_training_from_the_cache_updates_only_fusion(cache, encoder, pin_features):
    encoder.freeze_towers().train()
    towers_before = {k: v.clone() for k, v in encoder.towers.state_dict().items()}
    fusion_before = encoder.head[1].weight.clone()
    opt = torch.optim.Adam(encoder.trainable_parameters(), lr=1e-2)
    # pull each pin's embedding towards its image embedding: a loss the fusion alone can lower
    losses = []
    for step in range(15):
        idx = torch.randperm(len(cache), generator=torch.Generator().manual_seed(step))[:32]
        outs, present = cache.get(idx)
        emb = encoder.fuse(outs, present)
        loss = (1 - (emb.embedding * emb.modality["image"].detach()).sum(-1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert all(torch.equal(v, encoder.towers.state_dict()[k]) for k, v in towers_before.items())
    assert not torch.equal(fusion_before, encoder.head[1].weight)


def test_pickles_by_path(cache):
    import pickle

    blob = pickle.dumps(cache)
    assert len(blob) < 1000  # the path, not the arrays
    again = pickle.loads(blob)
    assert torch.equal(again.get(torch.arange(4))[0]["image"].tokens, cache.get(torch.arange(4))[0]["image"].tokens)


def test_build_and_fuse_on_device(encoder, builder, pin_features, tmp_path, device):
    idx = torch.tensor([3, 77, 110])
    with torch.no_grad():
        ref = encoder(builder(pin_features, idx)).embedding
        c = FeatureCache.build(tmp_path / "dev", encoder.to(device), pin_features, builder, batch_size=64)
        outs, present = c.get(idx, device=device)
        assert present.device.type == device and outs["text"].tokens.device.type == device
        got = encoder.fuse(outs, present).embedding
    torch.testing.assert_close(got.cpu(), ref, atol=1e-4, rtol=0)
