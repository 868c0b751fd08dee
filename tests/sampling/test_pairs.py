"""Positive pairs (PairSampler): pin-board pairs are uniform edges and respect exclusion; pin-pin pairs."""
import torch

from boardgraph.sampling import EdgeExclusion, PairSampler

FWD = ("pin", "in", "board")
ALPHA = 1e-4


def test_pin_board_pairs_are_uniform_edges_and_respect_exclusion(tiny, gen, chi2):
    s = PairSampler(tiny)
    pairs = s.pin_board(5000, generator=gen(5))
    src, dst = tiny.edges(FWD)
    assert torch.equal(src[pairs.edge_ids], pairs.anchors) and torch.equal(dst[pairs.edge_ids], pairs.positives)
    assert chi2(torch.bincount(pairs.edge_ids.cpu(), minlength=10), torch.ones(10)) > ALPHA
    ex = EdgeExclusion.from_eids(tiny, {FWD: torch.tensor([0, 4, 9])})
    for sampler, call in ((PairSampler(tiny, exclude=ex), None), (s, ex)):
        p = sampler.pin_board(3000, generator=gen(6), exclude=call)
        assert torch.equal(src[p.edge_ids], p.anchors)
        hist = torch.bincount(p.edge_ids.cpu(), minlength=10)
        assert hist[[0, 4, 9]].sum() == 0
        assert chi2(hist, [0, 1, 1, 1, 0, 1, 1, 1, 1, 0]) > ALPHA
    one = s.pin_board(seeds=torch.tensor([7, 5, 0], device=tiny.device), generator=gen(7))
    assert one.anchors.tolist() == [5, 0] and one.positives[1].item() == 0  # pin 7 has no board


def test_pin_pin_pairs(lookbook, gen):
    s = PairSampler(lookbook, weighting="size")
    seeds = torch.arange(400, device=lookbook.device)
    p = s.pin_pin(seeds, gen(8))
    assert p.kind == "pin-pin" and len(p) > 300
    assert not bool((p.anchors == p.positives).any())
    assert bool((lookbook.edge_ids(FWD, p.positives, p.via, missing="ignore") >= 0).all())
    src, dst = lookbook.edges(FWD)
    assert torch.equal(src[p.edge_ids], p.anchors) and torch.equal(dst[p.edge_ids], p.via)
