"""PinBoardLoader: sharding (every seed exactly once across ranks), determinism, features,
negatives, background-thread behaviour, torch.distributed, CUDA delivery."""
import threading

import pytest
import torch

from boardgraph.sampling import (BoardMateSampler, GraphFeatureFetcher, MiniBatch, NeighborSampler,
                                 PinBoardLoader, PopularityNegativeSampler, SamplingError)

FWD, REV = ("pin", "in", "board"), ("board", "has", "pin")


def _all_seeds(loader) -> list[int]:
    return [s for mb in loader for s in mb.seeds.tolist()]


@pytest.mark.parametrize("n,batch_size,prefetch", [(37, 5, 2), (400, 64, 0), (2, 8, 1)])
def test_every_seed_exactly_once_per_epoch_across_two_ranks(lookbook_cpu, n, batch_size, prefetch):
    g = lookbook_cpu
    seeds = torch.arange(n) * 3 % 400
    sampler = BoardMateSampler(g, 4)
    for epoch in (0, 1):
        got = []
        for rank in (0, 1):
            loader = PinBoardLoader(g, sampler, seeds, batch_size=batch_size, rank=rank, world_size=2,
                                    seed=7, prefetch=prefetch)
            loader.set_epoch(epoch)
            mine = _all_seeds(loader)
            assert len(mine) == len(loader.shard()) and sum(1 for _ in loader) == len(loader)
            got += mine
        assert sorted(got) == sorted(seeds.tolist())


def test_even_batches_pads_so_ranks_agree(lookbook_cpu):
    seeds = torch.arange(37)
    loaders = [PinBoardLoader(lookbook_cpu, BoardMateSampler(lookbook_cpu, 2), seeds, batch_size=4, rank=r,
                              world_size=3, even_batches=True) for r in range(3)]
    assert [len(ld) for ld in loaders] == [4, 4, 4]
    got = [s for ld in loaders for s in _all_seeds(ld)]
    assert len(got) == 39 and set(got) == set(range(37))


def test_deterministic_for_seed_and_epoch(lookbook_cpu):
    g = lookbook_cpu
    sampler = NeighborSampler(g, {REV: [3, 0], FWD: [0, 4]})
    make = lambda prefetch, seed=3: PinBoardLoader(g, sampler, batch_size=50, seed=seed, prefetch=prefetch)  # noqa: E731
    a, b, c = make(2), make(0), make(2, seed=4)
    for ld in (a, b, c):
        ld.set_epoch(5)
    ba, bb, bc = list(a), list(b), list(c)
    assert len(ba) == 8
    for x, y in zip(ba, bb):  # thread or not, same batches
        assert torch.equal(x.seeds, y.seeds)
        for bx, by in zip(x.blocks, y.blocks):
            for et in bx.edge_index:
                assert torch.equal(bx.edge_index[et], by.edge_index[et])
                assert torch.equal(bx.edge_ids[et], by.edge_ids[et])
    assert not torch.equal(ba[0].seeds, bc[0].seeds)
    a.set_epoch(6)
    assert not torch.equal(next(iter(a)).seeds, ba[0].seeds)
    one = make(2).batch(3, epoch=5)  # a single batch rebuilt on its own equals the iterated one
    assert torch.equal(one.blocks[0].edge_ids[FWD], ba[3].blocks[0].edge_ids[FWD])
    assert (ba[3].epoch, ba[3].batch_index, ba[3].rank) == (5, 3, 0)


def test_features_and_negatives_are_attached(lookbook_cpu):
    g = lookbook_cpu
    fetch = GraphFeatureFetcher(g)
    loader = PinBoardLoader(g, BoardMateSampler(g, 4), torch.arange(60), batch_size=16, features=fetch,
                            negatives=PopularityNegativeSampler(g), num_negatives=5, seed=1)
    mb = next(iter(loader))
    nodes = mb.input_nodes["pin"]
    feats = g.features("pin")
    assert mb.features["pin"]["title"] == feats.text("title", nodes)
    assert torch.equal(mb.features["pin"]["image"], feats.images("image", nodes))
    assert torch.equal(mb.features["pin"]["category"], feats.categorical("category", nodes))
    torch.testing.assert_close(mb.features["pin"]["price"], feats.numeric(["price"], nodes)[:, 0], equal_nan=True)
    assert "style" not in mb.features["pin"]  # labels are never fed to encoders
    neg = mb.negatives
    assert neg.nodes.shape == (16, 5)
    assert torch.equal(nodes[mb.negatives_local], neg.nodes)
    assert torch.equal(nodes[mb.seed_local], mb.seeds)  # earlier local ids stay valid
    m = mb.board_mates.mask
    assert torch.equal(nodes[mb.mates_local.clamp(min=0)][m], mb.board_mates.mates[m])
    # a negative equal to one of the anchor's board-mates is masked
    is_mate = (neg.nodes.unsqueeze(2) == mb.board_mates.mates.unsqueeze(1)).any(2)
    assert not bool(neg.mask[is_mate].any())


