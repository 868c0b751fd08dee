import pandas as pd
import pytest
import torch

from boardgraph.data import DataSplit, split_memberships
from boardgraph.datasets import synthetic_lookbooks
from boardgraph.evaluate import CURVE_KS, EmbeddingScorer, Scorer, board_completion, cross_modal
from boardgraph.graph import from_collections
from boardgraph.metrics import MetricInputError


def hand_split():
    # board b0: p0, p1 (train), p2 (held out, warm), p5 (cold); board b1: p3 (train), p4 (held out)
    df = pd.DataFrame({"board_id": ["b0", "b0", "b0", "b1", "b1", "b0", "b1"],
                       "pin_id": ["p0", "p1", "p2", "p3", "p4", "p5", "p2"]})
    g, _ = from_collections(df)
    P = lambda *ids: g.index("pin", list(ids))  # noqa: E731
    B = lambda *ids: g.index("board", list(ids))  # noqa: E731
    held = (P("p2", "p4"), B("b0", "b1"))
    cold_edges = (P("p5"), B("b0"))
    eids = torch.cat([g.edge_ids("in", *held), g.edge_ids("in", *cold_edges)])
    split = DataSplit(graph=g, train_graph=g.remove_edges("in", eids=eids), heldout=held, cold_pins=P("p5"),
                      cold_edges=cold_edges)
    # 2-d embeddings: b0's training pins point along x, b1's along y
    emb = torch.zeros(6, 2)
    emb[P("p0", "p1")] = torch.tensor([1.0, 0.0])
    emb[P("p3")] = torch.tensor([0.0, 1.0])
    emb[P("p2")] = torch.tensor([0.6, 0.8])   # closer to b1 than to b0
    emb[P("p4")] = torch.tensor([0.0, 1.0])   # right on b1
    emb[P("p5")] = torch.tensor([0.8, 0.6])   # cold pin, close to b0
    return g, split, emb, P, B


def test_board_completion_hand_example():
    _, split, emb, P, B = hand_split()
    r = board_completion(emb, split, ks=(1, 2))
    assert r.warm_boards.tolist() == B("b0", "b1").tolist() and r.cold_boards.tolist() == B("b0").tolist()
    # warm, b0: candidates p2 (pos, 0.6), p3 (0.0), p4 (0.0); p0, p1 (training) and p5 (cold) excluded -> rank 1
    # warm, b1: p4 is positive (1.0); p2 scores 0.8, p0/p1 0.0; p3 excluded -> rank 1
    assert r.warm["recall@1"].per_query.tolist() == [1.0, 1.0]
    # cold, b0: p5 (0.8) vs p3, p4 (0.0); warm held-out p2 excluded -> rank 1
    assert r.cold["recall@1"].per_query.tolist() == [1.0]
    # move p5 away from b0: it now ranks behind p3 (0.0); p2 and p4 (warm held-out) stay excluded
    emb[P("p5")] = torch.tensor([-1.0, 0.0])
    r2 = board_completion(emb, split, ks=(1, 2))
    assert r2.cold["recall@1"].per_query.tolist() == [0.0] and r2.cold["recall@2"].per_query.tolist() == [1.0]
    assert r2.cold["mrr"].per_query.tolist() == [0.5]
    s = r2.summary()
    assert s["warm_recall@1"] == 1.0 and s["cold_recall@1"] == 0.0


def test_per_membership_ranks_and_frames():
    g, split, emb, P, B = hand_split()
    emb[P("p5")] = torch.tensor([-1.0, 0.0])
    r = board_completion(emb, split, ks=(1, 2))
    wp, cp = r.pairs("warm"), r.pairs("cold")
    # one row per held-out membership, ordered by query board: (p2, b0) rank 1, (p4, b1) rank 1
    assert list(zip(wp.pins.tolist(), wp.boards.tolist(), wp.ranks.tolist())) == [
        (int(P("p2")), int(B("b0")), 1), (int(P("p4")), int(B("b1")), 1)]
    # (p5, b0): p3 and p4 tie at 0.0 ... p5 scores -1, behind p3 only (p4 is warm held-out, excluded) -> rank 2
    assert cp.ranks.tolist() == [2] and cp.recall(1).tolist() == [0.0] and cp.reciprocal_rank().tolist() == [0.5]
    assert g.ids("pin", wp.pins).tolist() == ["p2", "p4"]
    q = r.per_query("warm")
    assert q["board"].tolist() == B("b0", "b1").tolist() and q["n_heldout"].tolist() == [1, 1]
    assert q["recall@1"].tolist() == [1.0, 1.0] and q["mrr"].tolist() == [1.0, 1.0]
    assert wp.frame().columns.tolist() == ["pin", "board", "rank"]


