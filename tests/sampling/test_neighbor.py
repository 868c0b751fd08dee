"""NeighborSampler: exact neighborhoods, fanout bounds, uniformity, heterogeneity, errors."""
import pytest
import torch

from boardgraph.sampling import Block, EdgeExclusion, NeighborSampler, SamplingError

FWD, REV = ("pin", "in", "board"), ("board", "has", "pin")
ALPHA = 1e-4


def _global_edges(block: Block, etype) -> set[tuple[int, int, int]]:
    """(src global, dst global, eid) of a block's edges."""
    src_t, _, dst_t = etype
    s, d = block.edge_index[etype]
    src = block.src_nodes[src_t][s].tolist()
    dst = block.dst_nodes[dst_t][d].tolist()
    return set(zip(src, dst, block.edge_ids[etype].tolist()))


def test_full_fanout_returns_exact_neighborhoods(tiny, gen, cpu_path):
    sub = NeighborSampler(tiny, {REV: [-1]}).sample(torch.tensor([1, 5, 1]), gen())
    assert sub.seeds["pin"].tolist() == [1, 5]
    assert sub.seed_local["pin"].tolist() == [0, 1, 0]
    (block,) = sub.blocks
    assert block.dst_nodes["pin"].tolist() == [1, 5]
    assert block.src_nodes["pin"].tolist() == [1, 5]  # dst nodes come first
    assert sorted(block.src_nodes["board"].tolist()) == [0, 1, 2]
    # (board, pin, eid): pin 1 is on boards 0 (eid 1) and 1 (eid 2); pin 5 on 1 (eid 7) and 2 (eid 8)
    assert _global_edges(block, REV) == {(0, 1, 1), (1, 1, 2), (1, 5, 7), (2, 5, 8)}
    assert sub.num_sampled_edges == 4


def test_two_hops_with_large_fanouts_cover_the_two_hop_neighborhood(tiny, gen, cpu_path):
    s = NeighborSampler(tiny, {REV: [10, 0], FWD: [0, 10]})
    sub = s.sample(torch.tensor([0]), gen())
    outer, inner = sub.blocks
    assert _global_edges(inner, REV) == {(0, 0, 0)}
    assert inner.src_nodes["board"].tolist() == [0]
    assert outer.dst_nodes["board"].tolist() == [0] and outer.dst_nodes["pin"].tolist() == [0]
    assert _global_edges(outer, FWD) == {(0, 0, 0), (1, 0, 1), (2, 0, 3)}
    assert outer.src_nodes["pin"].tolist() == [0, 1, 2]
    assert sub.input_nodes is outer.src_nodes


def test_exact_sample_under_a_fixed_generator(make_tiny, cpu_path):
    # Board 1 holds pins 1, 3, 4, 5; choose 2 by Floyd's algorithm, replayed here in plain Python
    # from the same generator stream: with 31-bit draws x_i, t_i = x_i * (j_i + 1) >> 31 for
    # j_i = d - k + i; keep t_i unless taken, else take j_i.
    g = make_tiny()
    row = [1, 3, 4, 5]
    got = {}
    for seed in range(5):
        sub = NeighborSampler(g, {FWD: [2]}, seed_type="board").sample(torch.tensor([1]), seed)
        got[seed] = sorted(sub.blocks[0].src_nodes["pin"].tolist())
        x = torch.empty(2, dtype=torch.int32).random_(generator=torch.Generator().manual_seed(seed)).tolist()
        chosen: list[int] = []
        for i, xi in enumerate(x):
            j = len(row) - 2 + i
            t = xi * (j + 1) >> 31
            chosen.append(j if t in chosen else t)
        assert got[seed] == sorted(row[c] for c in chosen)
    assert got == {0: [1, 5], 1: [4, 5], 2: [3, 4], 3: [1, 5], 4: [4, 5]}
    again = NeighborSampler(g, {FWD: [2]}, seed_type="board").sample(torch.tensor([1]), 0)
    assert sorted(again.blocks[0].src_nodes["pin"].tolist()) == got[0]


