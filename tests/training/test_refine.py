"""The ID refinement phase (``boardgraph.training.refine``) and the ``neighbor_cf`` kind that runs it."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from boardgraph.evaluation import board_completion, split_memberships
from boardgraph.graph import MEMBER, PinBoardGraph, from_collections
from boardgraph.training.config import ConfigError, TrainConfig
from boardgraph.training.refine import refine_ids

pytestmark = pytest.mark.usefixtures("one_thread")


def _two_taste_graph(n_pins: int = 120, n_boards: int = 60, size: int = 20, seed: int = 0) -> PinBoardGraph:
    """Boards drawn from one of two hidden taste groups of pins (even / odd ids); nothing in any
    feature tells the groups apart, only the memberships do."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for b in range(n_boards):
        group = torch.arange(b % 2, n_pins, 2)
        for p in group[torch.randperm(group.numel(), generator=g)[:size]].tolist():
            rows.append((f"b{b}", f"p{p}"))
    return from_collections(pd.DataFrame(rows, columns=["board_id", "pin_id"]))[0]


def _setup(seed: int = 0):
    graph = _two_taste_graph()
    split = split_memberships(graph, 0.2, 0.1, seed=seed)
    n = graph.num_nodes("pin")
    ids = torch.nn.Embedding(n, 16)
    torch.nn.init.zeros_(ids.weight)
    warm = split.train_graph.degree(MEMBER) > 0
    content = torch.randn(n, 16, generator=torch.Generator().manual_seed(1))   # no taste signal
    return split, ids, warm, content


def _served(ids, warm, content) -> torch.Tensor:
    return F.normalize(content + ids.weight.detach() * warm[:, None], dim=1)


def test_refinement_learns_the_tastes_the_boards_show_and_leaves_cold_pins_alone():
    split, ids, warm, content = _setup()
    before = board_completion(_served(ids, warm, content), split, ks=(10,)).warm["recall@10"].mean
    st = refine_ids(ids, warm, content, split.train_graph, epochs=30, boards_per_batch=16, seed=0)
    after = board_completion(_served(ids, warm, content), split, ks=(10,)).warm["recall@10"].mean
    assert st.epochs == 30 and st.validation == {} and st.warm_pins == int(warm.sum()) and st.boards == 60
    assert st.last_loss < st.first_loss - 0.3, st
    # the best any model can do knows each pin's group and nothing within it (random ties broken)
    group = torch.tensor([int(p[1:]) % 2 for p in split.graph.ids("pin")])
    oracle_emb = torch.cat([F.one_hot(group, 2).float(), 1e-3 * content], 1)
    oracle = board_completion(oracle_emb, split, ks=(10,)).warm["recall@10"].mean
    chance = 10 / float(warm.sum() - 16)     # K / the warm candidates of a board (16 training pins left out)
    assert abs(before - chance) < 0.03 and oracle > 2 * chance, (before, chance, oracle)
    assert after > 0.9 * oracle, (before, after, oracle)     # measured: 0.126 -> 0.218, oracle 0.22
    assert float(ids.weight.detach()[~warm].abs().sum()) == 0.0          # cold rows untouched
    assert bool(ids.weight.detach()[warm].abs().sum(1).gt(0).all())      # every warm row moved


@pytest.mark.parametrize("query,negatives", [("centroid", 32), ("attention", 0), ("attention", 32)])
def test_the_attention_query_and_the_sampled_softmax_learn_the_tastes_too(query, negatives):
    """The two other paths of the refinement: attention board queries (trained and scored with
    the same query) and a sampled softmax over 32 of the 108 warm pins (sparse updates)."""
    from boardgraph.evaluation.completion import EmbeddingScorer

    split, ids, warm, content = _setup()
    score = lambda: board_completion(EmbeddingScorer(_served(ids, warm, content), query), split,  # noqa: E731
                                     ks=(10,)).warm["recall@10"].mean
    before = score()
    st = refine_ids(ids, warm, content, split.train_graph, epochs=30, boards_per_batch=16, seed=0, query=query,
                    negatives=negatives)
    group = torch.tensor([int(p[1:]) % 2 for p in split.graph.ids("pin")])
    oracle = board_completion(torch.cat([F.one_hot(group, 2).float(), 1e-3 * content], 1), split,
                              ks=(10,)).warm["recall@10"].mean
    chance = 10 / float(warm.sum() - 16)
    assert st.last_loss < st.first_loss - 0.3 and abs(before - chance) < 0.03, (st, before, chance)
    assert score() > 0.85 * oracle, (before, score(), oracle)
    assert float(ids.weight.detach()[~warm].abs().sum()) == 0.0


