from __future__ import annotations

import math
import zlib

import pytest
import torch
import torch.nn.functional as F

from boardgraph.encoders import EncoderConfigError, MetadataConfig, MetadataEncoder, MetadataSchema
from boardgraph.graph import NodeFeatures


@pytest.fixture
def store() -> NodeFeatures:
    f = NodeFeatures(6)
    f.add_column("brand", ["a", "b", "a", None, "c", "d"], "categorical")
    f.add_column("price", [1.0, 3.0, None, 5.0, 2.0, 400.0], "numeric")
    f.add_column("style", [0, 1, 0, 1, 0, 1], "label")
    return f


def bucket(field: str, value: str, vocab: int, buckets: int) -> int:
    return 1 + vocab + zlib.crc32(f"{field}\x1f{value}".encode()) % buckets


def test_fit_vocab_and_statistics(store):
    s = MetadataSchema.fit(store, idx=torch.arange(4), num_buckets=4)
    assert s.categorical == {"brand": ["a", "b"]}  # c, d unseen in pins 0..3
    mean, std = s.numeric["price"]
    assert mean == pytest.approx(3.0) and std == pytest.approx(math.sqrt(8 / 3))  # of 1, 3, 5 (NaN skipped)
    assert s.cardinalities == (1 + 2 + 4,)
    assert MetadataSchema.fit(store, min_count=2).categorical == {"brand": ["a"]}
    with pytest.raises(EncoderConfigError, match="'style' is not a categorical feature"):
        MetadataSchema.fit(store, categorical=["style"])


def test_encode_known_missing_and_hashed_values(store):
    s = MetadataSchema.fit(store, idx=torch.arange(4), num_buckets=4)
    cat, num, missing = s.encode(store)
    expected = [1, 2, 1, 0, bucket("brand", "c", 2, 4), bucket("brand", "d", 2, 4)]
    assert cat.dtype == torch.int64 and cat[:, 0].tolist() == expected
    assert all(3 <= v < 7 for v in expected[4:])  # hashed ids live after the vocabulary
    assert num[:, 0].tolist() == [1.0, 3.0, 0.0, 5.0, 2.0, 400.0] and missing[:, 0].tolist() == [
        False, False, True, False, False, False]
    # hashing is stable: the same unseen value always gets the same id, whatever the store's codes
    assert s.encode_values("brand", ["d", "c", None, float("nan"), "a"]).tolist() == [
        expected[5], expected[4], 0, 0, 1]
    assert MetadataSchema.from_dict(s.to_dict()) == s


def test_tokens_are_embeddings_and_standardised_numeric(store):
    s = MetadataSchema.fit(store, idx=torch.arange(4), num_buckets=4)
    torch.manual_seed(0)
    tower = MetadataEncoder(MetadataConfig.from_schema(s, dim=8, clip=5.0))
    cat, num, missing = s.encode(store)
    out = tower(cat, num, missing)
    assert out.tokens.shape == (6, 2, 8) and out.mask.all() and out.pooled.shape == (6, 8)
    ln = lambda v: F.layer_norm(v, (8,), tower.norm.weight, tower.norm.bias)  # noqa: E731
    torch.testing.assert_close(out.tokens[:, 0], ln(tower.table.weight[cat[:, 0]]))
    mean, std = s.numeric["price"]
    z = (torch.tensor([1.0, 3.0, 0.0, 5.0, 2.0, 400.0]) - mean) / std
    z[5] = 5.0  # 400 is clipped to +5 standard deviations
    raw = z[:, None] * tower.num_weight[0] + tower.num_bias[0]
    raw[2] = tower.num_missing[0]  # the missing price uses the learned "missing" embedding
    torch.testing.assert_close(out.tokens[:, 1], ln(raw))
    torch.testing.assert_close(out.pooled, out.tokens.mean(1))


def test_two_fields_use_separate_rows(pin_features):
    s = MetadataSchema.fit(pin_features, num_buckets=2)
    tower = MetadataEncoder(MetadataConfig.from_schema(s, dim=4))
    assert tower.offsets.tolist() == [0, s.cardinalities[0]]
    assert tower.table.num_embeddings == sum(s.cardinalities)


def test_bad_configs():
    with pytest.raises(EncoderConfigError, match="no fields"):
        MetadataEncoder(MetadataConfig())
    with pytest.raises(EncoderConfigError, match="numeric_mean has 1 entries but numeric_std 0"):
        MetadataEncoder(MetadataConfig(numeric_mean=(0.0,)))
