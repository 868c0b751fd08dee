import pandas as pd
import pytest
import torch

from boardgraph.evaluation.splits import DataSplit, split_memberships
from boardgraph.datasets import synthetic_lookbooks
from boardgraph.evaluation.completion import CURVE_KS, EmbeddingScorer, Scorer, board_completion, cross_modal
from boardgraph.graph import from_collections
from boardgraph.evaluation.metrics import MetricInputError


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
    r = board_completion(emb, split, ks=(1, 2, 3))
    assert r.warm_boards.tolist() == B("b0", "b1").tolist() and r.cold_boards.tolist() == B("b0").tolist()
    assert r.boards("cold_all").tolist() == B("b0").tolist()
    # warm, b0: candidates p2 (pos, 0.6), p3 (0.0), p4 (0.0: held out of b1, still a candidate here);
    # p0, p1 (training) and p5 (cold) are not candidates -> rank 1
    # warm, b1: training p3 and p2 (p2 is held out of b0 only); p4 (pos, 0.95) vs p0, p1 (0.32) -> rank 1
    assert r.warm["recall@1"].per_query.tolist() == [1.0, 1.0]
    # cold among new items, b0: p5 is the only cold pin -> rank 1
    assert r.cold["recall@1"].per_query.tolist() == [1.0]
    # cold among all pins, b0: p5 (0.8) vs p3, p4 (0.0); p2 (b0's own warm held-out) is not a negative -> rank 1
    assert r.metrics("cold_all")["recall@1"].per_query.tolist() == [1.0]
    # move p5 away from b0: among new items it is still first; among all pins p3 and p4 (0.0) beat it (-1)
    emb[P("p5")] = torch.tensor([-1.0, 0.0])
    r2 = board_completion(emb, split, ks=(1, 2, 3))
    assert r2.cold["recall@1"].per_query.tolist() == [1.0]
    ca = r2.metrics("cold_all")
    assert [ca[f"recall@{k}"].per_query.tolist() for k in (1, 2, 3)] == [[0.0], [0.0], [1.0]]
    assert ca["mrr"].per_query.tolist() == [pytest.approx(1 / 3)]
    s = r2.summary()
    assert s["warm_recall@1"] == 1.0 and s["cold_recall@1"] == 1.0 and s["cold_all_recall@1"] == 0.0


def test_warm_pin_held_out_of_one_board_is_a_candidate_for_another():
    """p4 is held out of b1; for b0 it is a training pin like any other and outranks b0's positive."""
    _, split, emb, P, B = hand_split()
    emb[P("p4")] = torch.tensor([1.0, 0.0])   # right on b0's centroid, above p2 (0.6)
    r = board_completion(emb, split, ks=(1, 2))
    # b0: p4 takes the first place, p2 the second. b1: p4 (0.32) now ties p0 and p1 -> rank 3
    assert r.warm["recall@1"].per_query.tolist() == [0.0, 0.0]
    assert r.warm["recall@2"].per_query.tolist() == [1.0, 0.0]
    assert r.warm["mrr"].per_query.tolist() == [0.5, pytest.approx(1 / 3)]
    # and it is a negative of the cold-among-all query of b0 too (the cold pin p5 scores 0.8 < 1.0)
    assert r.metrics("cold_all")["mrr"].per_query.tolist() == [0.5]


def test_candidate_sets_do_not_depend_on_other_boards_hold_outs():
    """Holding out more memberships of *other* boards never changes a query's candidates: the
    rank of every (pin, board) of the smaller hold-out is the same under the larger one."""
    g = synthetic_lookbooks(300, 40, seed=1)
    base = split_memberships(g, 0.1, 0.1, seed=0)
    emb = torch.randn(300, 8, generator=torch.Generator().manual_seed(1))
    ref = board_completion(emb, base, ks=(10,))
    ranks = {(p, b): r for p, b, r in zip(*(t.tolist() for t in (ref.warm_pairs.pins, ref.warm_pairs.boards,
                                                                  ref.warm_pairs.ranks)))}
    # hold out more memberships, of boards that are not already queries, keeping the train graph's
    # view of the query boards the same
    pin, board = g.edges(("pin", "in", "board"))
    query = set(ref.warm_boards.tolist()) | set(ref.boards("cold_all").tolist())
    is_cold = torch.zeros(300, dtype=torch.bool)
    is_cold[base.cold_pins] = True
    trained = base.train_graph.edges(("pin", "in", "board"))
    trained_set = set(zip(*(t.tolist() for t in trained)))
    deg = torch.bincount(trained[0], minlength=300)
    extra_p, extra_b, seen = [], [], set()
    for p, b in zip(pin.tolist(), board.tolist()):
        if b in query or is_cold[p] or (p, b) not in trained_set or deg[p] < 2 or p in seen:
            continue
        extra_p.append(p), extra_b.append(b), seen.add(p)
        deg[p] -= 1
    assert len(extra_p) > 10
    held = (torch.cat([base.heldout[0], torch.tensor(extra_p)]), torch.cat([base.heldout[1], torch.tensor(extra_b)]))
    eids = base.train_graph.edge_ids("in", torch.tensor(extra_p), torch.tensor(extra_b))
    assert eids.numel() == len(extra_p)
    more = DataSplit(g, base.train_graph.remove_edges("in", eids=eids), held, base.cold_pins, base.cold_edges)
    out = board_completion(EmbeddingScorer(emb), more, ks=(10,))
    got = {(p, b): r for p, b, r in zip(*(t.tolist() for t in (out.warm_pairs.pins, out.warm_pairs.boards,
                                                                  out.warm_pairs.ranks)))}
    assert all(got[k] == v for k, v in ranks.items())
    # the cold queries' ranks do not move either
    assert torch.equal(out.cold_pairs.ranks, ref.cold_pairs.ranks)
    assert torch.equal(out.pairs("cold_all").ranks, ref.pairs("cold_all").ranks)