def test_the_length_is_chosen_on_held_out_memberships():
    """Validation Recall@10 rises as the groups are learnt and a length > 0 is run again on every
    membership; a refinement that never clearly beats 0 epochs leaves the IDs alone."""
    import boardgraph.training.refine as refine
    from boardgraph.training.refine_validation import phase_one_graph

    split, ids, warm, content = _setup()
    held = phase_one_graph(split.train_graph, 0.1, 0)[1]
    st = refine_ids(ids, warm, content, split.train_graph, epochs=20, boards_per_batch=16, held_out=held,
                    eval_every=5, seed=0)
    assert list(st.validation) == [0, 5, 10, 15, 20]
    assert st.epochs > 0 and st.validation[st.epochs] > st.validation[0] + 0.05, st.validation
    # refit=False (the validation copy's call): the same choice, and the IDs are left as they were
    _, ids_b, _, _ = _setup()
    before = ids_b.weight.detach().clone()
    only = refine_ids(ids_b, warm, content, split.train_graph, epochs=20, boards_per_batch=16, held_out=held,
                      eval_every=5, seed=0, refit=False)
    assert only.epochs == st.epochs and only.validation == st.validation
    assert torch.equal(ids_b.weight.detach(), before)
    split, ids, warm, content = _setup()
    before = ids.weight.detach().clone()
    scores = iter([torch.tensor([0.3, 0.3]), torch.tensor([0.2, 0.2]), torch.tensor([0.3, 0.3]),
                   torch.tensor([0.1, 0.1])])
    orig = refine._recall
    try:
        refine._recall = lambda *a, **k: next(scores)
        st = refine_ids(ids, warm, content, split.train_graph, epochs=15, held_out=held, eval_every=5, seed=0)
    finally:
        refine._recall = orig
    assert st.validation == pytest.approx({0: 0.3, 5: 0.2, 10: 0.3, 15: 0.1}) and st.epochs == 0
    assert torch.equal(ids.weight.detach(), before) and st.first_loss != st.first_loss   # NaN: no epoch run


def test_the_one_standard_error_rule_prefers_the_shorter_length():
    from boardgraph.training.refine import one_se_choice

    noisy = torch.tensor([0.0, 1.0, 0.0, 1.0])
    # 10 epochs gain 0.25 on one board of four: within one standard error of the paired differences
    assert one_se_choice({0: noisy, 10: noisy + torch.tensor([0.0, 0.0, 1.0, 0.0])}) == 0
    # a clear gain on every board over 0 epochs; 20 epochs add 0.01, well within the error: 10
    ten = noisy * 0.5 + 0.3
    assert one_se_choice({0: noisy * 0.5, 10: ten, 20: ten + torch.tensor([0.0, 0.06, -0.02, 0.0])}) == 10
    assert one_se_choice({0: torch.tensor([0.2, 0.4]), 5: torch.tensor([0.5, 0.7])}) == 5


def test_refinement_is_deterministic_for_a_seed():
    split, ids_a, warm, content = _setup()
    ids_b = torch.nn.Embedding(*ids_a.weight.shape)
    ids_b.weight.data.copy_(ids_a.weight.data)
    for ids in (ids_a, ids_b):
        refine_ids(ids, warm, content, split.train_graph, epochs=2, seed=3)
    assert torch.equal(ids_a.weight, ids_b.weight)


def test_refinement_rejects_mismatched_inputs():
    split, ids, warm, content = _setup()
    with pytest.raises(ValueError, match=r"expected warm \[120\] and content \[120, 16\]"):
        refine_ids(ids, warm[:-1], content, split.train_graph, epochs=1)
    with pytest.raises(ValueError, match="must lie in"):
        refine_ids(ids, warm, content, split.train_graph, epochs=1, id_dropout=1.0)
    with pytest.raises(ValueError, match="not marked warm"):
        refine_ids(ids, torch.zeros_like(warm), content, split.train_graph, epochs=1)


