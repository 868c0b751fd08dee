"""Ranking metrics on hand-computed examples, bootstrap intervals and slicing."""
from __future__ import annotations

import math

import pytest
import torch

from boardgraph.evaluation.metrics import (MetricInputError, hit_rate_at_k, mrr, ndcg_at_k, padded_to_mask, positive_ranks,
                                ranking_metrics, recall_at_k)

L3 = 1.0 / math.log2(3)  # discount at position 2
L5 = 1.0 / math.log2(5)  # discount at position 4

# Query 0: positives 1 (0.8) and 3 (0.6); negatives 0 (0.9), 2 (0.7), 4 (0.5)
#   rank(1) = 1 + |{0}| = 2, rank(3) = 1 + |{0, 2}| = 3 -> list positions 2 and 4.
# Query 1: positive 1 (0.5) tied with negative 0 (0.5), negative 3 (0.9) above it
#   rank(1) = 1 + |{0, 3}| = 3 (the tie counts against the positive).
SCORES = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5],
                       [0.5, 0.5, 0.1, 0.9, 0.3]])
POS = torch.tensor([[False, True, False, True, False],
                    [False, True, False, False, False]])


def test_ranks_filtered_with_ties(device):
    ranks = positive_ranks(SCORES.to(device), POS.to(device))
    assert ranks.device.type == device
    assert ranks.tolist() == [[6, 2, 6, 3, 6], [6, 3, 6, 6, 6]]


def test_padded_positives_equal_mask():
    padded = torch.tensor([[3, 1], [1, -1]])
    assert torch.equal(padded_to_mask(padded, 5), POS)
    a = ranking_metrics(SCORES, padded, [2])
    b = ranking_metrics(SCORES, POS, [2])
    assert all(torch.equal(a[n].per_query, b[n].per_query) for n in a)


def test_recall_hit_mrr_hand_computed(device):
    s, p = SCORES.to(device), POS.to(device)
    rec = recall_at_k(s, p, [1, 2, 3, 4])
    # list positions: q0's positives at 2 and 4 (not 2 and 3: the positive at 2 takes a place), q1's at 3
    assert [rec[k].per_query.tolist() for k in (1, 2, 3, 4)] == [[0, 0], [0.5, 0], [0.5, 1], [1, 1]]
    assert rec[2].mean == pytest.approx(0.25)
    hit = hit_rate_at_k(s, p, [2, 3])
    assert hit[2].per_query.tolist() == [1.0, 0.0] and hit[3].mean == 1.0
    m = mrr(s, p)
    assert m.per_query.tolist() == pytest.approx([1 / 2, 1 / 3])
    assert m.mean == pytest.approx(5 / 12)


def test_ndcg_hand_computed(device):
    nd = ndcg_at_k(SCORES.to(device), POS.to(device), [2, 3, 5])
    # q0: positions 2 and 4; ideal has positives at 1 and 2. q1: position 3, ideal at 1.
    assert nd[2].per_query.tolist() == pytest.approx([L3 / (1 + L3), 0.0])
    assert nd[3].per_query.tolist() == pytest.approx([L3 / (1 + L3), 0.5])
    assert nd[5].per_query.tolist() == pytest.approx([(L3 + L5) / (1 + L3), 0.5])


def test_other_positives_do_not_push_down():
    s = torch.tensor([[0.9, 0.8, 0.1]])
    p = torch.tensor([[True, True, False]])
    assert positive_ranks(s, p).tolist() == [[1, 1, 4]]
    r = ranking_metrics(s, p, [1, 2])
    assert r["recall@1"].mean == 0.5 and r["recall@2"].mean == 1.0   # a top-1 list holds one of the two
    assert r["hit_rate@1"].mean == 1.0 and r["mrr"].mean == 1.0
    assert r["ndcg@1"].mean == pytest.approx(1.0)   # positions 1, 2; ideal@1 = 1
    assert r["ndcg@2"].mean == pytest.approx(1.0)   # never above 1 despite two rank-1 positives


