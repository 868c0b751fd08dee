"""BoardMateSampler: never the seed, exact sets, weighting distributions, exclusion, padding."""
import pytest
import torch

from boardgraph.sampling import BoardMateSampler, EdgeExclusion, SamplingError

FWD = ("pin", "in", "board")
ALPHA = 1e-4


def _draws(sampler, seed_pin, n, g, device):
    """Mate histogram over pins 0..7 from n with-replacement draws for one seed."""
    bm = sampler.sample(torch.full((n,), seed_pin, device=device), g)
    assert bool(bm.mask.all())
    return torch.bincount(bm.mates.reshape(-1).cpu(), minlength=8).double(), bm


def test_exact_mate_sets(tiny, gen):
    # oversample 40: the chance of missing a mate is below 1e-9, so the sets are exact
    s = BoardMateSampler(tiny, 4, unique=True, oversample=40)
    bm = s.sample(torch.tensor([5, 6, 7, 0], device=tiny.device), gen())
    rows = [set(m[k].item() for k in range(4) if bm.mask[i, k]) for i, m in enumerate(bm.mates.cpu())]
    assert rows == [{1, 3, 4}, {2}, set(), {1, 2}]
    assert bm.mask.sum(1).tolist() == [3, 1, 0, 2]
    assert bm.boards[0, :3].tolist() == [1, 1, 1]  # board 2 holds pin 5 alone: never used
    assert bm.boards[1, 0].item() == 3
    assert bm.mates[2].tolist() == [-1] * 4 and bm.boards[2].tolist() == [-1] * 4
    assert bm.mask.tolist()[0] == [True, True, True, False]  # valid entries come first


def test_never_the_seed_and_always_through_a_shared_board(lookbook, gen):
    g = lookbook
    seeds = torch.arange(400, device=g.device)
    for weighting, kw in (("uniform", {}), ("size", {}), ("recency", {"half_life": 3.0, "timestamp": "order"})):
        for unique in (True, False):
            bm = BoardMateSampler(g, 16, weighting=weighting, unique=unique, **kw).sample(seeds, gen(3))
            m = bm.mask
            assert not bool((bm.mates == seeds.unsqueeze(1))[m].any())
            s = seeds.unsqueeze(1).expand_as(bm.mates)[m]
            e1 = g.edge_ids(FWD, s, bm.boards[m], missing="ignore")
            e2 = g.edge_ids(FWD, bm.mates[m], bm.boards[m], missing="ignore")
            assert bool((e1 >= 0).all()) and bool((e2 >= 0).all())
            if unique:
                for row, mk in zip(bm.mates.cpu().tolist(), m.cpu().tolist()):
                    vals = [v for v, ok in zip(row, mk) if ok]
                    assert len(vals) == len(set(vals))
            else:  # every seed with a mate gets all K draws
                deg_other = g.degree(("board", "has", "pin"))
                has_mate = torch.zeros(400, dtype=torch.bool, device=g.device)
                src, dst = g.edges(FWD)
                has_mate[src[deg_other[dst] > 1]] = True
                assert torch.equal(m.all(1), has_mate) and torch.equal(m.any(1), has_mate)


def test_uniform_weighting_distribution(tiny, gen, chi2):
    # pin 2: board 0 (mates 0, 1) and board 3 (mate 6) equally likely -> 1/4, 1/4, 1/2
    s = BoardMateSampler(tiny, 8, unique=False)
    hist, _ = _draws(s, 2, 3000, gen(1), tiny.device)
    assert chi2(hist, [1, 1, 0, 0, 0, 0, 2, 0]) > ALPHA
    # pin 3 sits inside board 1's row (1, 3, 4, 5): its own slot is skipped exactly
    hist, _ = _draws(s, 3, 3000, gen(2), tiny.device)
    assert chi2(hist, [0, 1, 0, 0, 1, 1, 0, 0]) > ALPHA
    # ... also when another slot of the row is excluded for the call: (1, 3, 4) -> mates 1 and 4
    ex = EdgeExclusion.from_pairs(tiny, {FWD: (torch.tensor([5]), torch.tensor([1]))})
    bm = s.sample(torch.full((3000,), 3, device=tiny.device), gen(3), exclude=ex)
    assert chi2(torch.bincount(bm.mates.reshape(-1).cpu(), minlength=8), [0, 1, 0, 0, 1, 0, 0, 0]) > ALPHA


def test_size_weighting_distribution(tiny, gen, chi2):
    # weight (|b| - 1): board 0 -> 2, board 3 -> 1, so every (board, mate) pair is equally likely
    s = BoardMateSampler(tiny, 8, weighting="size", unique=False)
    hist, _ = _draws(s, 2, 3000, gen(2), tiny.device)
    assert chi2(hist, [1, 1, 0, 0, 0, 0, 1, 0]) > ALPHA
    # exponent -1 prefers the small board: weights 1/2 and 1 -> mates 1/6, 1/6, 2/3
    s = BoardMateSampler(tiny, 8, weighting="size", size_exponent=-1.0, unique=False)
    hist, _ = _draws(s, 2, 3000, gen(3), tiny.device)
    assert chi2(hist, [1, 1, 0, 0, 0, 0, 4, 0]) > ALPHA


