"""Vectorised primitives: uniform subsets (exact and chi-square), Floyd, search, compaction, skips."""
import itertools
import math

import numpy as np
import pytest
import torch

from boardgraph.sampling import _ops
from boardgraph.sampling._ops import (Compactor, find_in_segments, floyd_subsets, floyd_subsets_np,
                                      floyd_subsets_parallel, resolve_generator, segment_search,
                                      uniform_offsets, uniform_offsets_np)
from boardgraph.sampling._topology import PositionSet
from boardgraph.sampling.errors import SamplingError

ALPHA = 1e-4


def _subset_counts(off: torch.Tensor, d: int, k: int) -> list[int]:
    index = {c: i for i, c in enumerate(itertools.combinations(range(d), k))}
    counts = [0] * len(index)
    for row in off.cpu().tolist():
        counts[index[tuple(sorted(row))]] += 1
    return counts


def test_uniform_offsets_small_rows_take_everything(device):
    deg = torch.tensor([0, 1, 3, 4], device=device)
    off, count = uniform_offsets(deg, 4, torch.Generator(device=device).manual_seed(0), replace=False)
    assert count.tolist() == [0, 1, 3, 4]
    assert off[1, :1].tolist() == [0]
    assert off[2, :3].tolist() == [0, 1, 2]
    assert sorted(off[3].tolist()) == [0, 1, 2, 3]


@pytest.mark.parametrize("d,k", [(7, 3), (5, 4), (30, 2)])
def test_uniform_offsets_subsets_are_uniform(device, chi2, d, k):
    n = 200 * math.comb(d, k)
    deg = torch.full((n,), d, device=device)
    off, count = uniform_offsets(deg, k, torch.Generator(device=device).manual_seed(1), replace=False)
    assert bool((count == k).all())
    assert bool((off >= 0).all()) and bool((off < d).all())
    assert all(len(set(r)) == k for r in off.cpu().tolist())  # without replacement
    counts = _subset_counts(off, d, k)
    assert chi2(counts, [1] * len(counts)) > ALPHA


def test_uniform_offsets_large_rows_inclusion_is_uniform(device, chi2):
    # d >> k: mostly the sorted-spacings path, some Floyd redraws; every position equally likely.
    d, k, n = 500, 10, 20000
    off, _ = uniform_offsets(torch.full((n,), d, device=device), k,
                             torch.Generator(device=device).manual_seed(2), replace=False)
    assert all(len(set(r)) == k for r in off[:2000].cpu().tolist())
    hist = torch.bincount(off.reshape(-1), minlength=d)
    assert chi2(hist, torch.ones(d)) > ALPHA


@pytest.mark.parametrize("floyd", [floyd_subsets, floyd_subsets_parallel])
def test_floyd_subsets_are_uniform(device, chi2, floyd):
    d, k = 6, 3
    off = floyd(torch.full((4000,), d, device=device), k, torch.Generator(device=device).manual_seed(3))
    assert all(len(set(r)) == k for r in off.cpu().tolist())
    counts = _subset_counts(off, d, k)
    assert chi2(counts, [1] * len(counts)) > ALPHA


def test_uniform_offsets_with_replacement(device, chi2):
    deg = torch.tensor([0, 3], device=device).repeat(5000)
    off, count = uniform_offsets(deg, 4, torch.Generator(device=device).manual_seed(4), replace=True)
    assert count.view(-1, 2).tolist()[0] == [0, 4]
    vals = off.view(5000, 2, 4)[:, 1].reshape(-1)
    assert chi2(torch.bincount(vals, minlength=3), [1, 1, 1]) > ALPHA


