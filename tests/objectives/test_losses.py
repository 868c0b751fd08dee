import math

import pytest
import torch
import torch.nn.functional as F

from boardgraph.objectives import (ClipLoss, CoBoardContrastiveLoss, HardNegativeCurriculum, NeighborAlignmentLoss,
                                   SigLipLoss, combine_losses, info_nce, pinsage_margin_loss, shared_board_mask)

LOG2 = math.log(2)


def test_info_nce_hand_values_and_masking():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # logits [[1, 1], [0, 0]]: each row has two equal logits -> log 2
    assert info_nce(q, k, 1.0).item() == pytest.approx(LOG2)
    # masking the off-diagonal false negatives leaves only the positive: loss 0
    mask = torch.tensor([[False, True], [True, False]])
    assert info_nce(q, k, 1.0, mask=mask).item() == pytest.approx(0.0, abs=1e-7)
    # the diagonal is never masked
    assert info_nce(q, k, 1.0, mask=torch.ones(2, 2, dtype=torch.bool)).item() == pytest.approx(0.0, abs=1e-7)
    # weights: only row 0 counts
    assert info_nce(q, k, 1.0, weight=torch.tensor([1.0, 0.0])).item() == pytest.approx(LOG2)


def test_info_nce_logq_correction_hand_value():
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[1.0, 0.0]])
    neg = torch.tensor([[0.0, 1.0]])
    # logits: positive 2*1 = 2; negative 2*0 - log(0.5) = 0.6931
    expect = -math.log(math.exp(2) / (math.exp(2) + math.exp(math.log(2))))
    assert info_nce(q, k, 2.0, negatives=neg, neg_logq=torch.tensor([math.log(0.5)])).item() == pytest.approx(expect)
    # in-batch logQ on the keys shifts the positive too
    q2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    lq = torch.tensor([0.0, math.log(0.25)])
    row0 = -math.log(math.exp(1) / (math.exp(1) + math.exp(0 - math.log(0.25))))
    row1 = -math.log(math.exp(1 - math.log(0.25)) / (math.exp(0) + math.exp(1 - math.log(0.25))))
    assert info_nce(q2, k2, 1.0, key_logq=lq).item() == pytest.approx((row0 + row1) / 2)


def test_info_nce_gradcheck():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    k = torch.randn(4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    n = torch.randn(2, 3, dtype=torch.float64, generator=g, requires_grad=True)
    mask = torch.tensor([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]], dtype=torch.bool)
    assert torch.autograd.gradcheck(lambda a, b, c: info_nce(a, b, 1.7, mask=mask, negatives=c), (q, k, n))


def test_clip_loss_hand_value_and_temperature_init():
    loss = ClipLoss(gather=False)
    assert loss.scale().item() == pytest.approx(1 / 0.07)
    img = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    txt = torch.tensor([[0.0, 2.0], [3.0, 0.0]])
    s = 1 / 0.07
    sim = F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T  # [[0, 1], [0.8, 0.6]]
    i2t = F.cross_entropy(s * sim, torch.arange(2))
    t2i = F.cross_entropy(s * sim.T, torch.arange(2))
    assert loss(img, txt).item() == pytest.approx(((i2t + t2i) / 2).item(), rel=1e-6)
    assert sim.flatten().tolist() == pytest.approx([0.0, 1.0, 0.8, 0.6])
    # scale is clamped at 100
    with torch.no_grad():
        loss.scale.log_scale.fill_(10.0)
    assert loss.scale().item() == 100.0
    # invalid rows are left out entirely
    full = ClipLoss(gather=False)(img[:1], txt[:1])
    masked = ClipLoss(gather=False)(img, txt, valid=torch.tensor([True, False]))
    assert masked.item() == pytest.approx(full.item()) and full.item() == pytest.approx(0.0, abs=1e-6)


def test_siglip_hand_value():
    loss = SigLipLoss(gather=False)
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # logits = 10 * [[1, 1], [0, 0]] - 10 = [[0, 0], [-10, -10]]; z = [[1, -1], [-1, 1]]
    ls = F.logsigmoid
    expect = -(ls(torch.tensor(0.0)) + ls(torch.tensor(-0.0)) + ls(torch.tensor(10.0)) + ls(torch.tensor(-10.0))) / 2
    assert loss(img, txt).item() == pytest.approx(expect.item(), rel=1e-6)


def test_shared_board_mask():
    a = torch.tensor([[0, 3, -1], [1, -1, -1], [-1, -1, -1]])
    m = shared_board_mask(a, torch.tensor([[3, -1, -1], [2, 1, -1], [-1, -1, -1]]))
    assert m.tolist() == [[True, False, False], [False, True, False], [False, False, False]]


