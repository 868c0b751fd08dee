"""Bootstrap intervals, paired differences and slicing by a group label (boardgraph.evaluation.stats)."""
from __future__ import annotations

import pytest
import torch

from boardgraph.evaluation.metrics import MetricInputError
from boardgraph.evaluation.stats import bootstrap_ci, paired_bootstrap, slice_metric


def test_bootstrap_deterministic_and_contains_mean():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(200, generator=g).double()
    a, b = bootstrap_ci(x, n_boot=500, seed=3), bootstrap_ci(x, n_boot=500, seed=3)
    assert a == b
    assert bootstrap_ci(x, n_boot=500, seed=4) != a
    assert a.estimate == pytest.approx(float(x.mean()))
    assert a.low < a.estimate < a.high
    # sd of the mean of U(0,1) over 200 queries is 0.289 / sqrt(200) = 0.020: width ~ 4 sd.
    assert 0.06 < a.high - a.low < 0.10
    assert a.n == 200 and a.n_boot == 500


def test_paired_bootstrap_excludes_and_includes_zero():
    g = torch.Generator().manual_seed(2)
    base = torch.rand(100, generator=g).double()
    better = base + 0.1 + 0.01 * torch.randn(100, generator=g).double()
    r = paired_bootstrap(better, base, n_boot=1000, seed=0)
    assert r.estimate == pytest.approx(float((better - base).mean()))
    assert r.excludes_zero and 0.09 < r.low < r.estimate < r.high < 0.11
    # differences +1 / -1 alternating: mean 0, the interval must straddle 0
    d = torch.tensor([1.0, -1.0] * 50, dtype=torch.float64)
    r0 = paired_bootstrap(base + d, base, n_boot=1000, seed=0)
    assert r0.estimate == pytest.approx(0.0, abs=1e-12)
    assert r0.low < 0 < r0.high and not r0.excludes_zero


def test_paired_bootstrap_drops_nan_and_checks_length():
    a = torch.tensor([1.0, float("nan"), 3.0])
    b = torch.tensor([0.0, 5.0, 1.0])
    r = paired_bootstrap(a, b, n_boot=50)
    assert r.n == 2 and r.estimate == pytest.approx(1.5)
    with pytest.raises(MetricInputError, match="same queries"):
        paired_bootstrap(a, b[:2])


def test_slice_metric_groups_ratio_and_flag():
    per_query = torch.tensor([1.0, 0.0, 1.0, 1.0, float("nan"), 0.5])
    groups = ["a", "a", "b", "b", "b", None]
    s = slice_metric(per_query, groups, threshold=0.8)
    assert s.groups == ["a", "b"]
    assert s.means.tolist() == [0.5, 1.0] and s.counts.tolist() == [2, 2]
    assert s.worst == "a" and s.best == "b"
    assert s.worst_best_ratio == pytest.approx(0.5) and s.flagged
    assert s.n_unlabelled == 1
    assert s.to_frame()["count"].tolist() == [2, 2]
    assert not slice_metric(per_query, groups, threshold=0.4).flagged
    # min_count leaves small groups out of the ratio
    s2 = slice_metric(torch.tensor([1.0, 1.0, 0.2]), ["x", "x", "y"], min_count=2)
    assert s2.worst_best_ratio == 1.0 and not s2.flagged
    with pytest.raises(MetricInputError, match="one group label per query"):
        slice_metric(per_query, ["a"])


def test_stratified_bootstrap_resamples_within_each_seed():
    from boardgraph.evaluation.stats import stratified_bootstrap

    seed0 = torch.tensor([1.0, 1.0, float("nan")], dtype=torch.float64)     # constant: no spread
    seed1 = torch.tensor([0.0, 1.0], dtype=torch.float64)
    empty = torch.tensor([float("nan")], dtype=torch.float64)
    means, boot = stratified_bootstrap([seed0, seed1], 400, torch.Generator().manual_seed(0))
    assert means.tolist() == [1.0, 0.5] and boot.shape == (400,)
    # the average of the seeds: (1 + mean of a resample of [0, 1]) / 2 takes the values 0.5, 0.75, 1
    assert set(boot.tolist()) <= {0.5, 0.75, 1.0} and 0.65 < float(boot.mean()) < 0.85
    again = stratified_bootstrap([seed0, seed1], 400, torch.Generator().manual_seed(0))[1]
    assert torch.equal(boot, again)
    m, b = stratified_bootstrap([empty], 10, torch.Generator().manual_seed(0))
    assert torch.isnan(m).all() and torch.isnan(b).all()
