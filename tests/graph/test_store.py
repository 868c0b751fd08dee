import numpy as np
import pandas as pd
import pytest
import torch

from boardgraph.graph import (DuplicateIdError, PinBoardGraph, SchemaError, UnknownIdError, from_collections)


@pytest.fixture
def graph(tiny_memberships):
    g, _ = from_collections(tiny_memberships, weight="weight")
    return g


def test_schema_and_counts(graph):
    assert graph.node_types == ["pin", "board"]
    assert graph.edge_types == [("pin", "in", "board"), ("board", "has", "pin")]
    assert graph.num_nodes("pin") == 4 and graph.num_nodes("board") == 3
    assert graph.num_edges("in") == graph.num_edges(("board", "has", "pin")) == 5
    assert graph.reverse_of(("pin", "in", "board")) == ("board", "has", "pin")
    with pytest.raises(KeyError, match="no edge type"):
        graph.num_edges(("pin", "likes", "board"))
    with pytest.raises(KeyError, match="no node type"):
        graph.num_nodes("user")


def test_index_and_ids_roundtrip(graph):
    assert graph.ids("pin").tolist() == ["p1", "p2", "p3", "p4"]
    idx = graph.index("pin", ["p4", "p1", "p3"])
    assert idx.dtype == torch.int64 and idx.tolist() == [3, 0, 2]
    assert graph.ids("pin", idx).tolist() == ["p4", "p1", "p3"]
    assert graph.index("board", "b2").tolist() == [1]
    assert graph.index("pin", ["p1", "nope"], missing="ignore").tolist() == [0, -1]
    with pytest.raises(UnknownIdError, match=r"1 unknown pin id\(s\), e.g. \['nope'\]"):
        graph.index("pin", ["p1", "nope"])
    with pytest.raises(IndexError, match="out of range"):
        graph.ids("pin", [4])


def test_csr_both_directions_and_attrs(graph):
    indptr, indices, eid = graph.csr(("pin", "in", "board"))
    assert eid is None
    assert indptr.tolist() == [0, 1, 3, 4, 5]          # p1:{b1}, p2:{b1,b2}, p3:{b2}, p4:{b3}
    assert indices.tolist() == [0, 0, 1, 1, 2]
    indptr, indices, eid = graph.csr(("board", "has", "pin"))
    assert indptr.tolist() == [0, 2, 4, 5]             # b1:{p1,p2}, b2:{p2,p3}, b3:{p4}
    assert indices.tolist() == [0, 1, 1, 2, 3]
    assert eid.tolist() == [0, 1, 2, 3, 4]
    assert graph.edge_attr("in", "weight").tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]  # duplicate row 5 dropped
    assert graph.degree(("board", "has", "pin")).tolist() == [2, 2, 1]
    s, d = graph.edges(("board", "has", "pin"))
    assert s.tolist() == [0, 0, 1, 1, 2] and d.tolist() == [0, 1, 1, 2, 3]
    assert graph.edge_ids("has", torch.tensor([1]), torch.tensor([2])).tolist() == [3]
    with pytest.raises(UnknownIdError, match="not edges"):
        graph.edge_ids("in", torch.tensor([0]), torch.tensor([2]))


def test_remove_edges_returns_new_graph(graph):
    p = graph.index("pin", ["p2", "p4"])
    b = graph.index("board", ["b1", "b3"])
    h = graph.remove_edges(("pin", "in", "board"), p, b)
    assert graph.num_edges("in") == 5  # original untouched
    assert h.num_edges("in") == 3
    s, d = h.edges("in")
    assert list(zip(graph.ids("pin", s), graph.ids("board", d))) == [("p1", "b1"), ("p2", "b2"), ("p3", "b2")]
    assert h.edge_attr("in", "weight").tolist() == [1.0, 3.0, 4.0]
    assert h.csr("has")[0].tolist() == [0, 1, 3, 3]
    assert h.csr("has")[2].tolist() == [0, 1, 2]
    h2 = graph.remove_edges(("board", "has", "pin"), b[:1], p[:1])  # via the reverse type
    assert h2.num_edges("in") == 4 and h2.edge_ids("in", p[:1], b[:1], missing="ignore").tolist() == [-1]
    assert h.features("pin") is graph.features("pin")


def test_subgraph_relabels_and_keeps_features(tiny_memberships):
    items = pd.DataFrame({"pin_id": ["p1", "p2", "p3", "p4"], "title": ["a", "b", "c", "d"]})
    g, _ = from_collections(tiny_memberships, items=items, text=["title"], weight="weight")
    g.features("pin").add_tensor("emb", torch.arange(8.0).view(4, 2))
    sub = g.subgraph({"pin": torch.tensor([2, 1])})
    assert sub.ids("pin").tolist() == ["p3", "p2"] and sub.num_nodes("board") == 3
    s, d = sub.edges("in")
    assert list(zip(sub.ids("pin", s), sub.ids("board", d))) == [("p3", "b2"), ("p2", "b1"), ("p2", "b2")]
    assert sub.edge_attr("in", "weight").tolist() == [4.0, 2.0, 3.0]
    assert sub.features("pin").text("title") == ["c", "b"]
    assert sub.features("pin")["emb"].tolist() == [[4.0, 5.0], [2.0, 3.0]]