def test_uniform_offsets_reproducible_under_a_generator(device):
    deg = torch.tensor([3, 50, 9, 1000], device=device)
    a = uniform_offsets(deg, 5, torch.Generator(device=device).manual_seed(7), replace=False)[0]
    b = uniform_offsets(deg, 5, torch.Generator(device=device).manual_seed(7), replace=False)[0]
    c = uniform_offsets(deg, 5, torch.Generator(device=device).manual_seed(8), replace=False)[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_segment_search_finds_the_covering_position():
    cum = torch.tensor([0.0, 1.0, 1.0, 3.0, 6.0, 10.0])  # weights 1, 0, 2, 3, 4
    start, end = torch.tensor([0, 0, 0, 2, 2]), torch.tensor([5, 5, 5, 4, 4])
    u = torch.tensor([0.5, 1.0, 9.99, 1.0, 5.9])
    assert segment_search(cum, start, end, u).tolist() == [0, 2, 4, 2, 3]


def test_find_in_segments():
    indptr = torch.tensor([0, 3, 3, 5])
    indices = torch.tensor([1, 4, 7, 0, 2], dtype=torch.int32)
    rows, vals = torch.tensor([0, 0, 0, 1, 2, 2, 2]), torch.tensor([1, 7, 5, 3, 0, 2, 9])
    assert find_in_segments(indptr, indices, rows, vals).tolist() == [0, 2, -1, -1, 3, 4, -1]


def test_position_set_maps_offsets_around_excluded_positions():
    ps = PositionSet(torch.tensor([3, 11, 13]))  # rows [0, 10) and [10, 15)
    start, end = torch.tensor([0, 10]), torch.tensor([10, 15])
    i0, x = ps.locate(start, end)
    assert i0.tolist() == [0, 1] and x.tolist() == [1, 2]
    r = torch.arange(3)
    assert ps.map(start[1], i0[1], r).tolist() == [10, 12, 14]
    assert ps.map(start[0], i0[0], torch.arange(9)).tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    # weighted: weights 1..15 at positions 0..14, positions 11 and 13 excluded
    w = torch.arange(1, 16, dtype=torch.float64)
    cum = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(w, 0)])
    i1 = i0 + x
    assert float(ps.excluded_mass(cum, i0, i1)[1]) == 12 + 14  # weights of positions 11 and 13
    # in row 1 the kept edges are 10 (w 11), 12 (w 13), 14 (w 15): reduced offsets 0, 11, 24
    u = torch.tensor([0.5, 11.5, 24.5], dtype=torch.float64)
    coord = ps.map_weighted(cum, start[1].expand(3), i0[1].expand(3), i1[1].expand(3), u)
    assert segment_search(cum, start[1].expand(3), end[1].expand(3), coord).tolist() == [10, 12, 14]


def test_compactor_first_appearance_with_prefix(device, cpu_path):
    c = Compactor()
    for _ in range(3):  # stale entries of earlier calls must not leak into later ones
        uniq, local = c("pin", 10, torch.tensor([5, 3, 5, 7, 3, 1], device=device), torch.tensor([7, 2], device=device),
                        numpy_cpu=True)
        assert uniq.tolist() == [7, 2, 5, 3, 1]
        assert local.tolist() == [2, 3, 2, 0, 3, 4]
    uniq, local = c("pin", 10, torch.tensor([9, 9, 0], device=device), numpy_cpu=True)
    assert uniq.tolist() == [9, 0] and local.tolist() == [0, 0, 1]


def test_resolve_generator_rejects_other_devices():
    assert resolve_generator(None, torch.device("cpu")) is None
    g = resolve_generator(5, torch.device("cpu"))
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=torch.Generator().manual_seed(5)))
    with pytest.raises(SamplingError, match="torch.Generator"):
        resolve_generator("x", torch.device("cpu"))  # type: ignore[arg-type]
    if torch.cuda.is_available():
        with pytest.raises(SamplingError, match="device"):
            resolve_generator(torch.Generator(), torch.device("cuda"))


@pytest.mark.parametrize("d,k", [(12, 10), (40, 7)])
def test_parallel_floyd_matches_floyd_in_distribution(chi2, d, k):
    # inclusion frequency of every position is k / d for both variants (chain-heavy cases)
    for floyd in (floyd_subsets, floyd_subsets_parallel):
        off = floyd(torch.full((6000,), d), k, torch.Generator().manual_seed(9))
        assert all(len(set(r)) == k and max(r) < d for r in off.tolist())
        assert chi2(torch.bincount(off.reshape(-1), minlength=d), torch.ones(d)) > ALPHA