def test_exclusion_removes_candidates():
    excl = torch.zeros(2, 5, dtype=torch.bool)
    excl[0, 0] = True   # q0: negative 0.9 removed -> ranks 1 and 2
    excl[1, 3] = True   # q1: negative 0.9 removed -> rank 2 (still below the tie)
    assert positive_ranks(SCORES, POS, excl).tolist() == [[6, 1, 6, 2, 6], [6, 2, 6, 6, 6]]
    r = ranking_metrics(SCORES, POS, [1], exclude=excl)
    assert r["recall@1"].per_query.tolist() == [0.5, 0.0]
    assert r["mrr"].per_query.tolist() == [1.0, 0.5]


def test_excluded_positive_and_empty_queries_are_skipped():
    excl = torch.zeros(2, 5, dtype=torch.bool)
    excl[1, 1] = True   # q1's only positive is excluded -> q1 skipped
    r = ranking_metrics(SCORES, POS, [3], exclude=excl)["recall@3"]
    assert r.valid.tolist() == [True, False]
    assert r.n_skipped == 1 and r.n_scored == 1
    assert math.isnan(r.per_query[1]) and r.mean == 0.5   # q0: positions 2 and 4 (rank 3 + one better positive)
    none = ranking_metrics(SCORES, torch.zeros(2, 5, dtype=torch.bool), [3])["mrr"]
    assert none.n_skipped == 2 and math.isnan(none.mean)


def test_chunking_and_brute_force_agree():
    g = torch.Generator().manual_seed(0)
    s = torch.randint(0, 6, (37, 20), generator=g).float()  # many ties
    p = torch.rand(37, 20, generator=g) < 0.2
    ex = torch.rand(37, 20, generator=g) < 0.1
    ranks = positive_ranks(s, p, ex, chunk_size=4)
    for q in range(37):  # reference: the definition, one query and one positive at a time
        neg = ~p[q] & ~ex[q]
        for j in range(20):
            want = 1 + int((neg & (s[q] >= s[q, j])).sum()) if p[q, j] and not ex[q, j] else 21
            assert int(ranks[q, j]) == want
    a = ranking_metrics(s, p, [1, 5, 50], ex, chunk_size=4)
    b = ranking_metrics(s, p, [1, 5, 50], ex, chunk_size=1000)
    for name in a:
        assert torch.equal(a[name].valid, b[name].valid)
        assert torch.allclose(a[name].per_query, b[name].per_query, equal_nan=True)
        finite = a[name].per_query[a[name].valid]
        assert bool(((finite >= 0) & (finite <= 1)).all()), name
    # Recall@K by brute force: sort the non-excluded candidates by score, positives after tied
    # negatives, and count the positives among the first K; never above min(K, n_pos) / n_pos
    for k in (1, 5, 50):
        for q in range(37):
            keep = ~ex[q]
            if not bool((p[q] & keep).any()):
                continue
            sc, pos = s[q][keep], p[q][keep]
            order = sorted(range(int(keep.sum())), key=lambda i: (-float(sc[i]), bool(pos[i])))
            n_pos = int(pos.sum())
            want = sum(bool(pos[i]) for i in order[:k]) / n_pos
            assert float(a[f"recall@{k}"].per_query[q]) == pytest.approx(want)
            assert want <= min(k, n_pos) / n_pos


def test_random_scores_recall_is_k_over_candidates():
    g = torch.Generator().manual_seed(0)
    n, k = 400, 20
    p = torch.zeros(3000, n, dtype=torch.bool)
    p[:, :25] = True                        # 25 positives per query: K / N, not a filtered K / (N - 24)
    r = ranking_metrics(torch.rand(3000, n, generator=g), p, [k])
    assert r[f"recall@{k}"].mean == pytest.approx(k / n, rel=0.03)


def test_bad_inputs_raise():
    with pytest.raises(MetricInputError, match="shape"):
        ranking_metrics(SCORES, POS[:, :4], [1])
    with pytest.raises(MetricInputError, match="exclude"):
        ranking_metrics(SCORES, POS, [1], exclude=torch.zeros(2, 5))
    with pytest.raises(MetricInputError, match="ks must be positive"):
        ranking_metrics(SCORES, POS, [0])
    with pytest.raises(MetricInputError, match="non-finite.*exclude"):
        ranking_metrics(SCORES.masked_fill(POS, float("-inf")), POS, [1])
    with pytest.raises(MetricInputError, match="index 7 at \\[0, 1\\]"):
        padded_to_mask(torch.tensor([[1, 7]]), 5)
