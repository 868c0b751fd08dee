"""Negatives: distributions, logQ, rank bands, masks, exclusion."""
import math

import pytest
import torch

from boardgraph.sampling import (EdgeExclusion, HardNegativeSampler, PinSageSampler,
                                 PopularityNegativeSampler, SamplingError, UniformNegativeSampler,
                                 in_batch_negative_mask, positive_mask)

FWD = ("pin", "in", "board")
ALPHA = 1e-4
PIN_DEG = [1, 2, 2, 1, 1, 2, 1, 0]  # boards per pin in the tiny graph


def test_popularity_probabilities_and_log_q(tiny, gen, chi2):
    s = PopularityNegativeSampler(tiny, "pin")
    w = torch.tensor([d ** 0.75 for d in PIN_DEG], dtype=torch.float64)
    torch.testing.assert_close(s.probs.cpu(), w / w.sum())
    neg = s.sample(torch.zeros(500, dtype=torch.long, device=tiny.device), 40, gen(1))
    assert neg.nodes.shape == (500, 40)
    torch.testing.assert_close(neg.log_q.cpu(), torch.log(w / w.sum())[neg.nodes.cpu()].float())
    assert not bool((neg.nodes == 7).any())  # degree 0: never drawn
    assert chi2(torch.bincount(neg.nodes.reshape(-1).cpu(), minlength=8), w) > ALPHA
    assert not bool(neg.mask[neg.nodes == 0].any())  # the anchor itself is masked
    assert bool(neg.mask[neg.nodes != 0].all())


def test_board_popularity_uses_board_degree_without_held_out_edges(tiny):
    s = PopularityNegativeSampler(tiny, "board", anchor_type="pin")
    w = torch.tensor([3, 4, 1, 2], dtype=torch.float64) ** 0.75
    torch.testing.assert_close(s.probs.cpu(), w / w.sum())
    held = EdgeExclusion.from_pairs(tiny, {FWD: (torch.tensor([5, 0]), torch.tensor([2, 0]))})
    s = PopularityNegativeSampler(tiny, "board", anchor_type="pin", exclude=held)
    w = torch.tensor([2, 4, 0, 2], dtype=torch.float64) ** 0.75  # board 2 lost its only pin
    torch.testing.assert_close(s.probs.cpu(), w / w.sum())


def test_uniform_negatives_and_edge_check(tiny, gen, chi2):
    s = UniformNegativeSampler(tiny, "board", anchor_type="pin", edge_check=FWD)
    anchors = torch.tensor([1, 5, 7], device=tiny.device).repeat(300)
    neg = s.sample(anchors, 8, gen(2))
    torch.testing.assert_close(neg.log_q.cpu(), torch.full((900, 8), -math.log(4)))
    assert chi2(torch.bincount(neg.nodes.reshape(-1).cpu(), minlength=4), [1, 1, 1, 1]) > ALPHA
    own = {1: {0, 1}, 5: {1, 2}, 7: set()}  # a pin's own boards are masked
    for a, row, m in zip(anchors.tolist(), neg.nodes.tolist(), neg.mask.tolist()):
        assert all(ok == (b not in own[a]) for b, ok in zip(row, m))


def test_positive_mask_and_in_batch_mask_exact():
    anchors = torch.tensor([0, 0, 1, 2])
    positives = torch.tensor([1, 2, 0, 3])
    cand = torch.tensor([[1, 2, 3, 0], [5, 1, 0, 4], [0, 1, 2, 3], [3, 3, 2, 1]])
    got = positive_mask(anchors, cand, positives)
    assert got.tolist() == [[True, True, False, True],   # 1, 2: positives of anchor 0; 0 itself
                            [False, True, True, False],
                            [True, True, False, False],
                            [True, True, True, False]]
    ib = in_batch_negative_mask(anchors, positives)
    # row i: which positives[j] may be negatives for anchors[i]
    assert ib.tolist() == [[False, False, False, True],   # 1, 2 are its positives; 0 is itself
                           [False, False, False, True],
                           [False, True, False, True],    # positive 1 (row 0) is anchor 1 itself
                           [True, False, True, False]]    # positive 2 (row 1) is anchor 2 itself


def test_positive_mask_with_several_positives_per_anchor():
    anchors = torch.tensor([4, 6])
    positives = torch.tensor([[1, -1], [2, 3]])  # -1: padding
    cand = torch.tensor([[1, 2, 3, 6], [1, 2, 3, 6]])
    assert positive_mask(anchors, cand, positives).tolist() == [[True, False, False, False],
                                                               [False, True, True, True]]


def test_hard_negatives_come_from_the_rank_band(lookbook, gen):
    walker = PinSageSampler(lookbook, 1, num_walks=60, num_traversals=5, restart_prob=0.3)
    lo, hi = 5, 25
    s = HardNegativeSampler(lookbook, (lo, hi), walker=walker, fallback=None)
    anchors = torch.arange(0, 400, 9, device=lookbook.device)
    neg = s.sample(anchors, 12, gen(3))
    assert neg.log_q is None
    nodes, counts = walker.ranked(anchors, gen(3))  # the same walks
    for i in range(anchors.numel()):
        band = set(nodes[i, lo:hi][counts[i, lo:hi] > 0].tolist())
        drawn = neg.nodes[i][neg.nodes[i] >= 0].tolist()
        assert set(drawn) <= band
        assert (len(drawn) == 12) == bool(band)
        assert anchors[i].item() not in drawn


def test_hard_negatives_fall_back_when_the_band_is_empty(tiny, gen):
    walker = PinSageSampler(tiny, 1, num_walks=5, num_traversals=2)
    s = HardNegativeSampler(tiny, (3, 6), walker=walker)  # the tiny graph never has 3+ distinct visits from pin 7
    neg = s.sample(torch.tensor([7], device=tiny.device), 10, gen(4))
    assert bool((neg.nodes >= 0).all()) and not bool((neg.nodes == 7).any())
    with pytest.raises(SamplingError, match="raise num_walks"):
        HardNegativeSampler(tiny, (5, 100), walker=walker)
