import importlib.util

import pytest
import torch

from boardgraph.graph import PinBoardGraph, from_collections


@pytest.fixture
def graph(tiny_memberships):
    g, _ = from_collections(tiny_memberships, weight="weight")
    return g


def test_networkx_roundtrip(graph):
    nxg = graph.to_networkx()
    assert nxg.number_of_nodes() == 7 and nxg.number_of_edges() == 5
    assert nxg.nodes[("pin", "p2")]["ntype"] == "pin"
    e = nxg.get_edge_data(("pin", "p2"), ("board", "b2"))[0]
    assert e == {"relation": "in", "reverse": "has", "weight": 3.0}
    back = PinBoardGraph.from_networkx(nxg)
    assert back.ids("pin").tolist() == graph.ids("pin").tolist()
    assert back.ids("board").tolist() == graph.ids("board").tolist()
    assert back.edge_types == graph.edge_types
    for k in ("out_indptr", "out_indices", "in_indptr", "in_indices", "in_eid"):
        assert torch.equal(back.relation("in").tensors()[k].long(), graph.relation("in").tensors()[k].long())
    assert torch.equal(back.edge_attr("in", "weight").float(), graph.edge_attr("in", "weight"))


def test_from_networkx_needs_relation():
    import networkx as nx

    g = nx.DiGraph()
    g.add_edge(("pin", 1), ("board", 2))
    with pytest.raises(ValueError, match="no 'relation' attribute"):
        PinBoardGraph.from_networkx(g)


@pytest.mark.skipif(importlib.util.find_spec("torch_geometric") is None, reason="torch_geometric not installed")
def test_to_pyg(graph):
    data = graph.to_pyg()
    assert data["pin"].num_nodes == 4 and data["board"].num_nodes == 3
    assert data["pin", "in", "board"].edge_index.tolist() == [[0, 1, 1, 2, 3], [0, 0, 1, 1, 2]]
    assert data["board", "has", "pin"].edge_index.tolist() == [[0, 0, 1, 1, 2], [0, 1, 1, 2, 3]]


@pytest.mark.skipif(importlib.util.find_spec("dgl") is None, reason="dgl not installed")
def test_to_dgl(graph):
    g = graph.to_dgl()
    assert g.num_nodes("pin") == 4 and g.num_edges(("pin", "in", "board")) == 5


def test_missing_optional_package_message(graph, monkeypatch):
    import boardgraph.graph.convert as conv

    monkeypatch.setattr(conv.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="optional package 'dgl'"):
        graph.to_dgl()
    with pytest.raises(ImportError, match="optional package 'torch_geometric'"):
        graph.to_pyg()
