import torch

from boardgraph.evaluation.splits import _rank_within, split_memberships
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


def test_split_reserved_boards_never_trains_on_reserved_and_keeps_a_pin_per_board():
    import pandas as pd

    from boardgraph.evaluation.splits import split_reserved_boards
    from boardgraph.graph import from_collections

    # boards b0..b3 with 3 pins each (pins never recur), b3 reserved
    rows = [(f"b{b}", f"p{b}{i}") for b in range(4) for i in range(3)]
    g, _ = from_collections(pd.DataFrame(rows, columns=["board_id", "pin_id"]))
    b3 = int(g.index("board", ["b3"])[0])
    split = split_reserved_boards(g, torch.tensor([b3]), cold_fraction=0.5, seed=1)
    tp, tb = split.train_graph.edges(("pin", "in", "board"))
    assert not bool((tb == b3).any())
    assert split.train_graph.num_nodes("pin") == 12                       # every node kept
    assert split.heldout[0].numel() == 0
    cp, cb = split.cold_edges
    assert torch.equal(torch.sort(cp).values, split.cold_pins) and not bool((cb == b3).any())
    assert not bool(torch.isin(tp, split.cold_pins).any())                # cold pins have no training edge
    per_board = torch.bincount(tb, minlength=4)
    assert all(int(per_board[b]) >= 1 for b in range(4) if b != b3)       # a board keeps a training pin
    assert tp.numel() + cp.numel() == 9                                   # every open membership accounted for
    assert split.cold_pins.numel() == 4                                   # round(0.5 * 9) = 4 candidates, none refused here
    again = split_reserved_boards(g, torch.tensor([b3]), cold_fraction=0.5, seed=1)
    assert torch.equal(again.cold_pins, split.cold_pins)
