import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from boardgraph.evaluation.audit import (MIXED, attribute_labels, audit, audit_board_completion,
                              audit_frame)
from boardgraph.evaluation.splits import DataSplit
from boardgraph.evaluation.completion import BoardCompletion
from boardgraph.graph import from_collections
from boardgraph.evaluation.metrics import MetricInputError, RankingResult

NAN = float("nan")


def test_audit_known_groups():
    values = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.5, 0.5, NAN, 0.25], dtype=torch.float64)
    groups = ["a", "a", "a", "a", "b", "b", "c", None]
    r = audit(values, groups, "recall@10", threshold=0.8, n_boot=300, seed=3)
    t = r.table
    assert t.columns.tolist() == ["metric", "group", "n", "mean", "ci_low", "ci_high",
                                  "ratio_to_best"]
    assert t["group"].tolist() == ["a", "b", "c"] and t["n"].tolist() == [4, 2, 0]
    assert t["mean"].tolist()[:2] == [0.75, 0.5] and math.isnan(t["mean"][2])
    assert t["ratio_to_best"].tolist()[:2] == pytest.approx([1.0, 2 / 3])
    # b is constant: its interval collapses; a's interval lies in [0, 1] around 0.75
    assert (t["ci_low"][1], t["ci_high"][1]) == (0.5, 0.5)
    assert 0.0 <= t["ci_low"][0] <= 0.75 <= t["ci_high"][0] <= 1.0
    assert math.isnan(t["ci_low"][2])                          # empty group: no interval
    assert r.worst_best_ratio == pytest.approx(2 / 3) and r.flagged
    assert (r.slice.worst, r.slice.best, r.slice.n_unlabelled) == ("b", "a", 1)
    assert "FLAGGED" in r.summary() and "'b'" in r.summary()
    assert not audit(values, groups, "recall@10", threshold=0.6, n_boot=50).flagged
    # a RankingResult gives the same table; min_count keeps small groups out of the ratio
    rr = RankingResult("recall@10", values, torch.isfinite(values))
    r2 = audit(rr, np.array(groups, dtype=object), "recall@10", min_count=3, n_boot=300, seed=3)
    pd.testing.assert_frame_equal(r2.table.drop(columns="ratio_to_best"),
                                  t.drop(columns="ratio_to_best"))
    assert r2.worst_best_ratio == 1.0 and not r2.flagged


def test_audit_rejects_misaligned_groups():
    with pytest.raises(MetricInputError, match="one group label per query"):
        audit(torch.ones(3), ["a", "b"], "m")


# --- board completion sliced by attributes of the held-out (cold) pins -----------------------------
def _split_and_result():
    # boards b0..b4 each keep one training pin t*; the cold pins c* are held out
    mem = pd.DataFrame({"board_id": ["b0", "b1", "b2", "b3", "b4", "b0", "b1", "b2", "b3", "b3", "b4"],
                        "pin_id": ["t0", "t1", "t2", "t3", "t4", "c0", "c1", "c2", "c3", "c4", "c5"]})
    items = pd.DataFrame({"pin_id": ["t0", "t1", "t2", "t3", "t4", "c0", "c1", "c2", "c3", "c4", "c5"],
                          "category": ["shoe"] * 5 + ["shoe", "shoe", "bag", "bag", "shoe", None],
                          "price": [NAN] * 5 + [10, 20, 30, 40, 50, NAN]})
    g, _ = from_collections(mem, items=items, categorical=["category"], numeric=["price"])
    cold = g.index("pin", ["c0", "c1", "c2", "c3", "c4", "c5"])
    cold_edges = (cold, g.index("board", ["b0", "b1", "b2", "b3", "b3", "b4"]))
    split = DataSplit(graph=g, train_graph=g.remove_edges("in", *cold_edges), heldout=(
        torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)), cold_pins=cold,
        cold_edges=cold_edges)
    v = torch.tensor([1.0, 0.5, 0.0, 1.0, 0.25], dtype=torch.float64)
    empty = torch.zeros(0, dtype=torch.float64)
    result = BoardCompletion(
        warm={"recall@10": RankingResult("recall@10", empty, empty.bool())},
        cold={"recall@10": RankingResult("recall@10", v, torch.ones(5, dtype=torch.bool))},
        warm_boards=torch.zeros(0, dtype=torch.long),
        cold_boards=g.index("board", ["b0", "b1", "b2", "b3", "b4"]))
    return g, split, result


def test_board_completion_by_category_and_mixed_policies():
    _, split, result = _split_and_result()
    r = audit_board_completion(result, split, "category", n_boot=100)
    assert r.metric == "cold_recall@10" and r.attribute == "category" and r.unit == "board"
    t = r.table.set_index("group")
    # b0, b1: shoe (1.0, 0.5); b2: bag (0.0); b3 holds out a bag and a shoe: mixed; b4: missing
    assert t["n"].to_dict() == {"bag": 1, MIXED: 1, "shoe": 2}
    assert t["mean"].to_dict() == {"bag": 0.0, MIXED: 1.0, "shoe": 0.75}
    assert r.slice.n_unlabelled == 1 and r.flagged and r.slice.worst == "bag"
    drop = audit_board_completion(result, split, "category", mixed="drop", n_boot=100)
    assert drop.table["group"].tolist() == ["bag", "shoe"] and drop.slice.n_unlabelled == 2
    expand = audit_board_completion(result, split, "category", mixed="expand", n_boot=100).table
    assert expand.set_index("group")["mean"].to_dict() == pytest.approx({"bag": 0.5, "shoe": 2.5 / 3})
    assert expand["n"].tolist() == [2, 3]


