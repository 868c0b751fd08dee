import math

import numpy as np
import pandas as pd
import pytest
import torch

from boardgraph.evaluation.baselines import PopularityScorer, RandomScorer
from boardgraph.evaluation.baselines import (BPRConfig, BPRScorer, CatalogueTooLargeError, EASEScorer, ItemKNNScorer,
                                            PixieScorer, ease_weights, train_bpr)
from boardgraph.models import MODEL_KINDS, ModelOptionError, UnknownModelError
from boardgraph.training.config import ConfigError
from boardgraph.evaluation.splits import DataSplit, split_memberships
from boardgraph.evaluation.completion import board_completion
from boardgraph.graph import BoardgraphError, from_collections
from boardgraph.evaluation.metrics import MetricInputError

from boardgraph.schema import MEMBER

CF_BASELINES = ("itemknn", "ease", "pixie", "bpr")


pytestmark = pytest.mark.usefixtures("one_thread")


def make_split(train, held, cold, extra=()):
    """A split from ``(board, pin)`` rows: ``held`` are warm held-out memberships, ``cold`` the
    memberships of cold pins; ``extra`` rows enter ``split.graph`` only (neither held out nor trained on).
    Pin ``pK`` is pin index K."""
    rows = list(train) + list(held) + list(cold) + list(extra)
    pins = sorted({p for _, p in rows}, key=lambda s: int(s[1:]))
    g, _ = from_collections(pd.DataFrame(rows, columns=["board_id", "pin_id"]), items=pd.DataFrame({"pin_id": pins}))
    idx = lambda rs: (g.index("pin", [p for _, p in rs]), g.index("board", [b for b, _ in rs]))  # noqa: E731
    train_g = g.remove_edges(MEMBER, *idx(list(held) + list(cold) + list(extra)))
    cold_pins = g.index("pin", sorted({p for _, p in cold}))
    return DataSplit(graph=g, train_graph=train_g, heldout=idx(held), cold_pins=cold_pins, cold_edges=idx(cold))


# b0: p0 p1 p2 | b1: p0 p1 | b2: p1 p3 (+ p2 held out) | b3: p4 p5 (another component); p6 cold (b0, b3)
TRAIN = [("b0", "p0"), ("b0", "p1"), ("b0", "p2"), ("b1", "p0"), ("b1", "p1"), ("b2", "p1"), ("b2", "p3"),
         ("b3", "p4"), ("b3", "p5")]
HELD = [("b2", "p2")]
COLD = [("b0", "p6"), ("b3", "p6")]


@pytest.fixture(scope="module")
def hand():
    split = make_split(TRAIN, HELD, COLD)
    g = split.graph
    return split, (lambda *ids: g.index("pin", list(ids))), (lambda *ids: g.index("board", list(ids)))