def test_random_scores_give_k_over_candidates():
    """Random scores: Recall@K ~ K / |candidates| in each group (within a tolerance)."""
    from boardgraph.evaluation.baselines import RandomScorer
    from boardgraph.evaluation.completion import candidate_masks

    g = synthetic_lookbooks(2000, 300, seed=0)
    split = split_memberships(g, 0.15, 0.2, seed=0)
    k = 100
    cands = candidate_masks(split)
    means = []
    for seed in range(8):
        r = board_completion(RandomScorer(seed), split, ks=(k,))
        means.append([r.metrics(gr)[f"recall@{k}"].mean for gr in ("warm", "cold", "cold_all")])
    got = torch.tensor(means).mean(0)
    n_w, n_c, n_a = (int(cands[gr].sum()) for gr in ("warm", "cold", "cold_all"))
    # a board's own training pins (~7 of them) leave the candidates too: small next to N
    assert (n_w, n_c, n_a) == (1600, 400, 2000)
    assert got[0] == pytest.approx(k / n_w, rel=0.12)
    assert got[1] == pytest.approx(k / n_c, rel=0.12)
    assert got[2] == pytest.approx(k / n_a, rel=0.2)   # fewest positives: the noisiest


def test_popularity_on_a_dense_graph_by_hand():
    """Popularity on a small dense graph, worked out by hand under the fair protocol.

    Pins a..f; boards u0..u3 (training memberships) and the held-out ones in brackets:
      u0: a b c [d]     u1: a b d [e]     u2: a c d e [b]     u3: a b f [c]
    Training degrees: a 4, b 3, c 2, d 2, e 1, f 1. Every pin is warm (held out of one board only).
    u0 ranks d, e, f (not its training a, b, c): d 2 > e 1 = f 1 -> d rank 1.
    u1 ranks c, e, f: c 2 > e 1 = f 1, e tied with f (ties count against it) -> e rank 3.
    u2 ranks b, f: b 3 -> rank 1.   u3 ranks c, d, e: c 2 tied with d 2 -> rank 2.
    The old protocol dropped every pin with a held-out membership (b, c, d, e) from other boards'
    rankings, which would have put every positive first.
    """
    from boardgraph.evaluation.baselines import PopularityScorer

    train_rows = [("u0", "a"), ("u0", "b"), ("u0", "c"), ("u1", "a"), ("u1", "b"), ("u1", "d"),
                  ("u2", "a"), ("u2", "c"), ("u2", "d"), ("u2", "e"), ("u3", "a"), ("u3", "b"), ("u3", "f")]
    held_rows = [("u0", "d"), ("u1", "e"), ("u2", "b"), ("u3", "c")]
    g, _ = from_collections(pd.DataFrame(train_rows + held_rows, columns=["board_id", "pin_id"]))
    hp = g.index("pin", [p for _, p in held_rows])
    hb = g.index("board", [b for b, _ in held_rows])
    train = g.remove_edges("in", eids=g.edge_ids("in", hp, hb))
    empty = torch.zeros(0, dtype=torch.long)
    split = DataSplit(g, train, (hp, hb), empty, (empty, empty))
    r = board_completion(PopularityScorer(), split, ks=(1, 2, 10))
    assert r.warm_boards.tolist() == g.index("board", ["u0", "u1", "u2", "u3"]).tolist()
    assert r.warm_pairs.ranks.tolist() == [1, 3, 1, 2]
    assert r.warm["recall@1"].per_query.tolist() == [1.0, 0.0, 1.0, 0.0]
    assert r.warm["recall@1"].mean == pytest.approx(0.5)
    assert r.warm["recall@10"].mean == pytest.approx(1.0)   # 3 or fewer candidates each
    assert r.warm["mrr"].mean == pytest.approx((1 + 1 / 3 + 1 + 1 / 2) / 4)
    assert r.cold["recall@10"].n_scored == 0 and r.metrics("cold_all")["recall@10"].n_scored == 0


