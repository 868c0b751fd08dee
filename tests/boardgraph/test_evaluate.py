import pandas as pd
import torch

from boardgraph.data import DataSplit
from boardgraph.evaluate import board_completion
from boardgraph.graph import from_collections


def test_board_completion_hand_example():
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
    r = board_completion(emb, split, ks=(1, 2))
    assert r.warm_boards.tolist() == B("b0", "b1").tolist() and r.cold_boards.tolist() == B("b0").tolist()
    # warm, b0: candidates p2 (pos, 0.6), p3 (0.0), p4 (0.0); p0, p1 (training) and p5 (cold) excluded -> rank 1
    # warm, b1: p4 is positive (1.0); p2 scores 0.8, p0/p1 0.0; p3 excluded -> rank 1
    assert r.warm["recall@1"].per_query.tolist() == [1.0, 1.0]
    # cold, b0: p5 (0.8) vs p3, p4 (0.0); warm held-out p2 excluded -> rank 1
    assert r.cold["recall@1"].per_query.tolist() == [1.0]
    # move p5 away from b0: it now ranks behind p3 (0.0); p2 and p4 (warm held-out) stay excluded
    emb[P("p5")] = torch.tensor([-1.0, 0.0])
    r2 = board_completion(emb, split, ks=(1, 2))
    assert r2.cold["recall@1"].per_query.tolist() == [0.0] and r2.cold["recall@2"].per_query.tolist() == [1.0]
    assert r2.cold["mrr"].per_query.tolist() == [0.5]
    s = r2.summary()
    assert s["warm_recall@1"] == 1.0 and s["cold_recall@1"] == 0.0
