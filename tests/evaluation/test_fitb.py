import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from boardgraph.datasets.polyvore import PolyvoreData, find_data_dir, load_polyvore
from boardgraph.evaluation.fitb import FitbError, exclude_fitb, fill_in_the_blank, fitb_touched, make_fitb_questions
from boardgraph.graph import from_collections

# --- a hand-built question set: outfit o1 is the context of every question ---------------------
ITEMS = ["o1_1", "o1_2", "o1_3", "o2_1", "o2_2", "o3_1", "o3_2", "o4_1"]
X, Y = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]


def _graph():
    df = pd.DataFrame({"board_id": [i.split("_")[0] for i in ITEMS], "pin_id": ITEMS})
    g, _ = from_collections(df, collection="board_id", item="pin_id")
    return g


def _q(qid, answer, candidates, context, status="full", full_context=None):
    return {"question_id": qid, "answer_id": answer, "candidate_ids": tuple(candidates),
            "context_ids": tuple(full_context if full_context is not None else context),
            "resolved_context_ids": tuple(context), "status": status}


def _emb(g, vectors: dict[str, list[float]]) -> torch.Tensor:
    emb = torch.zeros(g.num_nodes("pin"), 3)
    emb[:, 2] = 1.0  # unnamed pins point along z: cosine 0 to X and Y
    for pid, v in vectors.items():
        emb[int(g.index("pin", pid))] = torch.tensor(v)
    return emb


def test_known_answers_and_exact_ties():
    g = _graph()
    # context o1_1 and o1_2 point along x (their sum too), so a candidate's score is its x cosine
    emb = _emb(g, {"o1_1": X, "o1_2": [2.0, 0.0, 0.0], "o2_1": X, "o2_2": Y, "o3_1": X,
                   "o3_2": [0.6, 0.8, 0.0], "o4_1": [0.6, -0.8, 0.0], "o1_3": Y})
    questions = pd.DataFrame([
        _q(0, "o2_1", ["o2_2", "o1_3", "o2_1"], ["o1_1", "o1_2"]),           # alone on top: 1
        _q(1, "o2_2", ["o2_1", "o2_2"], ["o1_1", "o1_2"]),                   # beaten: 0
        _q(2, "o2_1", ["o3_1", "o2_2", "o2_1"], ["o1_1", "o1_2"]),           # o3_1 == o2_1: 1/2
        _q(3, "o2_1", ["o3_1", "o1_1", "o2_2", "o2_1"], ["o1_2"]),           # three equal: 1/3
        _q(4, "o4_1", ["o2_2", "o3_2", "o4_1"], ["o1_1"]),                   # 0.6 == 0.6: 1/2
        _q(5, "o2_2", ["o3_1", "o2_2", "o2_1"], ["o1_1"]),                   # behind a tie: 0
        _q(6, "o3_2", ["o3_2"], ["o1_1"]),                                   # one candidate: 1
    ])
    r = fill_in_the_blank(emb, questions, g)
    assert r.credit.tolist() == pytest.approx([1.0, 0.0, 0.5, 1 / 3, 0.5, 0.0, 1.0])
    assert r.n_ties.tolist() == [1, 1, 2, 3, 2, 2, 1]
    assert r.n_candidates.tolist() == [3, 2, 3, 4, 3, 3, 1]
    assert r.question_ids.tolist() == list(range(7))
    assert r.accuracy_strict == pytest.approx((1 + 0.5 + 1 / 3 + 0.5 + 1) / 7)
    assert r.chance("strict") == pytest.approx((1 / 3 + 1 / 2 + 1 / 3 + 1 / 4 + 1 / 3 + 1 / 3 + 1) / 7)
    # the candidate order never matters: reversing every candidate list gives the same credits
    rev = questions.assign(candidate_ids=[c[::-1] for c in questions["candidate_ids"]])
    assert fill_in_the_blank(emb, rev, g).credit.tolist() == r.credit.tolist()


def test_identical_embeddings_tie_in_high_dimension():
    g = _graph()
    emb = torch.randn(g.num_nodes("pin"), 97, generator=torch.Generator().manual_seed(0))
    ctx = ["o1_1", "o1_2", "o1_3", "o3_2"]
    # duplicated item text -> identical embedding, here the clear winner (the context mean)
    dup = g.index("pin", ["o2_1", "o3_1", "o4_1"])
    emb[dup] = emb[g.index("pin", ctx)].mean(dim=0)
    q = pd.DataFrame([_q(0, "o4_1", ["o2_1", "o2_2", "o3_1", "o4_1"], ctx),
                      _q(1, "o2_2", ["o2_1", "o2_2"], ctx)])
    r = fill_in_the_blank(emb, q, g)
    assert r.n_ties.tolist() == [3, 1] and r.credit.tolist() == pytest.approx([1 / 3, 0.0])


