"""PinSageSampler: walk validity, visit counts against a pure-Python reference, exact Markov
probabilities, restarts, exclusion."""
from collections import Counter

import pytest
import torch

from boardgraph.sampling import EdgeExclusion, PinSageSampler, SamplingError, rank_visits

FWD = ("pin", "in", "board")
ALPHA = 1e-4
BOARDS = {0: [0, 1, 2], 1: [1, 3, 4, 5], 2: [5], 3: [2, 6]}  # the tiny graph
PIN_BOARDS = {p: [b for b, ps in BOARDS.items() if p in ps] for p in range(8)}


def _reference_topk(traces: torch.Tensor, seeds: list[int], num_walks: int, t: int, exclude_self: bool):
    """Pure Python: count the pins each seed's walks reach, keep the T most visited (ties: smaller pin)."""
    out = []
    rows = traces.cpu().tolist()
    for i, seed in enumerate(seeds):
        c = Counter()
        for w in range(num_walks):
            for pin in rows[i * num_walks + w][1:]:
                if pin >= 0 and not (exclude_self and pin == seed):
                    c[pin] += 1
        ranked = sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:t]
        out.append(ranked)
    return out


def test_walks_follow_pin_board_pin_steps(tiny, gen):
    s = PinSageSampler(tiny, 3, num_walks=50, num_traversals=4, restart_prob=0.3)
    seeds = torch.tensor([0, 5, 7], device=tiny.device)
    tr = s.walks(seeds, gen(1)).cpu()
    assert tr.shape == (150, 5)
    assert tr[:, 0].tolist() == [0] * 50 + [5] * 50 + [7] * 50
    assert bool((tr[100:, 1:] == -1).all())  # pin 7 is on no board
    for row in tr.tolist():
        ended = False
        for a, b in zip(row, row[1:]):
            if b < 0:
                ended = True
                continue
            assert not ended  # once ended, a walk stays ended
            assert set(PIN_BOARDS[a]) & set(PIN_BOARDS[b])  # consecutive pins share a board


def test_visit_counts_match_a_pure_python_reference(lookbook, gen):
    seeds = torch.arange(0, 400, 7, device=lookbook.device)
    for exclude_self in (True, False):
        s = PinSageSampler(lookbook, 10, num_walks=10, num_traversals=3, restart_prob=0.5, exclude_self=exclude_self)
        traces = s.walks(seeds, gen(2))
        nb = s.sample(seeds, gen(2))  # same generator state -> same walks
        ref = _reference_topk(traces, seeds.tolist(), 10, 10, exclude_self)
        for i, r in enumerate(ref):
            n = len(r)
            assert nb.neighbors[i, :n].tolist() == [p for p, _ in r]
            assert nb.counts[i, :n].tolist() == [c for _, c in r]
            assert nb.mask[i].tolist() == [True] * n + [False] * (10 - n)
            assert nb.neighbors[i, n:].tolist() == [-1] * (10 - n)
            if n:
                total = sum(c for _, c in r)
                torch.testing.assert_close(nb.weights[i, :n].cpu(), torch.tensor([c / total for _, c in r]))


def test_first_traversal_matches_the_exact_transition_probabilities(tiny, gen, chi2):
    # P(pin q | seed 1) = sum over boards b of 1: 1/2 * [q in b] / |b|.
    expect = [0.0] * 8
    for b in PIN_BOARDS[1]:
        for q in BOARDS[b]:
            expect[q] += 0.5 / len(BOARDS[b])
    s = PinSageSampler(tiny, 3, num_walks=6000, num_traversals=2, restart_prob=0.5)
    tr = s.walks(torch.tensor([1], device=tiny.device), gen(3)).cpu()
    hist = torch.bincount(tr[:, 1], minlength=8)
    assert chi2(hist, expect) > ALPHA
    # the second traversal survives with probability 1 - restart_prob
    alive = int((tr[:, 2] >= 0).sum())
    assert abs(alive / 6000 - 0.5) < 4 * (0.25 / 6000) ** 0.5
    # two-step probabilities: P(q2) = sum_q1 P(q1) P(q2 | q1), among surviving walks
    trans = torch.zeros(8, 8, dtype=torch.float64)
    for p in range(8):
        for b in PIN_BOARDS[p]:
            for q in BOARDS[b]:
                trans[p, q] += 1 / len(PIN_BOARDS[p]) / len(BOARDS[b])
    two = torch.tensor(expect, dtype=torch.float64) @ trans
    hist2 = torch.bincount(tr[:, 2][tr[:, 2] >= 0], minlength=8)
    assert chi2(hist2, two) > ALPHA


def test_no_restart_means_full_length_walks(tiny, gen):
    s = PinSageSampler(tiny, 3, num_walks=20, num_traversals=5, restart_prob=0.0)
    tr = s.walks(torch.tensor([0, 3], device=tiny.device), gen(4))
    assert bool((tr >= 0).all())


def test_excluded_edges_are_never_walked(tiny, gen):
    # without edge (2, 3), pin 6 is cut off: walks from 2 never reach it, walks from 6 stay at 6
    ex = EdgeExclusion.from_pairs(tiny, {FWD: (torch.tensor([2]), torch.tensor([3]))})
    seeds = torch.tensor([2, 6], device=tiny.device)
    for s, call in ((PinSageSampler(tiny, 3, num_walks=200, exclude=ex), None),
                    (PinSageSampler(tiny, 3, num_walks=200), ex)):
        tr = s.walks(seeds, gen(5), exclude=call).cpu()
        assert not bool((tr[:200] == 6).any())
        visits = tr[200:, 1:]
        assert set(visits[visits >= 0].tolist()) == {6}
        nb = s.sample(seeds, gen(5), exclude=call)
        assert nb.mask[1].sum() == 0  # pin 6 has no neighbor but itself (excluded)


def test_rank_visits_orders_by_count_then_index():
    visits = torch.tensor([[4, 2, 4, -1, 2, 9, 4], [-1, -1, -1, -1, -1, -1, -1]])
    nodes, counts = rank_visits(visits, 10)
    assert nodes.tolist() == [[4, 2, 9, -1, -1, -1, -1], [-1] * 7]
    assert counts.tolist() == [[3, 2, 1, 0, 0, 0, 0], [0] * 7]


def test_minibatch_and_arguments(lookbook, gen):
    s = PinSageSampler(lookbook, 5)
    seeds = torch.tensor([1, 2, 3], device=lookbook.device)
    mb = s.sample_minibatch(seeds, gen(6))
    nodes = mb.input_nodes["pin"]
    assert torch.equal(nodes[mb.seed_local], seeds)
    m = mb.neighbors.mask
    assert torch.equal(nodes[mb.neighbors_local.clamp(min=0)][m], mb.neighbors.neighbors[m])
    with pytest.raises(SamplingError, match="restart_prob"):
        PinSageSampler(lookbook, 5, restart_prob=1.0)
    with pytest.raises(SamplingError, match="num_walks"):
        PinSageSampler(lookbook, 5, num_walks=0)