def test_scorer_protocol_matches_embeddings_and_chunking():
    split = split_memberships(synthetic_lookbooks(200, 20, seed=0), 0.2, 0.1, seed=0)
    emb = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    ref = board_completion(emb, split, ks=CURVE_KS)
    scorer = EmbeddingScorer(emb)
    assert isinstance(scorer, Scorer)
    others = (board_completion(scorer, split, ks=CURVE_KS), board_completion(emb, split, ks=CURVE_KS, chunk_size=3))
    for other in others:
        for group in ("warm", "cold"):
            for name, res in ref.metrics(group).items():
                assert torch.allclose(res.per_query, other.metrics(group)[name].per_query, equal_nan=True), name
            assert torch.equal(ref.pairs(group).ranks, other.pairs(group).ranks)
    # the per-board recall@K is the mean of its memberships' hits, for every K of the curve
    q = ref.per_query("warm")
    pairs = ref.pairs("warm").frame()
    for k in CURVE_KS:
        hits = pairs.assign(hit=(pairs["rank"] <= k).astype(float)).groupby("board")["hit"].mean()
        assert torch.allclose(torch.tensor(hits.to_numpy()), torch.tensor(q[f"recall@{k}"].to_numpy()))
    curve = ref.curve("warm")
    assert list(curve) == list(CURVE_KS) and all(a <= b for a, b in zip(curve.values(), list(curve.values())[1:]))


def test_bad_inputs():
    _, split, emb, _, _ = hand_split()
    with pytest.raises(MetricInputError, match="6 pins"):
        board_completion(emb[:5], split)
    with pytest.raises(TypeError, match="Scorer"):
        board_completion([[0.0]], split)

    class Wrong:
        def score(self, boards, split):
            return torch.zeros(len(boards), 3)

    with pytest.raises(MetricInputError, match="shape"):
        board_completion(Wrong(), split)


def test_cross_modal_identical_embeddings_give_recall_1():
    emb = torch.randn(50, 16, generator=torch.Generator().manual_seed(0))
    present = torch.ones(50, 3, dtype=torch.bool)
    present[7, 0] = False   # no image
    present[9, 1] = False   # no text
    r = cross_modal(emb, emb.clone(), present)
    assert r.pins.numel() == 48 and 7 not in r.pins.tolist() and 9 not in r.pins.tolist()
    for d in (r.image_to_text, r.text_to_image):
        assert d["recall@1"].mean == 1.0 and d["recall@10"].mean == 1.0 and d["mrr"].mean == 1.0
    assert r.summary()["i2t_recall@1"] == 1.0


def test_cross_modal_hand_example_ties_count_against_the_positive():
    img = torch.eye(4)
    txt = torch.eye(4)[[1, 0, 2, 3]]   # pins 0 and 1 have each other's text
    r = cross_modal(img, txt, torch.ones(4, dtype=torch.bool), ks=(1, 2))
    # image 0 scores its own text 0, tied with texts 2 and 3 (0) and below text 1 (1) -> rank 4
    assert r.image_to_text["mrr"].per_query.tolist() == [0.25, 0.25, 1.0, 1.0]
    assert r.image_to_text["recall@1"].per_query.tolist() == [0.0, 0.0, 1.0, 1.0]
    assert r.text_to_image["mrr"].per_query.tolist() == [0.25, 0.25, 1.0, 1.0]
    # chunking gives the same values
    assert cross_modal(img, txt, torch.ones(4, dtype=torch.bool), ks=(1, 2), chunk_size=1).image_to_text[
        "mrr"].per_query.tolist() == [0.25, 0.25, 1.0, 1.0]
    with pytest.raises(MetricInputError, match="both"):
        cross_modal(img, txt, torch.zeros(4, dtype=torch.bool))
    with pytest.raises(MetricInputError):
        cross_modal(img, txt[:3], torch.ones(4, dtype=torch.bool))


def test_candidates_of_the_split_restrict_the_ranking():
    """With split.candidates, only candidate pins compete: a positive outranked only by
    non-candidates gets rank 1."""
    import dataclasses

    import pandas as pd

    from boardgraph.data import DataSplit
    from boardgraph.evaluate import board_completion
    from boardgraph.graph import from_collections

    rows = [("b0", "p0"), ("b0", "p1"), ("b0", "p2"), ("b1", "p3"), ("b1", "p4")]
    g, _ = from_collections(pd.DataFrame(rows, columns=["board_id", "pin_id"]))
    p = lambda name: int(g.index("pin", [name])[0])  # noqa: E731
    b0 = int(g.index("board", ["b0"])[0])
    eid = torch.nonzero(g.edges(("pin", "in", "board"))[0] == p("p2")).squeeze(1)
    train = g.remove_edges(("pin", "in", "board"), eids=eid)
    emb = torch.zeros(5, 2)
    emb[[p("p0"), p("p1")]] = torch.tensor([1.0, 0.0])    # board b0's training pins
    emb[p("p3")] = torch.tensor([1.0, 0.05])              # closest to b0, but not a candidate
    emb[p("p2")] = torch.tensor([1.0, 0.2])               # the held-out positive
    emb[p("p4")] = torch.tensor([0.0, 1.0])
    empty = torch.zeros(0, dtype=torch.long)
    split = DataSplit(g, train, (empty, empty), torch.tensor([p("p2")]), (torch.tensor([p("p2")]), torch.tensor([b0])))
    mrr_all = board_completion(emb, split, ks=(1,)).cold["mrr"].mean
    cand = torch.zeros(5, dtype=torch.bool)
    cand[[p("p2"), p("p4")]] = True
    mrr_cand = board_completion(emb, dataclasses.replace(split, candidates=cand), ks=(1,)).cold["mrr"].mean
    assert mrr_all == pytest.approx(0.5) and mrr_cand == pytest.approx(1.0)
