import numpy as np
import pandas as pd

from boardgraph.graph import PinBoardGraph, from_collections


def test_describe_counts_degrees_components():
    df = pd.DataFrame({"board_id": ["b1", "b1", "b1", "b2", "b3", "b3"],
                       "pin_id": ["p1", "p2", "p3", "p3", "p4", "p5"]})
    items = pd.DataFrame({"pin_id": ["p1", "p2", "p3", "p4", "p5", "p6"]})
    g, _ = from_collections(df, items=items)
    s = g.describe()
    assert s.num_nodes == {"pin": 6, "board": 3}
    assert s.num_edges == {("pin", "in", "board"): 6}
    assert s.isolated == {"pin": 1, "board": 0}
    # components: {p1,p2,p3,b1,b2}, {p4,p5,b3}, {p6}
    assert s.num_components == 3 and s.largest_component == 5
    assert abs(s.largest_component_fraction - 5 / 9) < 1e-12
    pin_deg, board_size = s.degrees
    assert pin_deg.etype == ("pin", "in", "board")
    assert (pin_deg.min, pin_deg.max, pin_deg.zero) == (0, 2, 1) and abs(pin_deg.mean - 1.0) < 1e-12
    assert board_size.etype == ("board", "has", "pin")
    assert (board_size.min, board_size.median, board_size.max) == (1, 2.0, 3)
    text = str(s)
    assert "connected components: 3; largest has 5 nodes (55.6%)" in text
    assert "pin                   6  (1 without edges)" in text


def test_describe_empty_graph():
    g = PinBoardGraph()
    g.add_node_type("pin", [])
    s = g.describe()
    assert s.num_components == 0 and s.largest_component == 0 and "0 nodes" in str(s)


def _components_at_once(g):
    """Connected components the direct way: one sparse matrix of every edge (what describe did before)."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components
    n_pin, n_board = g.num_nodes("pin"), g.num_nodes("board")
    s, d = (x.numpy() for x in g.edges(("pin", "in", "board")))
    adj = sp.coo_matrix((np.ones(s.size), (s, d + n_pin)), shape=(n_pin + n_board,) * 2)
    n, labels = connected_components(adj, directed=False)
    return n, int(np.bincount(labels).max())


def test_components_in_chunks_match_all_at_once(tmp_path):
    from boardgraph.graph.describe import describe, describe_saved
    rng = np.random.default_rng(0)
    # many small components, a few big ones, isolated pins from an item table
    b = rng.integers(0, 300, 4000)
    p = np.where(b < 30, rng.integers(0, 200, 4000), b * 7 + rng.integers(0, 3, 4000))
    g, _ = from_collections(pd.DataFrame({"board_id": b, "pin_id": p}))
    want = _components_at_once(g)
    assert want[0] > 50
    for chunk in (1, 7, 333, 1 << 24):
        s = describe(g, chunk_edges=chunk)
        assert (s.num_components, s.largest_component) == want, chunk
    g.save(tmp_path / "g")
    loaded = PinBoardGraph.load(tmp_path / "g")
    s = describe_saved(loaded, tmp_path / "g", chunk_edges=100)
    assert (s.num_components, s.largest_component) == want
    assert str(s) == str(g.describe())