def test_strict_and_relaxed_sets():
    g = _graph()
    emb = _emb(g, {"o1_1": X, "o2_1": X, "o2_2": Y})
    questions = pd.DataFrame([
        _q(0, "o2_1", ["o2_2", "o2_1"], ["o1_1"]),                                         # 1
        _q(1, "o2_2", ["o2_1", "o2_2"], ["o1_1"], "partial", ["o1_1", "o9_9"]),            # 0
        _q(2, "o2_1", ["o2_2", "o2_1"], ["o1_1"], "partial", ["o1_1", "o9_8"]),            # 1
        _q(3, "o9_9", ["o2_2", "o9_9"], ["o1_1"], "unresolved"),                           # skipped
    ])
    r = fill_in_the_blank(emb, questions, g)
    assert (r.n_strict, r.n_relaxed, r.n_unresolved) == (1, 3, 1)
    assert r.accuracy_strict == 1.0 and r.accuracy_relaxed == pytest.approx(2 / 3)
    assert r.strict.tolist() == [1.0] and r.relaxed.tolist() == [1.0, 0.0, 1.0]
    assert r.full.tolist() == [True, False, False]
    s = r.summary()
    assert s["fitb_strict"] == 1.0 and s["fitb_n_relaxed"] == 3 and s["fitb_chance_relaxed"] == 0.5
    frame = r.to_frame()
    assert frame["question_id"].tolist() == [0, 1, 2] and frame["credit"].tolist() == [1.0, 0.0, 1.0]
    ci = r.ci("relaxed", n_boot=200, seed=1)
    assert ci.n == 3 and 0.0 <= ci.low <= ci.estimate <= ci.high <= 1.0
    assert "strict=1.0000 on 1" in repr(r)


def test_bad_inputs():
    g = _graph()
    emb = torch.randn(g.num_nodes("pin"), 4)
    ok = pd.DataFrame([_q(0, "o2_1", ["o2_2", "o2_1"], ["o1_1"])])
    with pytest.raises(FitbError, match="rows but the graph has"):
        fill_in_the_blank(emb[:-1], ok, g)
    with pytest.raises(FitbError, match="non-finite"):
        fill_in_the_blank(emb.index_fill(1, torch.tensor([0]), float("nan")), ok, g)
    with pytest.raises(FitbError, match="lacks column"):
        fill_in_the_blank(emb, ok.drop(columns="status"), g)
    with pytest.raises(FitbError, match="not among its candidates"):
        fill_in_the_blank(emb, pd.DataFrame([_q(0, "o2_1", ["o2_2", "o3_1"], ["o1_1"])]), g)
    with pytest.raises(FitbError, match="does not have"):
        fill_in_the_blank(emb, pd.DataFrame([_q(0, "o2_1", ["o7_7", "o2_1"], ["o1_1"])]), g)
    with pytest.raises(FitbError, match="which must be"):
        fill_in_the_blank(emb, ok, g).chance("loose")
    empty = fill_in_the_blank(emb, ok.assign(status="unresolved"), g)
    assert empty.n_relaxed == 0 and math.isnan(empty.accuracy_relaxed) and empty.n_unresolved == 1


def test_touched_outfits_and_exclusion():
    g = _graph()
    questions = pd.DataFrame([_q(0, "o2_1", ["o3_1", "o2_1"], ["o2_2"], full_context=["o2_2"]),
                              _q(1, "o9_1", ["o9_1"], [], "unresolved", ["o9_2"])])
    outfits, items = fitb_touched(questions)
    assert outfits == {"o2", "o3", "o9"}
    assert items == {"o2_1", "o2_2", "o3_1", "o9_1", "o9_2"}
    train = exclude_fitb(g, questions)
    assert train.num_nodes("pin") == g.num_nodes("pin")          # rows stay aligned
    deg = train.degree(("board", "has", "pin"))
    kept = {b for b, d in zip(g.ids("board"), deg.tolist()) if d > 0}
    assert kept == {"o1", "o4"}


# --- the shared Polyvore data (skips when absent) ------------------------------------------------
@pytest.fixture(scope="module")
def polyvore() -> PolyvoreData:
    try:
        root: Path = find_data_dir("polyvore", required=("outfits_test.json", "outfits_valid.json",
                                                         "fitb_questions.json"))
    except FileNotFoundError as exc:
        pytest.skip(f"Polyvore data absent: {exc}")
    return load_polyvore(root)


