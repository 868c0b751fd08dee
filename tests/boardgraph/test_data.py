import torch

from boardgraph.data import _rank_within, split_memberships
from boardgraph.datasets import synthetic_lookbooks


def test_rank_within():
    assert _rank_within(torch.tensor([3, 1, 3, 3, 1, 7])).tolist() == [0, 0, 1, 2, 1, 0]


def test_split_is_reproducible_and_leak_free():
    g = synthetic_lookbooks(400, 40, seed=0)
    s = split_memberships(g, holdout_fraction=0.2, cold_fraction=0.1, seed=3)
    s2 = split_memberships(g, holdout_fraction=0.2, cold_fraction=0.1, seed=3)
    assert torch.equal(s.heldout[0], s2.heldout[0]) and torch.equal(s.cold_pins, s2.cold_pins)
    tg = s.train_graph
    n_cold_edges = s.cold_edges[0].numel()
    assert tg.num_edges("in") == g.num_edges("in") - s.heldout[0].numel() - n_cold_edges
    assert s.cold_pins.numel() == round(0.1 * int((g.degree("in") > 0).sum()))
    warm_edges = g.num_edges("in") - n_cold_edges
    assert s.heldout[0].numel() == round(0.2 * warm_edges)
    # no held-out or cold pair is a training edge
    assert (tg.edge_ids("in", *s.heldout, missing="ignore") < 0).all()
    assert (tg.edge_ids("in", *s.cold_edges, missing="ignore") < 0).all()
    # cold pins have no training edge; held-out pins and boards keep at least one
    assert tg.degree("in")[s.cold_pins].max() == 0
    assert tg.degree("in")[s.heldout[0]].min() >= 1 and tg.degree("has")[s.heldout[1]].min() >= 1
    assert not torch.isin(s.heldout[0], s.cold_pins).any()
    # nodes and features are untouched
    assert tg.num_nodes("pin") == g.num_nodes("pin") and tg.features("pin") is g.features("pin")