def test_producer_errors_reach_the_consumer(lookbook_cpu):
    class Broken:
        seed_type = "pin"

        def sample_minibatch(self, seeds, generator=None):
            if seeds[0] > 10:
                raise RuntimeError("sampler broke on purpose")
            return MiniBatch(seeds=seeds)

    loader = PinBoardLoader(lookbook_cpu, Broken(), torch.arange(40), batch_size=8, shuffle=False)
    with pytest.raises(RuntimeError, match="on purpose"):
        list(loader)


def test_early_break_stops_the_background_thread(lookbook_cpu):
    before = threading.active_count()
    loader = PinBoardLoader(lookbook_cpu, BoardMateSampler(lookbook_cpu, 2), batch_size=4, prefetch=2)
    it = iter(loader)
    next(it)
    it.close()
    assert threading.active_count() == before


def test_rank_and_world_size_come_from_torch_distributed(lookbook_cpu, tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        loader = PinBoardLoader(lookbook_cpu, BoardMateSampler(lookbook_cpu, 2), batch_size=100)
        assert (loader.rank, loader.world_size) == (0, 1)
        assert len(loader) == 4
    finally:
        dist.destroy_process_group()


def test_bad_arguments(lookbook_cpu):
    s = BoardMateSampler(lookbook_cpu, 2)
    with pytest.raises(SamplingError, match="rank"):
        PinBoardLoader(lookbook_cpu, s, rank=2, world_size=2)
    with pytest.raises(SamplingError, match="batch_size"):
        PinBoardLoader(lookbook_cpu, s, batch_size=0)
    with pytest.raises(SamplingError, match=r"\[0, 400\)"):
        PinBoardLoader(lookbook_cpu, s, torch.tensor([400]))
    with pytest.raises(SamplingError, match="num_negatives"):
        PinBoardLoader(lookbook_cpu, s, negatives=PopularityNegativeSampler(lookbook_cpu))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("graph_on_gpu", [False, True])
def test_cuda_delivery(lookbook_cpu, graph_on_gpu):
    g = lookbook_cpu.to("cuda") if graph_on_gpu else lookbook_cpu
    loader = PinBoardLoader(g, BoardMateSampler(g, 4), batch_size=64, device="cuda",
                            features=GraphFeatureFetcher(g), seed=2)
    ref = PinBoardLoader(g, BoardMateSampler(g, 4), batch_size=64, device="cuda", prefetch=0,
                         features=GraphFeatureFetcher(g), seed=2)
    for mb, mb0 in zip(loader, ref):
        assert mb.seeds.is_cuda and mb.features["pin"]["image"].is_cuda and mb.mates_local.is_cuda
        assert torch.equal(mb.features["pin"]["image"], mb0.features["pin"]["image"])
        assert torch.equal(mb.board_mates.mates, mb0.board_mates.mates)


def _dist_worker(rank: int, world_size: int, init: str, out: str) -> None:
    import torch.distributed as dist

    from boardgraph.datasets import synthetic_lookbooks

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world_size)
    try:
        g = synthetic_lookbooks(120, 12, seed=0)
        loader = PinBoardLoader(g, BoardMateSampler(g, 2), batch_size=16, seed=5)
        loader.set_epoch(2)
        mine = torch.tensor(_all_seeds(loader))
        sizes = [torch.zeros(1, dtype=torch.long) for _ in range(world_size)]
        dist.all_gather(sizes, torch.tensor([mine.numel()]))
        gathered = [torch.zeros(int(s), dtype=torch.long) for s in sizes]
        dist.all_gather(gathered, mine)  # gloo needs equal sizes: 120 seeds split 60 / 60
        if rank == 0:
            torch.save(torch.cat(gathered), out)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_group_shards_an_epoch(tmp_path):
    import torch.multiprocessing as mp

    out = tmp_path / "seeds.pt"
    mp.spawn(_dist_worker, args=(2, f"file://{tmp_path / 'store'}", str(out)), nprocs=2, join=True)
    assert sorted(torch.load(out).tolist()) == list(range(120))


def test_iter_from_yields_the_tail_of_an_epoch():
    from boardgraph.datasets import synthetic_lookbooks
    from boardgraph.sampling import BoardMateSampler, PinBoardLoader

    g = synthetic_lookbooks(200, 20, seed=0)
    loader = PinBoardLoader(g, BoardMateSampler(g, k=4), batch_size=32, seed=5)
    loader.set_epoch(2)
    full = [mb.seeds for mb in loader]
    tail = [mb.seeds for mb in loader.iter_from(3)]
    assert len(tail) == len(full) - 3
    assert all(torch.equal(a, b) for a, b in zip(full[3:], tail))