def planted_split(n_clusters=4, pins_per_cluster=50, boards_per_cluster=20, board_size=12, seed=0):
    """Boards drawn from one cluster of pins each (pin i is in cluster i // pins_per_cluster)."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n_clusters):
        for k in range(boards_per_cluster):
            for p in rng.choice(np.arange(c * pins_per_cluster, (c + 1) * pins_per_cluster), board_size, replace=False):
                rows.append((f"b{c}_{k}", f"p{p}"))
    n = n_clusters * pins_per_cluster
    g, _ = from_collections(pd.DataFrame(rows, columns=["board_id", "pin_id"]),
                            items=pd.DataFrame({"pin_id": [f"p{i}" for i in range(n)]}))
    return split_memberships(g, 0.15, 0.05, seed=seed)


@pytest.fixture(scope="module")
def planted():
    return planted_split()


FAST = {
    "itemknn": lambda: ItemKNNScorer(),
    "ease": lambda: EASEScorer(l2=(5.0, 50.0, 500.0)),
    "pixie": lambda: PixieScorer(walks_per_board=500),
    "bpr": lambda: BPRScorer(BPRConfig(steps=300)),
}
#: On the 7-pin hand example the validation split is too small to choose l2.
HAND = dict(FAST, ease=lambda: EASEScorer(l2=1.0))


# ------------------------------------------------------------------------------------------ ItemKNN
def test_itemknn_hand_example(hand):
    split, P, B = hand
    c01, c02, c12, c13 = 2 / math.sqrt(6), 1 / math.sqrt(2), 1 / math.sqrt(3), 1 / math.sqrt(3)
    # degrees p0 2, p1 3, p2 1, p3 1, p4 1, p5 1, p6 0; co-occurrences p0p1 2, p0p2 1, p1p2 1, p1p3 1, p4p5 1
    s = ItemKNNScorer(neighbors=None).similarity(split.train_graph).toarray()
    expect = np.zeros((7, 7))
    for (a, b), v in {("p0", "p1"): c01, ("p0", "p2"): c02, ("p1", "p2"): c12, ("p1", "p3"): c13,
                      ("p4", "p5"): 1.0}.items():
        expect[int(P(a)), int(P(b))] = expect[int(P(b)), int(P(a))] = v
    np.testing.assert_allclose(s, expect, rtol=1e-6)
    # b2 = {p1, p3}: p0 <- S10 + S30, p1 <- S31, p2 <- S12 + S32, p3 <- S13; other component and cold 0
    sc = ItemKNNScorer(neighbors=None).score(B("b2"), split)[0]
    want = {"p0": c01, "p1": c13, "p2": c12, "p3": c13, "p4": 0.0, "p5": 0.0, "p6": 0.0}
    np.testing.assert_allclose(sc[P(*want)].numpy(), list(want.values()), rtol=1e-6)
    # shrink 1: S01 = 2 / (sqrt(6) + 1)
    assert ItemKNNScorer(shrink=1.0, neighbors=None).similarity(split.train_graph)[int(P("p0")), int(P("p1"))] \
        == pytest.approx(2 / (math.sqrt(6) + 1), rel=1e-6)


def test_itemknn_keeps_top_neighbors_ties_to_smaller_index(hand):
    split, P, B = hand
    s2 = ItemKNNScorer(neighbors=2).similarity(split.train_graph)
    # row p1: p0 (0.816) first, then p2 and p3 tie at 0.577: the smaller index p2 stays
    assert sorted(s2[int(P("p1"))].indices.tolist()) == sorted(P("p0", "p2").tolist())
    s1 = ItemKNNScorer(neighbors=1).similarity(split.train_graph)
    assert [s1[int(p)].indices.tolist() for p in P("p0", "p1", "p2", "p3")] == [P("p1").tolist(), P("p0").tolist(),
                                                                                P("p0").tolist(), P("p1").tolist()]
    # b2 = {p1, p3} with one neighbour each: p0 <- S10 only, p1 <- S31; S13 and S12 are pruned
    sc = ItemKNNScorer(neighbors=1).score(B("b2"), split)[0]
    np.testing.assert_allclose(sc[P("p0", "p1", "p2", "p3")].numpy(), [2 / math.sqrt(6), 1 / math.sqrt(3), 0, 0],
                               rtol=1e-6)


def test_itemknn_chunked_similarity_equals_one_block(planted):
    a = ItemKNNScorer(neighbors=5, chunk_size=7).similarity(planted.train_graph)
    b = ItemKNNScorer(neighbors=5, chunk_size=10_000).similarity(planted.train_graph)
    assert (a != b).nnz == 0 and np.diff(a.indptr).max() == 5


# --------------------------------------------------------------------------------------------- EASE
def dense_ease_scores(split, l2):
    """EASE^R written out in numpy on the dense boards x pins matrix (cold pins included)."""
    pin, board = (t.numpy() for t in split.train_graph.edges(MEMBER))
    x = np.zeros((split.graph.num_nodes("board"), split.graph.num_nodes("pin")))
    x[board, pin] = 1.0
    p = np.linalg.inv(x.T @ x + l2 * np.eye(x.shape[1]))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return x @ b, b


@pytest.mark.parametrize("l2", [0.5, 3.0])
def test_ease_equals_dense_numpy(hand, l2):
    split, P, _ = hand
    want, b = dense_ease_scores(split, l2)
    sc = EASEScorer(l2=l2)
    got = sc.score(torch.arange(split.graph.num_nodes("board")), split)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
    pins, w = sc.weights(split.train_graph)        # the warm pins only; B's cold row and column are 0
    assert P("p6").item() not in pins.tolist() and np.abs(b[int(P("p6"))]).max() == 0
    np.testing.assert_allclose(w.numpy(), b[np.ix_(pins.numpy(), pins.numpy())], rtol=1e-5, atol=1e-7)
    assert torch.all(torch.diagonal(w) == 0) and sc.chosen_l2 == l2
    assert torch.all(got[:, P("p6")] == 0)


def test_ease_weights_formula():
    g = np.array([[2.0, 1.0], [1.0, 3.0]])
    p = np.linalg.inv(g + np.eye(2))                # [[4, -1], [-1, 3]] / 11
    b = ease_weights(g, 1.0).numpy()
    np.testing.assert_allclose(b, [[0.0, 1 / 3], [1 / 4, 0.0]], rtol=1e-12)
    np.testing.assert_allclose(b[0, 1], -p[0, 1] / p[1, 1], rtol=1e-12)
    with pytest.raises(ConfigError, match="l2 must be > 0"):
        ease_weights(g, 0.0)


def test_ease_grid_picks_on_validation_then_refits(planted, caplog):
    grid = (1.0, 20.0, 400.0)
    sc = EASEScorer(l2=grid, val_fraction=0.2, seed=3)
    with caplog.at_level("INFO", logger="boardgraph.evaluation.baselines.cf"):
        s = sc.score(torch.arange(10), planted)
    assert set(sc.validation) == set(grid) and all(0 <= v <= 1 for v in sc.validation.values())
    assert sc.chosen_l2 == max(grid, key=lambda k: (sc.validation[k], -k))
    assert f"chose l2={sc.chosen_l2:g}" in caplog.text
    # the validation split is carved from the training memberships only: replay one grid point by hand
    val = split_memberships(planted.train_graph, holdout_fraction=0.2, cold_fraction=0.0, seed=3)
    one = board_completion(EASEScorer(l2=20.0), val, ks=(10,)).warm["recall@10"].mean
    assert sc.validation[20.0] == pytest.approx(one, abs=1e-12)
    # refit on the whole training graph with the chosen l2
    assert torch.equal(s, EASEScorer(l2=sc.chosen_l2).score(torch.arange(10), planted))


def test_ease_grid_falls_back_to_its_middle_when_validation_cannot_choose(planted, caplog, monkeypatch):
    """Sparse data (Steam: ~1.2 bundles per item) leaves a validation split where every l2 scores
    the same; the smallest l2 would then win by the tie rule alone, so the middle of the grid is taken."""
    import boardgraph.evaluation.baselines.cf as ev

    real = ev.board_completion

    def flat(model, split, ks=(10,), chunk_size=1024):   # every l2 scores 0 on validation
        out = real(model, split, ks, chunk_size)
        r = out.warm["recall@10"]
        out.warm["recall@10"] = type(r)("recall@10", torch.where(r.valid, 0.0, float("nan")).double(), r.valid)
        return out

    monkeypatch.setattr(ev, "board_completion", flat)
    sc = EASEScorer(l2=(1.0, 20.0, 400.0), val_fraction=0.2, seed=3)
    with caplog.at_level("WARNING", logger="boardgraph.evaluation.baselines.cf"):
        sc.fit(planted.train_graph)
    assert set(sc.validation.values()) == {0.0} and sc.chosen_l2 == 20.0
    assert "every l2 scores 0.0000 on the validation queries; using l2=20" in caplog.text


def test_ease_refuses_a_large_catalogue(hand):
    split, _, _ = hand
    with pytest.raises(CatalogueTooLargeError) as e:
        EASEScorer(l2=1.0, max_items=5).score(torch.tensor([0]), split)
    msg = str(e.value)
    assert isinstance(e.value, ValueError) and isinstance(e.value, BoardgraphError)
    # 6 pins have training memberships (p6 is cold): 6 x 6 float64 = 288 bytes
    assert "6 x 6" in msg and "2.88e-07 GB" in msg and "max_items=5" in msg
    assert "itemknn" in msg and "pixie" in msg
    assert EASEScorer(l2=1.0, max_items=6).score(torch.tensor([0]), split).shape == (1, 7)


# -------------------------------------------------------------------------------------------- Pixie
@pytest.mark.parametrize("allocation", ["uniform", "degree"])
def test_pixie_one_traversal_visit_shares(hand, allocation):
    """b2 = {p1, p3}, one traversal: a walk from p1 goes to b0 / b1 / b2 (1/3 each) then to a
    uniform pin of it; from p3 to b2 then p1 or p3. The start is p1 with probability a: 1/2
    (uniform) or 3 (3 - ln 3) / (3 (3 - ln 3) + 1 (3 - ln 1)) (Pixie's d (C - log d), C = 3)."""
    split, P, B = hand
    a = 0.5 if allocation == "uniform" else 3 * (3 - math.log(3)) / (3 * (3 - math.log(3)) + 3)
    share = {"p0": a * 5 / 18, "p1": a * 8 / 18 + (1 - a) / 2, "p2": a / 9, "p3": a / 6 + (1 - a) / 2}
    n = 20_000
    v = PixieScorer(walks_per_board=n, walk_length=1, allocation=allocation).score(B("b2"), split)[0]
    assert v.sum() == n                                      # one visit per walk
    # binomial sd of a share <= sqrt(0.25 / 20000) = 0.0035: tolerance ~4 sd
    np.testing.assert_allclose((v[P(*share)] / n).numpy(), list(share.values()), atol=0.015)
    assert torch.all(v[P("p4", "p5", "p6")] == 0)           # other component, cold pin


def test_pixie_walk_length_and_restarts_count_visits(hand):
    split, P, B = hand
    # no restarts: every walk makes 3 traversals -> 3 visits; b3's walks stay in {p4, p5}
    v = PixieScorer(walks_per_board=100, walk_length=3, restart_prob=0.0).score(B("b3", "b2"), split)
    assert v[0].sum() == 300 and v[1].sum() == 300
    assert v[0, P("p4", "p5")].sum() == 300 and torch.all(v[1, P("p4", "p5", "p6")] == 0)
    # restarts: a walk of 3 makes 1 + Bin(2 steps, survival 0.5 each) visits: mean 1 + 0.5 + 0.25
    v = PixieScorer(walks_per_board=20_000, walk_length=3, restart_prob=0.5).score(B("b2"), split)
    assert float(v.sum()) / 20_000 == pytest.approx(1.75, abs=0.03)   # sd ~0.006


def test_pixie_is_seeded_and_chunk_independent(planted):
    boards = torch.arange(12)
    a = PixieScorer(walks_per_board=300, seed=1).score(boards, planted)
    assert torch.equal(a, PixieScorer(walks_per_board=300, seed=1).score(boards, planted))
    assert not torch.equal(a, PixieScorer(walks_per_board=300, seed=2).score(boards, planted))
    s = PixieScorer(walks_per_board=300, seed=1)
    parts = torch.cat([s.score(boards[7:], planted), s.score(boards[:7].flip(0), planted)])
    assert torch.equal(parts, torch.cat([a[7:], a[:7].flip(0)]))


# ---------------------------------------------------------------------------------------------- BPR
def test_bpr_learns_the_planted_clusters(planted):
    scorer = BPRScorer(BPRConfig(steps=300))
    res = scorer.fit(planted)
    assert res.losses[-1] < 0.5 * res.losses[0]
    pin, board = planted.heldout
    scores = res.score(board)                                # [H, N_pins]
    cluster = torch.arange(planted.graph.num_nodes("pin")) // 50
    other = cluster.unsqueeze(0) != cluster[pin].unsqueeze(1)
    best_other = torch.where(other, scores, -torch.inf).max(1).values
    above = (scores[torch.arange(pin.numel()), pin] > best_other).double().mean()
    assert above >= 0.9, float(above)                        # the held-out pin beats every other-cluster pin
    bpr = board_completion(scorer, planted, ks=(10,)).warm["recall@10"].mean
    rnd = np.mean([board_completion(RandomScorer(s), planted, ks=(10,)).warm["recall@10"].mean for s in range(3)])
    # random: ~10 / 190 candidates = 0.05; ranking the cluster's ~40 candidates in random order: ~0.25
    assert rnd < 0.1 and bpr > 0.15 and bpr > 3 * rnd, (bpr, rnd)


def test_bpr_is_seeded(planted):
    a = train_bpr(planted, BPRConfig(steps=40, seed=5))
    b = train_bpr(planted, BPRConfig(steps=40, seed=5))
    c = train_bpr(planted, BPRConfig(steps=40, seed=6))
    assert torch.equal(a.pin_factors, b.pin_factors) and torch.equal(a.board_factors, b.board_factors)
    assert a.losses == b.losses and not torch.equal(a.pin_factors, c.pin_factors)
    assert a.pin_factors.shape == (200, 64) and a.board_factors.shape == (80, 64)


def test_bpr_config_is_checked():
    with pytest.raises(ConfigError, match="negatives"):
        BPRConfig(negatives="hard")
    with pytest.raises(ConfigError, match="steps"):
        BPRConfig(steps=0)


# ----------------------------------------------------------------------------------------- all four
@pytest.mark.parametrize("name", CF_BASELINES)
def test_scores_use_only_the_training_graph(name):
    split = make_split(TRAIN, HELD, COLD)
    # the same training memberships, but a full graph with more held-out-only memberships
    more = make_split(TRAIN, HELD, COLD, extra=[("b1", "p3"), ("b3", "p0")])
    boards = torch.arange(split.graph.num_nodes("board"))
    a = HAND[name]().score(boards, split)
    b = HAND[name]().score(boards, more)
    assert more.graph.num_edges(MEMBER) == split.graph.num_edges(MEMBER) + 2
    assert torch.equal(a, b)
    # and the test can fail: trained on the full graph, the scores change
    leak = DataSplit(split.graph, split.graph, split.heldout, split.cold_pins, split.cold_edges)
    c = HAND[name]().score(boards, leak)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("name", CF_BASELINES)
def test_scorer_contract_and_end_to_end(name, planted):
    scorer = FAST[name]()
    n_pins, n_boards = planted.graph.num_nodes("pin"), planted.graph.num_nodes("board")
    boards = torch.arange(n_boards)
    s = scorer.score(boards, planted)
    assert s.shape == (n_boards, n_pins) and s.dtype == torch.float32 and s.device.type == "cpu"
    assert bool(torch.isfinite(s).all())
    cold = torch.nonzero(PopularityScorer.degrees(planted.train_graph) == 0).squeeze(1)
    assert cold.numel() >= planted.cold_pins.numel() > 0 and torch.all(s[:, cold] == 0)
    # fitted once per training graph: chunks score as the whole
    assert torch.equal(torch.cat([scorer.score(boards[:30], planted), scorer.score(boards[30:], planted)]), s)
    with pytest.raises(MetricInputError, match=r"board indices must lie in \[0, 80\)"):
        scorer.score(torch.tensor([80]), planted)
    r = board_completion(scorer, planted, ks=(10,))
    pop = board_completion(PopularityScorer(), planted, ks=(10,))
    # popularity knows nothing of the clusters (~0.05); every CF baseline finds them (~0.2 and up)
    assert r.warm["recall@10"].mean > 0.15 and r.warm["recall@10"].mean > 2.5 * pop.warm["recall@10"].mean, \
        (r.warm["recall@10"].mean, pop.warm["recall@10"].mean)


def test_the_registry_builds_every_cf_scorer_with_its_options():
    make = lambda name, **o: MODEL_KINDS.get(name).make_scorer(seed=3, **o)  # noqa: E731
    assert isinstance(make("itemknn", neighbors=10), ItemKNNScorer) and make("itemknn").neighbors == 100
    assert make("bpr", dim=8).config.dim == 8 and make("bpr").config.seed == 3
    assert make("pixie").seed == 3 and make("ease").seed == 3
    assert [type(make(n)).__name__ for n in CF_BASELINES] == ["ItemKNNScorer", "EASEScorer", "PixieScorer",
                                                             "BPRScorer"]
    assert set(CF_BASELINES) <= set(MODEL_KINDS.names("scorer"))
    with pytest.raises(UnknownModelError, match="unknown model 'slim'; choose from .*'itemknn'"):
        MODEL_KINDS.get("slim")
    with pytest.raises(ModelOptionError, match=r"bad option for the 'pixie' baseline .*'walks_per_board'"):
        make("pixie", walks=3)
    with pytest.raises(ConfigError, match="bad option for the 'bpr' baseline"):
        make("bpr", walks=3)