def test_board_completion_by_price_band_and_user_column():
    _, split, result = _split_and_result()
    # quartiles would be too fine for 5 prices: two bands, cut at the median (30) of all priced pins
    r = audit_board_completion(result, split, "price", bins=2, n_boot=100)
    t = r.table
    assert t["group"].tolist() == ["Q1 [10, 30]", "Q2 (30, 50]"]
    assert t["n"].tolist() == [3, 1] and t["mean"].tolist() == [0.5, 1.0]  # b3's pins share Q2
    assert r.worst_best_ratio == 0.5
    # any user column: a Series by pin id (pins it lacks are missing)
    brand = pd.Series({"c0": "acme", "c1": "zeta", "c2": "acme", "c3": "acme", "c4": "acme"},
                      name="brand")
    rb = audit_board_completion(result, split, brand, threshold=0.7, n_boot=100)  # 0.5 / (2/3)
    assert rb.attribute == "brand"
    assert rb.table.set_index("group")["mean"].to_dict() == {"acme": pytest.approx(2 / 3), "zeta": 0.5}
    frame = audit_frame({"content": r, "neighbor": rb})
    assert frame.columns[0] == "model" and frame["model"].tolist() == ["content"] * 2 + ["neighbor"] * 2
    assert frame["flagged"].tolist() == [True, True, False, False]


def test_board_completion_per_held_out_pin():
    _, split, result = _split_and_result()
    cold = split.cold_edges
    # the ranks of c0..c5 in their boards' queries; a result of evaluate with held-out ranks
    pairs = SimpleNamespace(pins=cold[0], boards=cold[1], ranks=torch.tensor([1, 20, 3, 5, 40, 2]))
    with_pairs = SimpleNamespace(warm=result.warm, cold=result.cold, warm_boards=result.warm_boards,
                                 cold_boards=result.cold_boards, warm_pairs=None, cold_pairs=pairs)
    r = audit_board_completion(with_pairs, split, "category", n_boot=100)
    assert r.unit == "pin" and "(per pin)" in r.summary()
    t = r.table.set_index("group")
    # shoe: c0 (1), c1 (20), c4 (40); bag: c2 (3), c3 (5); c5 has no category
    assert t["n"].to_dict() == {"bag": 2, "shoe": 3}
    assert t["mean"].to_dict() == pytest.approx({"bag": 1.0, "shoe": 1 / 3})
    assert r.slice.n_unlabelled == 1 and r.flagged
    mrr = audit_board_completion(with_pairs, split, "category", metric="mrr", n_boot=100)
    assert mrr.table.set_index("group")["mean"].to_dict() == pytest.approx(
        {"bag": (1 / 3 + 1 / 5) / 2, "shoe": (1 + 1 / 20 + 1 / 40) / 3})
    ndcg = audit_board_completion(with_pairs, split, "category", metric="ndcg@10", n_boot=100)
    assert ndcg.table.set_index("group")["mean"]["bag"] == pytest.approx(
        (1 / math.log2(4) + 1 / math.log2(6)) / 2)
    # per="board" ignores the pairs
    assert audit_board_completion(with_pairs, split, "category", per="board", n_boot=50).unit == "board"
    with pytest.raises(MetricInputError, match="no per-pin form"):
        audit_board_completion(with_pairs, split, "category", metric="auc")
    with pytest.raises(MetricInputError, match="no cold_pairs"):
        audit_board_completion(result, split, "category", per="pin")


def test_attribute_labels_inputs_and_errors():
    g, split, result = _split_and_result()
    n = g.num_nodes("pin")
    labels = attribute_labels(g, np.arange(n), bins=0)
    assert labels.tolist() == list(range(n))
    assert attribute_labels(g, "price", bins=0)[:5].tolist() == [None] * 5
    assert attribute_labels(g, "category")[-1] is None
    with pytest.raises(MetricInputError, match="one value per pin"):
        attribute_labels(g, np.arange(n - 1))
    with pytest.raises(KeyError):
        attribute_labels(g, "brand")
    with pytest.raises(MetricInputError, match="no metric"):
        audit_board_completion(result, split, "category", metric="ndcg@10")
    with pytest.raises(MetricInputError, match="group must be"):
        audit_board_completion(result, split, "category", group="hot")


def test_majority_board_label_is_the_most_common_pin_value_smallest_on_ties():
    import pandas as pd

    from boardgraph.evaluation.audit import majority_board_label
    from boardgraph.graph import from_collections

    df = pd.DataFrame({"board_id": ["a", "a", "a", "b", "b", "c"], "pin_id": ["p1", "p2", "p3", "p2", "p4", "p5"]})
    items = pd.DataFrame({"pin_id": ["p1", "p2", "p3", "p4", "p5"], "taste": [7, 3, 7, 9, None]})
    g, _ = from_collections(df, items=items, labels=("taste",))
    got = dict(zip(g.ids("board"), majority_board_label(g, "taste")))
    assert got == {"a": 7, "b": 3, "c": None}      # b: 3 and 9 tie -> 3; c: its only pin is unlabelled
    with pytest.raises(KeyError):
        majority_board_label(g, "nope")