def test_add_pins_cold_start(tiny_memberships):
    items = pd.DataFrame({"pin_id": ["p1", "p2", "p3", "p4"], "title": ["a", "b", "c", "d"],
                          "price": ["$1", "2", "3.5", None], "brand": ["x", "y", "x", "z"]})
    g, _ = from_collections(tiny_memberships, items=items, text=["title"], numeric=["price"],
                            categorical=["brand"], weight="weight")
    g.features("pin").add_tensor("emb", torch.zeros(4, 2))
    before = g.csr("in")[0].clone()
    new = g.add_pins(["p5", "p6"], features=pd.DataFrame({"title": ["e", "f"], "price": ["$9.50", None],
                                                           "brand": ["q", "x"]}),
                     tensors={"emb": torch.ones(2, 2)},
                     boards=pd.DataFrame({"pin_id": ["p5", "p5"], "board_id": ["b1", "b3"]}))
    assert new.tolist() == [4, 5]
    assert g.num_nodes("pin") == 6 and g.index("pin", ["p6"]).tolist() == [5]
    assert g.csr("in")[0][:5].tolist() == before.tolist()  # old pins keep their rows
    assert g.csr("in")[0].tolist() == [0, 1, 3, 4, 5, 7, 7]
    assert g.csr("in")[1].tolist()[5:] == [0, 2]
    assert g.csr("has")[0].tolist() == [0, 3, 5, 7]
    assert g.edge_attr("in", "weight").tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 0.0]
    f = g.features("pin")
    assert f.text("title") == ["a", "b", "c", "d", "e", "f"]
    assert np.allclose(f.numeric(["price"]).squeeze(1).numpy(), [1, 2, 3.5, np.nan, 9.5, np.nan], equal_nan=True)
    assert f.categories("brand") == ["q", "x", "y", "z"]
    assert f.categorical("brand").tolist() == [1, 2, 1, 3, 0, 1]
    assert f["emb"][4:].tolist() == [[1.0, 1.0], [1.0, 1.0]]
    with pytest.raises(DuplicateIdError, match="already exist"):
        g.add_pins(["p1"], tensors={"emb": torch.ones(1, 2)})
    with pytest.raises(SchemaError, match="lack tensor features"):
        g.add_pins(["p9"])
    with pytest.raises(UnknownIdError, match="unknown board"):
        g.add_pins(["p9"], tensors={"emb": torch.ones(1, 2)},
                   boards=pd.DataFrame({"pin_id": ["p9"], "board_id": ["nope"]}))
    assert g.num_nodes("pin") == 6  # a failed add changes nothing


def test_to_device_and_pin_memory(graph, device):
    graph.features("pin").add_tensor("emb", torch.randn(4, 3))
    g = graph.to(device)
    assert g.device.type == device
    assert g.csr("has")[0].device.type == device and g.features("pin")["emb"].device.type == device
    assert torch.equal(g.csr("has")[2].cpu(), graph.csr("has")[2])
    assert graph.device.type == "cpu"
    h = g.remove_edges("in", torch.tensor([0]), torch.tensor([0]))
    assert h.num_edges("in") == 4 and h.csr("in")[1].device.type == device
    assert graph.pin_memory().num_edges("in") == 5


def test_hand_built_multi_relation_graph():
    g = PinBoardGraph()
    g.add_node_type("pin", [10, 11, 12])
    g.add_node_type("board", ["a", "b"])
    g.add_node_type("user", ["u1"])
    g.add_relation(("pin", "in", "board"), torch.tensor([0, 1, 2]), torch.tensor([0, 0, 1]), reverse="has")
    g.add_relation(("user", "owns", "board"), torch.tensor([0, 0]), torch.tensor([0, 1]), reverse="owned_by")
    g.add_relation(("user", "saved", "pin"), torch.tensor([0]), torch.tensor([2]))
    assert ("pin", "rev_saved", "user") in g.edge_types
    assert g.index("pin", np.array([12, 10])).tolist() == [2, 0]
    assert g.csr(("board", "owned_by", "user"))[0].tolist() == [0, 1, 2]
    with pytest.raises(KeyError, match="matches"):
        g.csr("nothing")
    with pytest.raises(SchemaError, match="unknown node type"):
        g.add_relation(("pin", "x", "shop"), torch.tensor([0]), torch.tensor([0]))
    with pytest.raises(DuplicateIdError, match="not unique"):
        g.add_node_type("shop", ["s", "s"])
    s = g.describe()
    assert s.num_components == 1 and s.largest_component == 6


def test_add_pins_honours_ntype(tiny_memberships):
    """ntype='board' appends boards (their CSR rows grow, the pins' stay); boards= is for pins only."""
    g, _ = from_collections(tiny_memberships)
    n_pins, n_boards, n_edges = g.num_nodes("pin"), g.num_nodes("board"), g.num_edges(("pin", "in", "board"))
    new = g.add_pins(["b9"], ntype="board")
    assert new.tolist() == [n_boards] and g.num_nodes("board") == n_boards + 1 and g.num_nodes("pin") == n_pins
    assert g.index("board", ["b9"]).tolist() == [n_boards]
    assert g.csr(("board", "has", "pin"))[0].numel() == n_boards + 2 and g.num_edges(("pin", "in", "board")) == n_edges
    with pytest.raises(SchemaError, match="ntype is 'board'"):
        g.add_pins(["b10"], ntype="board", boards=pd.DataFrame({"pin_id": ["p1"], "board_id": ["b1"]}))
    assert g.num_nodes("board") == n_boards + 1