def test_neighbor_alignment_masks_false_negatives_and_board_term():
    loss = NeighborAlignmentLoss(init_scale=1.0, gather=False)
    pin = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    mates = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    boards = torch.tensor([[0, -1], [0, 1], [2, -1]])  # pins 0 and 1 share board 0
    out = loss(pin, mates, boards)
    p, m = F.normalize(pin, dim=-1), F.normalize(mates, dim=-1)
    logits = p @ m.T
    logits[0, 1] = logits[1, 0] = float("-inf")
    assert out["mates"].item() == pytest.approx(F.cross_entropy(logits, torch.arange(3)).item(), rel=1e-6)
    # pins without mates: out of the loss as queries and as keys
    out2 = loss(pin, mates, boards, has_mates=torch.tensor([True, True, False]))
    l2 = logits[:2, :2]
    assert out2["mates"].item() == pytest.approx(F.cross_entropy(l2, torch.arange(2)).item(), rel=1e-6)
    # board term: board j is not a negative of pin i when i is on board j
    bemb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    bidx = torch.tensor([0, 1, 2])
    out3 = loss(pin, mates, boards, board=bemb, board_index=bidx)
    bl = p @ F.normalize(bemb, dim=-1).T
    bl[1, 0] = float("-inf")  # pin 1 is on board 0 (pin 0 is not on board 1: that negative stays)
    assert out3["board"].item() == pytest.approx(F.cross_entropy(bl, torch.arange(3)).item(), rel=1e-6)
    out3["mates"].backward()
    assert loss.scale.log_scale.grad is not None


def test_symmetric_mates_term_averages_both_directions():
    """symmetric=True: mean of pin -> fusion and fusion -> pin InfoNCE; in the reverse direction
    pins sharing a board with the seed are masked, and a pin without mates is still a key."""
    pin = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    mates = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    boards = torch.tensor([[0, -1], [0, 1], [2, -1]])  # pins 0 and 1 share board 0
    p, m = F.normalize(pin, dim=-1), F.normalize(mates, dim=-1)
    fwd, back = p @ m.T, m @ p.T
    for t in (fwd, back):
        t[0, 1] = t[1, 0] = float("-inf")
    want = 0.5 * (F.cross_entropy(fwd, torch.arange(3)) + F.cross_entropy(back, torch.arange(3)))
    got = NeighborAlignmentLoss(init_scale=1.0, gather=False, symmetric=True)(pin, mates, boards)["mates"]
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    # pin 2 without mates: out of both directions as a query; a key only in the reverse one (it is a pin)
    has = torch.tensor([True, True, False])
    got2 = NeighborAlignmentLoss(init_scale=1.0, gather=False, symmetric=True)(pin, mates, boards, has_mates=has)
    want2 = 0.5 * (F.cross_entropy(fwd[:2, :2], torch.arange(2)) + F.cross_entropy(back[:2], torch.arange(2)))
    assert got2["mates"].item() == pytest.approx(want2.item(), rel=1e-6)
    # co-board with symmetric=True is the same two-way loss against one mate
    cb = CoBoardContrastiveLoss(init_scale=1.0, gather=False, symmetric=True)(pin, mates, boards)
    assert cb.item() == pytest.approx(want.item(), rel=1e-6)


def test_neighbor_sampled_negatives_with_logq():
    loss = NeighborAlignmentLoss(init_scale=1.0, gather=False)
    pin = torch.tensor([[1.0, 0.0]])
    mates = torch.tensor([[1.0, 0.0]])
    neg = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    logq = torch.log(torch.tensor([0.5, 0.1]))
    out = loss(pin, mates, torch.tensor([[0]]), negatives=neg, neg_logq=logq)
    logits = torch.tensor([[1.0, 0.0 - math.log(0.5), -1.0 - math.log(0.1)]])
    assert out["mates"].item() == pytest.approx(F.cross_entropy(logits, torch.tensor([0])).item(), rel=1e-6)


def test_coboard_equals_mates_term_with_one_mate():
    g = torch.Generator().manual_seed(1)
    pin, mate = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    boards = torch.tensor([[0], [0], [1], [2], [2]])
    a = CoBoardContrastiveLoss(gather=False)(pin, mate, boards)
    b = NeighborAlignmentLoss(gather=False)(pin, mate, boards)["mates"]
    assert a.item() == pytest.approx(b.item())


def test_pinsage_margin_hand_value_and_curriculum():
    q = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([[0.6, 0.8]])
    n = torch.tensor([[0.8, 0.6], [0.0, 1.0]])
    # <q,p> = 0.6; negatives 0.8 and 0.0: relu(0.8-0.6+0.1)=0.3, relu(0-0.6+0.1)=0 -> mean 0.15
    assert pinsage_margin_loss(q, p, n).item() == pytest.approx(0.15)
    assert pinsage_margin_loss(q, p, n[None]).item() == pytest.approx(0.15)  # per-query negatives
    c = HardNegativeCurriculum(per_epoch=2, max_hard=5)
    assert [c.num_hard(e) for e in range(5)] == [0, 2, 4, 5, 5]


def test_combine_losses():
    total, logs = combine_losses({"clip": torch.tensor(2.0), "mates": torch.tensor(3.0)}, {"clip": 0.5, "mates": 2.0})
    assert total.item() == 7.0 and logs == {"clip": 2.0, "mates": 3.0, "total": 7.0}
    with pytest.raises(KeyError, match=r"\['board'\] have no weight"):
        combine_losses({"board": torch.tensor(1.0)}, {"clip": 1.0})
