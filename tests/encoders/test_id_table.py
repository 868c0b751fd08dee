"""Per-pin ID tables (``encoders.id_table``): full and hashed."""
from __future__ import annotations

import pytest
import torch

from boardgraph.encoders import EncoderConfigError, IdTable, PinEncoderConfig, hash_rows
from boardgraph.encoders.fusion import FusionConfig


def test_hash_rows_are_fixed_in_range_and_well_mixed():
    # the rows a pin reads never change between runs, versions or devices: pinned values
    assert hash_rows(torch.tensor([0, 1, 2 ** 33 + 5]), 1000, 4).tolist() == [
        [345, 750, 90, 263], [413, 236, 460, 481], [487, 325, 405, 644]]
    r = hash_rows(torch.arange(40_000), 10_000, 2)
    assert r.shape == (40_000, 2) and int(r.min()) >= 0 and int(r.max()) < 10_000
    # consecutive indices spread over every bucket, each hash about evenly (Poisson(4) load)
    for j in range(2):
        load = torch.bincount(r[:, j], minlength=10_000)
        assert int((load == 0).sum()) < 400 and int(load.max()) <= 16      # e^-4 = 1.8% empty
    # pins sharing both buckets: about n^2 / (2 buckets^2) = 8 pairs
    assert 40_000 - r[:, 0].mul(10_000).add(r[:, 1]).unique().numel() < 30
    # the two hashes are independent: agreeing on one says nothing of the other
    assert abs(float((r[:, 0] % 2 == r[:, 1] % 2).float().mean()) - 0.5) < 0.02


def test_full_table_reads_one_row_per_pin():
    t = IdTable(5, 3)
    assert not t.hashed and t.num_rows == 5 and t.hashes == 1 and float(t.weight.detach().abs().sum()) == 0.0
    with torch.no_grad():
        t.weight.copy_(torch.arange(15.0).view(5, 3))
    assert t(torch.tensor([4, 0])).tolist() == [[12.0, 13.0, 14.0], [0.0, 1.0, 2.0]]
    assert list(t.state_dict()) == ["weight"]      # the key nn.Embedding had: earlier checkpoints load


def test_hashed_table_sums_its_buckets_and_trains_them():
    t = IdTable(1000, 4, buckets=50, hashes=3)
    assert t.hashed and t.num_rows == 50 and tuple(t.weight.shape) == (50, 4)
    with torch.no_grad():
        t.weight.normal_()
    idx = torch.tensor([7, 999, 7])
    rows = hash_rows(idx, 50, 3)
    assert torch.allclose(t(idx), t.weight[rows].sum(1))
    assert torch.equal(t(idx)[0], t(idx)[2])
    t(idx).sum().backward()
    touched = torch.zeros(50, dtype=torch.bool)
    touched[rows.reshape(-1)] = True
    assert bool(t.weight.grad[touched].ne(0).all()) and float(t.weight.grad[~touched].abs().sum()) == 0.0


def test_bad_sizes_are_refused_with_a_fix():
    with pytest.raises(EncoderConfigError, match="hashes in"):
        IdTable(10, 4, buckets=5, hashes=5)
    with pytest.raises(EncoderConfigError, match="buckets >= 0"):
        IdTable(10, 4, buckets=-1)
    with pytest.raises(EncoderConfigError, match="id_hashes"):
        PinEncoderConfig(FusionConfig(dim=16), embed_dim=16, matryoshka_dims=(16,), num_ids=10, id_buckets=4,
                         id_hashes=0)