def test_refine_settings_are_checked_by_the_config():
    assert TrainConfig.from_dict({"objective": {"kind": "neighbor_cf"}}).uses_ids()
    with pytest.raises(ConfigError, match="optim.refine_epochs must be >= 0"):
        TrainConfig.from_dict({"optim": {"refine_epochs": -1}})
    with pytest.raises(ConfigError, match=r"refine_val_fraction in \[0, 1\)"):
        TrainConfig.from_dict({"optim": {"refine_id_dropout": 1.0}})
    with pytest.raises(ConfigError, match=r"got 0.3, 0.1, 1.5"):
        TrainConfig.from_dict({"optim": {"refine_val_fraction": 1.5}})
    with pytest.raises(ConfigError, match="optim.refine_negatives must be >= 0"):
        TrainConfig.from_dict({"optim": {"refine_negatives": -1}})
    with pytest.raises(ConfigError, match="objective.board_query 'max' must be centroid, attention, auto or null"):
        TrainConfig.from_dict({"objective": {"board_query": "max"}})
    with pytest.raises(ConfigError, match=r"board_query_tau > 0 \(got 0.0\)"):
        TrainConfig.from_dict({"objective": {"board_query_tau": 0.0}})
    cfg = TrainConfig.from_dict({"objective": {"kind": "neighbor_cf"}})
    assert cfg.objective.query_setting() == "auto" and cfg.objective.query() == "attention"   # before validation
    assert TrainConfig().objective.query() == "centroid"
    cfg.objective.board_query = "centroid"
    assert cfg.objective.query() == "centroid"


def test_neighbor_cf_beats_popularity_on_a_small_dense_graph_and_refines_once(tmp_path, caplog):
    """The regression test of the recipe: on the dense synthetic preset (2,000 pins, 600
    user-history boards, a popularity tail, hidden tastes no modality shows), where popularity beats
    every content model, ``neighbor_cf`` beats popularity warm after a short run; resuming a refined
    run does not refine it again."""
    from boardgraph.datasets import synthetic_lookbooks
    from boardgraph.evaluation.completion import EmbeddingScorer
    from boardgraph.evaluation.demo import demo_config
    from boardgraph.inference import load_run
    from boardgraph.inference.embed import load_embeddings
    from boardgraph.models import MODEL_KINDS
    from boardgraph.training import Trainer
    from boardgraph.training.checkpoint import load_checkpoint

    g = synthetic_lookbooks(2000, 600, seed=0, preset="dense")
    split = split_memberships(g, 0.2, 0.1, seed=0)
    popularity = board_completion(MODEL_KINDS.get("popularity").make_scorer(0), split).warm["recall@10"].mean
    cfg = demo_config("neighbor_cf", tmp_path, n_pins=2000, n_boards=600, steps=50, seed=0)
    cfg.run.batch_size, cfg.run.progress, cfg.run.tensorboard = 256, "off", False
    t = Trainer(cfg, split=split)
    with caplog.at_level("INFO", logger="boardgraph.training"):
        t.fit()
    # the length was chosen by a copy of the run trained without the validation memberships
    chosen = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refinement length with")]
    # one per board query (neighbor_cf's default, auto, tries both)
    assert len(chosen) == 2 and "validation Recall@10 by epochs: 0: " in chosen[0], chosen
    assert not (tmp_path / "neighbor_cf" / "refine_validation").exists()
    emb = load_embeddings(t.embed_pins(tmp_path / "emb.npy"))
    query = cfg.objective.query()                                # the board query chosen on validation
    assert cfg.objective.board_query == query and query in ("centroid", "attention")
    warm = board_completion(EmbeddingScorer(emb, query), split).warm["recall@10"].mean
    assert t.refined and load_checkpoint(t.checkpoint_path, cfg.model_fingerprint())["refined"] is True
    assert warm > popularity + 0.03, (warm, popularity)         # measured: 0.174 against 0.110
    run = load_run(tmp_path / "neighbor_cf", graph=g)             # what the apps and the index serve
    torch.testing.assert_close(run.embed_pins(), emb, atol=1e-5, rtol=0)
    ids = t.model.encoder.ids.weight.detach().clone()
    again = Trainer(cfg, split=split)
    again.fit(resume=True)
    assert again.refined and torch.equal(again.model.encoder.ids.weight.detach(), ids)


