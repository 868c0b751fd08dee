"""The spill of an out-of-core build: records by key ranges, .npy files in pieces and in ranges, sizes."""
from __future__ import annotations

import numpy as np
import pytest

from boardgraph.graph.stream.spill import Buckets, MemoryLimitError, NpyWriter, parse_memory, read_npy_range, \
    npy_length

REC = np.dtype([("row", np.int64), ("s", np.int32)])


def records(keys: np.ndarray) -> np.ndarray:
    r = np.empty(len(keys), REC)
    r["row"], r["s"] = np.arange(len(keys)), keys
    return r


@pytest.mark.parametrize("starts", [[0, 10, 20, 30], [0]])
def test_groups_come_back_in_key_order_within_capacity_and_in_added_order(tmp_path, starts):
    rng = np.random.default_rng(0)
    keys = (rng.zipf(1.3, 5000) % 40).astype(np.int32)
    b = Buckets(tmp_path / "b", REC, "s", np.array(starts))
    for part in np.array_split(records(keys), 7):
        b.add(part)
    assert b.total == 5000
    seen, last = [], -1
    assert np.bincount(keys).max() > 1000  # one key fills most of a group
    for lo, recs in b.groups(capacity=1600):
        assert len(recs) <= 1600 and recs["s"].min() >= lo > last
        last = int(recs["s"].max())
        for k in np.unique(recs["s"]):  # each key's records in the order they were added
            rows = recs["row"][recs["s"] == k]
            assert np.all(np.diff(rows) > 0)
        seen.append(recs)
    allr = np.concatenate(seen)
    assert sorted(allr["row"].tolist()) == list(range(5000))
    assert not (tmp_path / "b").exists()  # deleted as read


def test_a_key_over_capacity_is_a_group_of_its_own_up_to_16_groups(tmp_path):
    b = Buckets(tmp_path / "b", REC, "s", np.array([0]), what="board")
    b.add(records(np.r_[np.zeros(300, np.int32), np.arange(1, 50, dtype=np.int32)]))
    groups = list(b.groups(capacity=100))
    assert [len(r) for _, r in groups] == [300, 49] and set(groups[0][1]["s"]) == {0}
    b = Buckets(tmp_path / "c", REC, "s", np.array([0]), what="board")
    b.add(records(np.r_[np.zeros(1700, np.int32), np.arange(1, 50, dtype=np.int32)]))
    with pytest.raises(MemoryLimitError, match="one board .* has 1,700 memberships"):
        list(b.groups(capacity=100))


def test_npy_writer_and_range_reads(tmp_path):
    w = NpyWriter(tmp_path / "a.npy", np.int32)
    for part in np.array_split(np.arange(1000, dtype=np.int64), 5):
        w.write(part)
    assert w.close() == 1000
    a = np.load(tmp_path / "a.npy")
    assert a.dtype == np.int32 and np.array_equal(a, np.arange(1000))
    assert np.array_equal(np.load(tmp_path / "a.npy", mmap_mode="r")[990:], np.arange(990, 1000))
    assert np.array_equal(read_npy_range(tmp_path / "a.npy", 10, 20), np.arange(10, 20))
    assert read_npy_range(tmp_path / "a.npy", 995, 2000).tolist() == [995, 996, 997, 998, 999]
    np.save(tmp_path / "b.npy", np.arange(7, dtype=np.float32))
    assert npy_length(tmp_path / "b.npy") == 7 and read_npy_range(tmp_path / "b.npy", 5, 7).tolist() == [5.0, 6.0]


def test_parse_memory():
    assert parse_memory("4G") == parse_memory("4GiB") == parse_memory("4gb") == 4 * 2**30
    assert parse_memory("512M") == 512 * 2**20 and parse_memory("2.5G") == int(2.5 * 2**30)
    assert parse_memory(2**30) == 2**30
    with pytest.raises(ValueError, match="not a size"):
        parse_memory("four gigs")
    with pytest.raises(ValueError, match="under 256M"):
        parse_memory("100M")


def test_a_heavy_key_beside_light_ones_is_cut_out_and_the_split_ends(tmp_path):
    # key 0 holds most records and key 1 a few: the split must separate them (it once recursed forever)
    b = Buckets(tmp_path / "b", REC, "s", np.array([0]), what="board")
    b.add(records(np.r_[np.zeros(900, np.int32), np.ones(5, np.int32), np.full(3, 7, np.int32)]))
    groups = list(b.groups(capacity=100))
    assert [sorted(set(r["s"].tolist())) for _, r in groups] == [[0], [1, 7]]
    assert sum(len(r) for _, r in groups) == 908
