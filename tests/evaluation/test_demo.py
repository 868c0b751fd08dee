import pytest

from boardgraph.datasets import synthetic_lookbooks
from boardgraph.evaluation.audit import matching_labels
from boardgraph.evaluation.completion import board_completion
from boardgraph.evaluation.demo import DemoResult, StyleOracle, headline
from boardgraph.evaluation.harness import run_experiment


@pytest.fixture(scope="module")
def small():
    g = synthetic_lookbooks(600, 60, seed=1)
    exp = run_experiment(g, ["random", "popularity", "ease"], [0], holdout=0.2, cold=0.1, label="style")
    return g, exp


def test_style_oracle_fills_the_top_with_the_boards_style_and_bounds_recall(small):
    g, exp = small
    split = exp.splits[0]
    oracle = board_completion(StyleOracle(g), split, ks=(10,), labels=matching_labels(g, "style"))
    assert oracle.warm["label_precision@10"].mean == 1.0
    # boards are curated by style: the oracle beats popularity, and no model is far above it
    pop = exp.run("popularity", 0).completion.warm["recall@10"].mean
    assert oracle.warm["recall@10"].mean > pop
    assert exp.run("ease", 0).completion.warm["recall@10"].mean < 1.5 * oracle.warm["recall@10"].mean


def test_headline_quotes_paired_differences_of_style_precision_and_recall(small):
    _, exp = small
    res = DemoResult(table=None, report=None, purity={}, seconds=0.0, experiment=exp, ceiling=0.2)
    lines = headline(res, model="ease", against=("popularity", "random", "not_run"))
    assert len(lines) == 2
    d = exp.paired("ease", "popularity", "label_precision@10", "warm")
    mine = exp.run("ease", 0).completion.warm["label_precision@10"].mean
    assert lines[0] == (f"ease warm style precision@10 {mine:.3f}; versus popularity {d.estimate:+.3f} "
                        f"[{d.low:+.3f}, {d.high:+.3f}], random "
                        + "{0.estimate:+.3f} [{0.low:+.3f}, {0.high:+.3f}]".format(
                            exp.paired("ease", "random", "label_precision@10", "warm")))
    assert lines[1].startswith("ease warm Recall@10 ") and lines[1].endswith(
        "(ceiling here: 0.200, an oracle that knows the hidden styles)")
    # EASE recovers styles from co-occurrence: far above popularity's chance-level style precision
    assert mine > 0.5 and d.low > 0.3
    assert headline(res, model="neighbor_cf") == []
