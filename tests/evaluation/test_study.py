import pandas as pd
import pytest

from boardgraph.datasets import synthetic_lookbooks
from boardgraph.evaluation.demo import demo_config
from boardgraph.evaluation.study import evaluate_graph


pytestmark = pytest.mark.usefixtures("one_thread")


def test_evaluate_graph_writes_the_report_with_table_curves_audit_and_extra_scores(tmp_path):
    graph = synthetic_lookbooks(300, 30, seed=0)

    def make(kind, seed):
        cfg = demo_config(kind, tmp_path / "runs" / f"seed{seed}", n_pins=300, n_boards=30, steps=5, seed=seed)
        cfg.run.batch_size, cfg.run.progress, cfg.run.tensorboard = 64, "off", False
        return cfg

    calls = []

    def extra(model, emb, exp, seed):
        calls.append((model, seed))
        return {"first dim mean": float(emb[:, 0].mean())}

    res = evaluate_graph(graph, tmp_path / "report", models=["random", "popularity", "content", "neighbor"],
                         seeds=[0, 1], make_config=make, title="tiny", holdout=0.2, cold=0.1,
                         audit_by=["category"], extra_score=extra,
                         extra_section=lambda e: f"EXTRA {sorted(e)}")
    t = res.table
    assert list(t.index) == ["random", "popularity", "content", "neighbor"]
    assert {"warm recall@10", "cold among new items recall@10", "cold among all pins recall@10",
            "cold among all pins / warm recall@10", "warm - content"} <= set(t.columns)
    assert t.loc["content", "warm - content"] == "-" and t.loc["neighbor", "warm - content"].startswith(("+", "-"))
    # popularity ranks cold pins (degree 0) last among all pins: its cold-among-all recall is exactly 0;
    # among the new items alone they all tie (ties count against the positive)
    assert t.loc["popularity", "cold among all pins recall@10"].startswith("0.000 [0.000, 0.000]")
    assert res.checks and all(c.startswith("ok: random") for c in res.checks[:3])
    # extra scores: only models with embeddings, each seed, averaged into the table
    assert sorted(set(calls)) == [("content", 0), ("content", 1), ("neighbor", 0), ("neighbor", 1)]
    emb_mean = sum(float(res.experiment.run("content", s).embeddings[:, 0].mean()) for s in (0, 1)) / 2
    assert t.loc["content", "first dim mean"] == pytest.approx(emb_mean)
    assert pd.isna(t.loc["random", "first dim mean"])
    md = res.report.read_text()
    for needle in ("# tiny", "| neighbor |", "Bias audit by category", "EXTRA ['content', 'neighbor']",
                   "recall_at_k.png", "similarity_hist.png", "degree_distribution.png", "2 seed(s) [0, 1]",
                   "## Sanity checks", "K / |candidates|"):
        assert needle in md, needle
    for png in ("recall_at_k.png", "similarity_hist.png", "degree_distribution.png"):
        assert (tmp_path / "report" / png).stat().st_size > 1000