@pytest.mark.data
def test_random_embeddings_score_chance_on_polyvore(polyvore):
    emb = torch.randn(polyvore.graph.num_nodes("pin"), 32, generator=torch.Generator().manual_seed(0))
    r = fill_in_the_blank(emb, polyvore)
    # README: 973 questions resolve fully, 5,633 with at least part of their context
    assert (r.n_strict, r.n_relaxed, r.n_unresolved) == (973, 5633, 11135)
    assert r.chance("relaxed") == pytest.approx(0.2016, abs=1e-4)
    # credits are Bernoulli-like with sd <= 0.5: 4 standard errors
    assert abs(r.accuracy_relaxed - r.chance("relaxed")) < 4 * 0.5 / math.sqrt(5633)
    assert abs(r.accuracy_strict - r.chance("strict")) < 4 * 0.5 / math.sqrt(973)
    # training outfits: exactly the loader's, and none of them in a question
    outfits, _ = fitb_touched(polyvore)
    assert set(polyvore.outfits["board_id"]) - outfits == set(polyvore.train_outfits)


@pytest.mark.data
def test_duplicate_texts_tie_on_polyvore(polyvore):
    # a text-only stand-in: one random vector per distinct name, so duplicated names tie exactly
    names = polyvore.graph.features("pin").text("name")
    codes = pd.factorize(pd.Series(names))[0]
    table = torch.randn(int(codes.max()) + 1, 16, generator=torch.Generator().manual_seed(1))
    r = fill_in_the_blank(table[torch.as_tensor(codes)], polyvore)
    tied = r.n_ties > 1
    assert int(tied.sum()) > 0
    assert torch.all((r.credit[tied] == 0) | (r.credit[tied] == 1.0 / r.n_ties[tied].double()))


def _wardrobe():
    """b0: p0 top, p1 shoe, p2 bag; b1: p3 top, p4 shoe; b2: p5 top, p6 bag; b3: p7 hat alone."""
    rows = [("b0", "p0"), ("b0", "p1"), ("b0", "p2"), ("b1", "p3"), ("b1", "p4"), ("b2", "p5"), ("b2", "p6"),
            ("b3", "p7")]
    items = pd.DataFrame({"pin_id": [f"p{i}" for i in range(9)],
                          "category": ["top", "shoe", "bag", "top", "shoe", "top", "bag", "hat", "hat"]})
    return from_collections(pd.DataFrame(rows, columns=["board_id", "pin_id"]), items=items,
                            categorical=["category"])[0]


def test_make_fitb_questions_draws_negatives_of_the_same_category():
    g = _wardrobe()
    q = make_fitb_questions(g, attribute="category", n_candidates=5, seed=0)
    # b3 has one pin: no question; every other pin is hidden once
    assert sorted(q.answer_id) == ["p0", "p1", "p2", "p3", "p4", "p5", "p6"] and q.attrs["skipped"] == 0
    by_answer = q.set_index("answer_id")
    want = {"p0": {"p0", "p3", "p5"}, "p1": {"p1", "p4"}, "p2": {"p2", "p6"}, "p3": {"p3", "p0", "p5"},
            "p4": {"p4", "p1"}, "p5": {"p5", "p0", "p3"}, "p6": {"p6", "p2"}}   # the pool: pins of the boards
    for a, cands in want.items():
        assert set(by_answer.candidate_ids[a]) == cands and by_answer.n_candidates[a] == len(cands)
    assert set(by_answer.resolved_context_ids["p0"]) == {"p1", "p2"} and (q.status == "full").all()
    assert by_answer.board_id["p5"] == "b2"
    # a one-pin board gives no question
    assert len(make_fitb_questions(g, boards=torch.tensor([3]), attribute="category")) == 0
    # embeddings where each board's pins coincide answer every question; per_board and the seed draw
    emb = torch.zeros(9, 4)
    for b, pins in enumerate([[0, 1, 2], [3, 4], [5, 6], [7]]):
        emb[pins, b] = 1.0
    res = fill_in_the_blank(emb, q, g)
    assert res.n_strict == 7 and res.accuracy_strict == 1.0
    one = make_fitb_questions(g, attribute="category", per_board=1, seed=1)
    assert len(one) == 3 and set(one.board_id) == {"b0", "b1", "b2"}
    assert make_fitb_questions(g, attribute="category", seed=1).equals(make_fitb_questions(g, attribute="category",
                                                                                           seed=1))


def test_make_fitb_questions_skips_and_errors():
    g = _wardrobe()
    # without an attribute, negatives come from any pooled pin off the board (up to n_candidates - 1)
    q = make_fitb_questions(g, n_candidates=3, seed=0)
    assert (q.n_candidates == 3).all()
    # a pool without any other top: the tops are skipped and counted
    q = make_fitb_questions(g, attribute="category", pool=torch.tensor([1, 2, 4, 6]))
    assert set(q.answer_id) == {"p1", "p2", "p4", "p6"} and q.attrs["skipped"] == 3
    with pytest.raises(FitbError, match="n_candidates must be >= 2"):
        make_fitb_questions(g, n_candidates=1)
    with pytest.raises(FitbError, match="per_board must be >= 1"):
        make_fitb_questions(g, per_board=0)
    with pytest.raises(FitbError, match="attribute 'colour' is not a categorical pin feature"):
        make_fitb_questions(g, attribute="colour")