def test_fanout_bounds_and_validity_on_a_real_graph(lookbook, gen, cpu_path):
    g = lookbook
    deg_pin = g.degree(FWD).cpu()
    deg_board = g.degree(REV).cpu()
    s = NeighborSampler(g, {REV: [2, 0], FWD: [0, 5]})
    seeds = torch.arange(0, 400, 3, device=g.device)
    sub = s.sample(seeds, gen(5))
    outer, inner = sub.blocks
    src, dst = g.edges(FWD)
    src, dst = src.cpu(), dst.cpu()
    for block, etype, k, deg in ((inner, REV, 2, deg_pin), (outer, FWD, 5, deg_board)):
        ei = block.edge_index[etype].cpu()
        dst_global = block.dst_nodes[etype[2]].cpu()[ei[1]]
        src_global = block.src_nodes[etype[0]].cpu()[ei[0]]
        per_dst = torch.bincount(ei[1], minlength=block.num_dst_nodes(etype[2]))
        assert torch.equal(per_dst, deg[block.dst_nodes[etype[2]].cpu()].clamp(max=k))  # min(deg, k)
        pairs = set(zip(ei[1].tolist(), ei[0].tolist()))
        assert len(pairs) == ei.shape[1]  # without replacement: no repeated neighbor
        eid = block.edge_ids[etype].cpu()
        pin, board = (src_global, dst_global) if etype == FWD else (dst_global, src_global)
        assert torch.equal(src[eid], pin) and torch.equal(dst[eid], board)  # eids name the edges
        assert torch.equal(ei[1], torch.sort(ei[1]).values)  # grouped by destination


def test_neighbor_choice_is_uniform(tiny, gen, chi2, cpu_path):
    # many independent calls on board 1 (4 pins, fanout 1): each pin with probability 1/4
    s = NeighborSampler(tiny, {FWD: [1]}, seed_type="board")
    g = gen(11)
    counts = torch.zeros(8)
    for _ in range(2000):
        b = s.sample(torch.tensor([1], device=tiny.device), g).blocks[0]
        counts[b.src_nodes["pin"][b.edge_index[FWD][0]].cpu()] += 1
    assert counts[[0, 2, 6, 7]].sum() == 0
    assert chi2(counts[[1, 3, 4, 5]], [1, 1, 1, 1]) > ALPHA


def test_with_replacement_draws_exactly_k(tiny, gen):
    s = NeighborSampler(tiny, {FWD: [6]}, replace=True, seed_type="board")
    b = s.sample(torch.tensor([2, 3], device=tiny.device), gen()).blocks[0]
    ei = b.edge_index[FWD].cpu()
    assert torch.bincount(ei[1]).tolist() == [6, 6]
    assert set(b.src_nodes["pin"][ei[0][ei[1] == 0]].tolist()) == {5}  # board 2 has only pin 5


def test_heterogeneous_fanouts_per_relation(device, gen, make_tiny):
    g = make_tiny(extra_user=True).to(device)
    s = NeighborSampler(g, {REV: [-1], ("user", "saved", "pin"): [1]})
    block = s.sample(torch.tensor([1, 2], device=device), gen()).blocks[0]
    assert set(block.src_nodes) == {"pin", "board", "user"}
    ei = block.edge_index[("user", "saved", "pin")].cpu()
    assert torch.bincount(ei[1], minlength=2).tolist() == [1, 1]  # one user per pin
    assert _global_edges(block, REV) == {(0, 1, 1), (1, 1, 2), (0, 2, 3), (3, 2, 4)}


def test_excluded_edges_are_never_sampled(lookbook, gen):
    g = lookbook
    src, dst = g.edges(FWD)
    held = torch.arange(0, g.num_edges(FWD), 4, device=g.device)  # every 4th edge
    ex = EdgeExclusion.from_eids(g, {FWD: held})
    seeds = torch.arange(400, device=g.device)
    for s, call_ex in ((NeighborSampler(g, {REV: [-1], FWD: [-1]}, exclude=ex), None),
                       (NeighborSampler(g, {REV: [-1], FWD: [-1]}), ex),
                       (NeighborSampler(g, {REV: [3], FWD: [4]}), ex)):
        sub = s.sample(seeds, gen(1), exclude=call_ex)
        seen = torch.cat([b.edge_ids[e] for b in sub.blocks for e in b.edge_ids])
        assert not bool(torch.isin(seen, held).any())
        assert seen.numel() > 0
    # with every neighbor taken, exactly the other edges of the seeds' boards appear
    full = NeighborSampler(g, {REV: [-1]}, exclude=ex).sample(seeds, gen(1))
    got = set(full.blocks[0].edge_ids[REV].tolist())
    assert got == set(range(g.num_edges(FWD))) - set(held.tolist())