def test_recency_weighting_distribution(tiny, gen, chi2):
    # Edge e has timestamp 10 e. Seed pin 1: edges (1,0) t=10 and (1,1) t=20; half-life 10 ->
    # board weights 1/2 and 1. Board 0 mates: pin 0 (t=0), pin 2 (t=30) -> weights 1/8, 1
    # (relative to the board's newest, pin 2) ; board 1 mates: pin 3 (t=50), 4 (t=60), 5 (t=70)
    # -> 1/4, 1/2, 1 (the seed's own slot, t=20, is skipped).
    p_b0, p_b1 = 1 / 3, 2 / 3
    expect = [0.0] * 8
    expect[0], expect[2] = p_b0 * (1 / 8) / (1 / 8 + 1), p_b0 * 1 / (1 / 8 + 1)
    tot1 = 1 / 4 + 1 / 2 + 1
    expect[3], expect[4], expect[5] = p_b1 * 0.25 / tot1, p_b1 * 0.5 / tot1, p_b1 * 1 / tot1
    s = BoardMateSampler(tiny, 8, weighting="recency", half_life=10.0, unique=False)
    hist, _ = _draws(s, 1, 4000, gen(4), tiny.device)
    assert chi2(hist, expect) > ALPHA


def test_excluded_edges_are_never_traversed(tiny, gen):
    # Excluding (2, 0) and (1, 1): pin 2 reaches only board 3 (mate 6); pin 0 keeps board 0 without
    # pin 2 (mate 1); pin 1 keeps only board 0 (mate 0); pin 3 keeps board 1 without pin 1 (4, 5).
    ex = EdgeExclusion.from_pairs(tiny, {FWD: (torch.tensor([2, 1]), torch.tensor([0, 1]))})
    seeds = torch.tensor([2, 0, 1, 3], device=tiny.device)
    for s, call in ((BoardMateSampler(tiny, 6, unique=False, exclude=ex), None),
                    (BoardMateSampler(tiny, 6, unique=False), ex),
                    (BoardMateSampler(tiny, 6, unique=False, weighting="recency", half_life=5.0), ex),
                    (BoardMateSampler(tiny, 6, unique=False, weighting="size"), ex),
                    (BoardMateSampler(tiny, 3, unique=True, oversample=30), ex)):
        bm = s.sample(seeds, gen(5), exclude=call)
        mates = [set(m[k] for k in range(len(m)) if ok[k]) for m, ok in zip(bm.mates.tolist(), bm.mask.tolist())]
        assert mates == [{6}, {1}, {0}, {4, 5}]
        assert set(bm.boards[bm.mask].tolist()) == {0, 1, 3}
        assert set(bm.boards[0][bm.mask[0]].tolist()) == {3}


def test_exclude_mates_drops_given_pins(tiny, gen):
    s = BoardMateSampler(tiny, 3, unique=True, oversample=40)
    bm = s.sample(torch.tensor([5, 2], device=tiny.device), gen(), exclude_mates=torch.tensor([3, 6], device=tiny.device))
    assert set(bm.mates[0][bm.mask[0]].tolist()) == {1, 4}
    assert set(bm.mates[1][bm.mask[1]].tolist()) == {0, 1}


def test_reproducible_and_minibatch_indexing(lookbook, gen):
    s = BoardMateSampler(lookbook, 8, unique=True)
    seeds = torch.tensor([3, 17, 3, 250], device=lookbook.device)
    a, b = s.sample(seeds, gen(9)), s.sample(seeds, gen(9))
    assert torch.equal(a.mates, b.mates) and torch.equal(a.boards, b.boards)
    mb = s.sample_minibatch(seeds, gen(9))
    assert torch.equal(mb.board_mates.mates, a.mates)
    nodes = mb.input_nodes["pin"]
    assert torch.equal(nodes[mb.seed_local], seeds)
    assert torch.equal(nodes[mb.mates_local.clamp(min=0)][a.mask], a.mates[a.mask])
    assert bool((mb.mates_local[~a.mask] == -1).all())
    assert nodes.unique().numel() == nodes.numel()


def test_bad_arguments(tiny):
    with pytest.raises(SamplingError, match="half_life"):
        BoardMateSampler(tiny, 4, weighting="recency")
    with pytest.raises(SamplingError, match="'order'"):
        BoardMateSampler(tiny, 4, weighting="recency", half_life=1.0, timestamp="missing")
    with pytest.raises(SamplingError, match="weighting"):
        BoardMateSampler(tiny, 4, weighting="popular")  # type: ignore[arg-type]
    with pytest.raises(SamplingError, match="k must be"):
        BoardMateSampler(tiny, 0)