def test_the_validation_memberships_are_a_seeded_share_of_the_training_ones():
    from boardgraph.training.refine_validation import phase_one_graph

    split, *_ = _setup()
    g = split.train_graph
    fit, (pins, boards) = phase_one_graph(g, 0.1, 0)
    assert fit.num_edges(MEMBER) + pins.numel() == g.num_edges(MEMBER)
    assert 0.05 < pins.numel() / g.num_edges(MEMBER) < 0.15
    assert bool(g.edge_ids(MEMBER, pins, boards, missing="ignore").ge(0).all())
    assert not bool(fit.edge_ids(MEMBER, pins, boards, missing="ignore").ge(0).any())
    again = phase_one_graph(g, 0.1, 0)[1]
    assert torch.equal(again[0], pins) and torch.equal(again[1], boards)      # seeded


@pytest.mark.parametrize("negatives", [0, 32])
def test_hashed_ids_refine_through_their_buckets(negatives):
    """A hashed table (60 rows, 2 hashes, for 120 pins) learns the tastes through the sums of its
    buckets, in the full and the sampled softmax; one row per pin learns more (it is exact)."""
    from boardgraph.encoders import IdTable
    split, full, warm, content = _setup()
    n = full.weight.shape[0]
    served = {}
    for name, table in (("full", IdTable(n, 16)), ("hashed", IdTable(n, 16, buckets=60, hashes=2))):
        st = refine_ids(table, warm, content, split.train_graph, epochs=30, boards_per_batch=16, seed=0,
                        negatives=negatives)
        assert st.last_loss < st.first_loss - 0.3, (name, st)
        emb = F.normalize(content + table(torch.arange(n)).detach() * warm[:, None], dim=1)
        served[name] = board_completion(emb, split, ks=(10,)).warm["recall@10"].mean
    chance = 10 / float(warm.sum() - 16)
    # measured (full softmax): chance 0.126, hashed 0.179, full 0.218
    assert served["full"] > served["hashed"] > chance + 0.03, (served, chance)


def test_auto_board_query_is_chosen_on_the_validation_copy_and_stored(tmp_path, monkeypatch):
    """``objective.board_query: auto`` (``neighbor_cf``'s default): the validation copy refines with each query, the run takes
    the one whose chosen length validates best, refines and serves with it, and its config stores it."""
    from boardgraph.datasets import synthetic_lookbooks
    from boardgraph.evaluation.demo import demo_config
    from boardgraph.inference import load_run
    from boardgraph.training import Trainer, refine_validation

    tried = []

    def spy(*args, **kwargs):
        st = refine_ids(*args, **kwargs)
        tried.append(st)
        return st

    monkeypatch.setattr(refine_validation, "refine_ids", spy)
    g = synthetic_lookbooks(400, 120, seed=0, preset="dense")
    cfg = demo_config("neighbor_cf", tmp_path, n_pins=400, n_boards=120, steps=6, seed=0)
    cfg.run.batch_size, cfg.run.progress, cfg.run.tensorboard = 64, "off", False
    cfg.optim.refine_epochs = 10                        # board_query: neighbor_cf's default, auto
    t = Trainer(cfg, split=split_memberships(g, 0.2, 0.1, seed=0))
    t.fit()
    assert [st.query for st in tried] == ["centroid", "attention"]
    best = max(tried, key=lambda st: st.validation[st.epochs])
    assert cfg.objective.board_query == best.query == cfg.objective.query()
    assert TrainConfig.load(tmp_path / "neighbor_cf" / "config.yaml").objective.board_query == best.query
    assert load_run(tmp_path / "neighbor_cf", graph=g).config.objective.query() == best.query
    # without validation, "auto" serves the kind's default
    assert TrainConfig.from_dict({"objective": {"kind": "neighbor_cf", "board_query": "auto"}}).objective.query() \
        == "attention"