def test_compactor_survives_stamp_wraparound(cpu_path):
    c = Compactor()
    ids = torch.tensor([4, 1, 4, 9])
    for i in range(2 * 2**11 + 5):  # the int32 map runs out of stamps twice and is zeroed
        c("pin", 12, ids if i % 2 else ids.flip(0), torch.tensor([i % 12]) if i % 3 == 0 else None, numpy_cpu=True)
    uniq, local = c("pin", 12, ids, numpy_cpu=True)
    assert uniq.tolist() == [4, 1, 9] and local.tolist() == [0, 1, 0, 2]
    uniq, local = c("pin", 12, torch.tensor([3, 3]), torch.tensor([3, 5]), numpy_cpu=True)
    assert uniq.tolist() == [3, 5] and local.tolist() == [0, 0]


def test_numpy_floyd_is_uniform(chi2):
    d, k = 6, 3
    off = floyd_subsets_np(np.full(4000, d), k, torch.Generator().manual_seed(3))
    assert all(len(set(r)) == k for r in off.tolist())
    counts = _subset_counts(torch.from_numpy(np.ascontiguousarray(off)), d, k)
    assert chi2(counts, [1] * len(counts)) > ALPHA


@pytest.mark.parametrize("d,k", [(12, 10), (40, 7)])
def test_numpy_floyd_inclusion_is_uniform(chi2, d, k):
    off = floyd_subsets_np(np.full(6000, d), k, torch.Generator().manual_seed(9))
    assert all(len(set(r)) == k and max(r) < d for r in off.tolist())
    assert chi2(np.bincount(off.reshape(-1), minlength=d), torch.ones(d)) > ALPHA


def test_numpy_floyd_matches_torch_floyd():
    # floyd_subsets runs its sequential rounds when n * k * k > 2**16: same draws, same offsets
    deg = torch.randint(11, 5000, (3000,), generator=torch.Generator().manual_seed(4))
    deg[::7] = 11  # chain-heavy rows (d close to k)
    a = floyd_subsets(deg, 10, torch.Generator().manual_seed(5))
    b = floyd_subsets_np(deg.numpy(), 10, torch.Generator().manual_seed(5))
    assert torch.equal(a, torch.from_numpy(b).long())


@pytest.mark.parametrize("frac_big", [0.0, 0.3, 0.8, 1.0])
def test_uniform_offsets_np_matches_torch(frac_big):
    # every branch: no row / a minority / a majority / every row needs a random subset
    g = torch.Generator().manual_seed(6)
    n, k = 8000, 10
    big = torch.rand(n, generator=g) < frac_big
    deg = torch.where(big, torch.randint(k + 1, 300, (n,), generator=g), torch.randint(0, k + 1, (n,), generator=g))
    off_t, count_t = uniform_offsets(deg, k, torch.Generator().manual_seed(7), replace=False)
    off_n, count_n = uniform_offsets_np(deg.numpy(), k, torch.Generator().manual_seed(7))
    assert torch.equal(count_t, torch.from_numpy(count_n))
    valid = torch.arange(k) < count_t.unsqueeze(1)
    assert torch.equal(off_t[valid], torch.from_numpy(np.ascontiguousarray(off_n)).long()[valid])


def test_compactor_numpy_matches_torch(monkeypatch):
    g = torch.Generator().manual_seed(8)
    res = {}
    for flag in (True, False):
        monkeypatch.setattr(_ops, "NUMPY_CPU", flag)
        c, out = Compactor(), []
        for n, m, p in ((1000, 5000, 30), (50, 300, 0), (10**6, 2**20 + 5, 100), (1000, 5000, 30)):
            gg = torch.Generator().manual_seed(n + m + p)  # the same inputs for both paths
            ids = torch.randint(0, n, (m,), generator=gg)
            prefix = torch.randperm(n, generator=gg)[:p] if p else None
            out.append(c("pin", n, ids, prefix, numpy_cpu=True))
        res[flag] = out
    for (u1, l1), (u2, l2) in zip(res[True], res[False]):
        assert torch.equal(u1, u2) and torch.equal(l1, l2) and u1.dtype == l1.dtype == torch.long