def test_per_call_exclusion_of_a_positive_pair_exact(tiny, gen):
    # pin 1 with its edge to board 0 excluded: only board 1 remains
    ex = EdgeExclusion.from_pairs(tiny, {FWD: (torch.tensor([1]), torch.tensor([0]))})
    block = NeighborSampler(tiny, {REV: [-1]}).sample(torch.tensor([1], device=tiny.device), gen(), ex).blocks[0]
    assert _global_edges(block, REV) == {(1, 1, 2)}
    # the same via the reverse direction, and a fanout of 1 (no randomness left)
    ex2 = EdgeExclusion.from_pairs(tiny, {REV: (torch.tensor([0]), torch.tensor([1]))})
    assert torch.equal(ex.eids[FWD], ex2.eids[FWD])
    block = NeighborSampler(tiny, {REV: [1]}).sample(torch.tensor([1], device=tiny.device), gen(), ex2).blocks[0]
    assert _global_edges(block, REV) == {(1, 1, 2)}


def test_bad_arguments_raise_specific_errors(tiny):
    with pytest.raises(SamplingError, match="unknown edge type"):
        NeighborSampler(tiny, {("pin", "likes", "board"): [1]})
    with pytest.raises(SamplingError, match="one entry per hop"):
        NeighborSampler(tiny, {REV: [1, 2], FWD: [1]})
    with pytest.raises(SamplingError, match=">= -1"):
        NeighborSampler(tiny, {REV: [-2]})
    s = NeighborSampler(tiny, {REV: [1]})
    with pytest.raises(SamplingError, match=r"\[0, 8\)"):
        s.sample(torch.tensor([8], device=tiny.device))
    with pytest.raises(SamplingError, match="1-D integer"):
        s.sample(torch.tensor([0.5], device=tiny.device))


def test_one_hop_in_global_ids(tiny, gen, cpu_path):
    s = NeighborSampler(tiny, {REV: [-1]})
    src, dst, eid = s.sample_neighbors(torch.tensor([5, 1], device=tiny.device), REV, -1, gen())
    assert list(zip(src.tolist(), dst.tolist(), eid.tolist())) == [(1, 5, 7), (2, 5, 8), (0, 1, 1), (1, 1, 2)]
    src, dst, eid = s.sample_neighbors(torch.tensor([1, 2], device=tiny.device), FWD, 2, gen(3))
    assert torch.bincount(dst.cpu()).tolist() == [0, 2, 1]  # board 1: 2 of 4 pins; board 2: its one pin
    pin, board = tiny.edges(FWD)
    assert torch.equal(pin[eid], src) and torch.equal(board[eid], dst)


def test_numpy_and_torch_cpu_paths_sample_the_same_blocks(monkeypatch):
    # Large enough that the torch path runs Floyd's sequential rounds (n * k * k > 2**16), which
    # draw the same bits in the same layout as the numpy path: both must give identical results.
    from boardgraph.graph import PinBoardGraph
    from boardgraph.sampling import _ops

    gen = torch.Generator().manual_seed(0)
    n_pins, n_boards = 6000, 900
    deg = torch.randint(1, 26, (n_pins,), generator=gen)  # pins with 1..25 boards: both sides of k
    pin = torch.repeat_interleave(torch.arange(n_pins), deg)
    board = torch.randint(0, n_boards, (pin.numel(),), generator=gen)
    key = torch.unique(pin * n_boards + board)
    g = PinBoardGraph()
    g.add_node_type("pin", list(range(n_pins)))
    g.add_node_type("board", list(range(n_boards)))
    g.add_relation(FWD, key // n_boards, key % n_boards, reverse="has")
    seeds = torch.randint(0, n_pins, (3000,), generator=gen)
    out = {}
    for flag in (True, False):
        monkeypatch.setattr(_ops, "NUMPY_CPU", flag)
        s = NeighborSampler(g, {REV: [10, 0], FWD: [0, 10]})
        out[flag] = (s.sample(seeds, 7), s.sample_neighbors(seeds[:1000], REV, 10, 8))
    (a, a1), (b, b1) = out[True], out[False]
    assert torch.equal(a.seed_local["pin"], b.seed_local["pin"])
    for x, y in zip(a.blocks, b.blocks):
        for xs, ys in ((x.src_nodes, y.src_nodes), (x.dst_nodes, y.dst_nodes)):
            assert xs.keys() == ys.keys() and all(torch.equal(xs[t], ys[t]) for t in xs)
        assert x.edge_index.keys() == y.edge_index.keys()
        for e in x.edge_index:
            assert torch.equal(x.edge_index[e], y.edge_index[e]) and torch.equal(x.edge_ids[e], y.edge_ids[e])
            assert x.edge_index[e].dtype == y.edge_index[e].dtype == torch.long
    assert all(torch.equal(u, v) for u, v in zip(a1, b1))