def test_per_membership_ranks_and_frames():
    g, split, emb, P, B = hand_split()
    emb[P("p5")] = torch.tensor([-1.0, 0.0])
    r = board_completion(emb, split, ks=(1, 2))
    wp, cp, ap = r.pairs("warm"), r.pairs("cold"), r.pairs("cold_all")
    # one row per held-out membership, ordered by query board: (p2, b0) rank 1, (p4, b1) rank 1
    assert list(zip(wp.pins.tolist(), wp.boards.tolist(), wp.ranks.tolist())) == [
        (int(P("p2")), int(B("b0")), 1), (int(P("p4")), int(B("b1")), 1)]
    # (p5, b0): the only new item -> rank 1; among all pins p3 and p4 (0.0) are above it (-1) -> rank 3
    assert cp.ranks.tolist() == [1] and ap.ranks.tolist() == [3]
    assert ap.recall(2).tolist() == [0.0] and ap.reciprocal_rank().tolist() == [pytest.approx(1 / 3)]
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
        for group in ("warm", "cold", "cold_all"):
            for name, res in ref.metrics(group).items():
                assert torch.allclose(res.per_query, other.metrics(group)[name].per_query, equal_nan=True), name
            assert torch.equal(ref.pairs(group).ranks, other.pairs(group).ranks)
    # the per-board recall@K is the share of its memberships whose list position (filtered rank + the
    # number of better positives) is within K, for every K of the curve
    q = ref.per_query("warm")
    pairs = ref.pairs("warm").frame().sort_values(["board", "rank"], kind="stable")
    pairs["position"] = pairs["rank"] + pairs.groupby("board").cumcount()
    for k in CURVE_KS:
        hits = pairs.assign(hit=(pairs["position"] <= k).astype(float)).groupby("board")["hit"].mean()
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

    from boardgraph.evaluation.splits import DataSplit
    from boardgraph.evaluation.completion import board_completion
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
    r_all = board_completion(emb, split, ks=(1,))
    assert r_all.cold["mrr"].mean == pytest.approx(1.0)                 # the only new item
    assert r_all.metrics("cold_all")["mrr"].mean == pytest.approx(0.5)  # p3 is above it in the catalogue
    cand = torch.zeros(5, dtype=torch.bool)
    cand[[p("p3"), p("p2"), p("p4")]] = True
    r_cand = board_completion(emb, dataclasses.replace(split, candidates=cand), ks=(1,))
    assert r_cand.cold["mrr"].mean == pytest.approx(0.5)                # the split's candidates include p3
    cand[p("p3")] = False
    r_cand = board_completion(emb, dataclasses.replace(split, candidates=cand), ks=(1,))
    assert r_cand.cold["mrr"].mean == pytest.approx(1.0)
    assert r_cand.metrics("cold_all")["mrr"].mean == pytest.approx(0.5)  # every pin, whatever the candidates


def test_label_precision_hand_example():
    g, split, emb, P, B = hand_split()
    board_label = torch.full((g.num_nodes("board"),), -1)
    board_label[B("b0", "b1")] = torch.tensor([0, 1])
    pin_label = torch.zeros(g.num_nodes("pin"), dtype=torch.long)
    pin_label[P("p3", "p4")] = 1
    r = board_completion(emb, split, ks=(1, 2, 3), labels=(board_label, pin_label))
    lp = lambda g_, k: r.metrics(g_)[f"label_precision@{k}"].per_query.tolist()  # noqa: E731
    # warm b0: candidates p2 (0.6, label 0), p3 and p4 (0.0, label 1) -> 1, 1/2, 1/3
    # warm b1: candidates p4 (label 1, on b1), p0 and p1 (label 0) -> 1, 1/2, 1/3
    assert lp("warm", 1) == [1.0, 1.0] and lp("warm", 2) == [0.5, 0.5]
    assert lp("warm", 3) == [pytest.approx(1 / 3)] * 2
    # cold among new items, b0: one candidate (p5, label 0): precision over the candidates it has
    assert lp("cold", 1) == lp("cold", 3) == [1.0]
    # a board whose label is unknown is skipped
    board_label[B("b1")] = -1
    r = board_completion(emb, split, ks=(1,), labels=(board_label, pin_label))
    res = r.warm["label_precision@1"]
    assert res.valid.tolist() == [True, False] and res.mean == 1.0 and res.n_skipped == 1


def test_label_precision_of_random_and_of_a_label_oracle():
    from boardgraph.evaluation.audit import matching_labels
    g = synthetic_lookbooks(600, 80, seed=3)
    split = split_memberships(g, 0.2, 0.1, seed=0)
    labels = matching_labels(g, "style")

    class Oracle:  # ranks the pins of the board's style first
        def score(self, boards, split):
            return (labels[1][None, :] == labels[0][boards, None]).float()

    oracle = board_completion(Oracle(), split, ks=(10,), labels=labels)
    assert oracle.warm["label_precision@10"].mean == 1.0
    rnd = board_completion(torch.randn(600, 16, generator=torch.Generator().manual_seed(0)), split, ks=(10,),
                           labels=labels)
    share = torch.bincount(labels[1], minlength=12).double() / 600   # 12 styles
    assert rnd.warm["label_precision@10"].mean == pytest.approx(float(share.mean()), abs=0.03)
    with pytest.raises(KeyError, match="no feature 'category' to match on"):
        matching_labels(g, "category")
