import json

import numpy as np
import pandas as pd
import pytest
import torch

from boardgraph.graph import GraphFormatError, PinBoardGraph, from_collections


def _rich_graph():
    df = pd.DataFrame({"board_id": ["b1", "b1", "b2", "b2", "b3"], "pin_id": ["p1", "p2", "p2", "p3", "p4"],
                       "w": [0.5, 1.0, 1.5, 2.0, 2.5], "ts": [10, 20, 30, 40, 50]})
    items = pd.DataFrame({"pin_id": ["p1", "p2", "p3", "p4", "p5"], "title": ["a", None, "c", "d", "e"],
                          "brand": ["x", "y", None, "x", "z"], "price": [1.0, None, 3.0, 4.0, 5.0],
                          "style": [0, 1, 1, 0, 2], "img": [b"\x89PNG", None, b"", "some/path.jpg", None]})
    boards = pd.DataFrame({"board_id": ["b1", "b2", "b3"], "name": ["one", "two", "three"]})
    g, _ = from_collections(df, items=items, boards=boards, text=["title"], categorical=["brand"], numeric=["price"],
                            labels=["style"], board_text=["name"], weight="w", timestamp="ts", on_error="skip")
    g.features("pin").add_tensor("image", torch.randint(0, 255, (5, 3, 4, 4), dtype=torch.uint8), kind="image")
    g.features("pin").add_tensor("emb", torch.randn(5, 8))
    g.add_relation(("board", "similar", "board"), torch.tensor([0, 1]), torch.tensor([1, 2]), reverse="similar_rev")
    return g


def assert_graphs_equal(a: PinBoardGraph, b: PinBoardGraph) -> None:
    assert a.node_types == b.node_types and a.edge_types == b.edge_types
    for t in a.node_types:
        assert a.ids(t).tolist() == b.ids(t).tolist()
        fa, fb = a.features(t), b.features(t)
        assert fa.kinds == fb.kinds
        pd.testing.assert_frame_equal(fa.table, fb.table, check_dtype=True)
        assert fa.tensors.keys() == fb.tensors.keys()
        for k in fa.tensors:
            assert fa.tensors[k].dtype == fb.tensors[k].dtype and torch.equal(fa.tensors[k], fb.tensors[k])
    for e in a.canonical_edge_types:
        ta, tb = a.relation(e).tensors(), b.relation(e).tensors()
        assert ta.keys() == tb.keys()
        for k in ta:
            assert ta[k].dtype == tb[k].dtype and torch.equal(ta[k], tb[k]), (e, k)


@pytest.mark.parametrize("mmap", [True, False])
def test_save_load_roundtrip_every_field(tmp_path, mmap):
    g = _rich_graph()
    g.save(tmp_path / "g")
    h = PinBoardGraph.load(tmp_path / "g", mmap=mmap)
    assert_graphs_equal(g, h)
    assert h.features("pin").text("title") == ["a", "", "c", "d", "e"]
    assert h.features("pin").categorical("brand").tolist() == [0, 1, -1, 0, 2]
    assert h.reverse_of(("board", "similar", "board")) == ("board", "similar_rev", "board")
    # loaded tensors are usable and writable (copy-on-write when memory-mapped)
    h.features("pin").tensors["emb"][0, 0] = 123.0
    assert PinBoardGraph.load(tmp_path / "g").features("pin").tensors["emb"][0, 0] != 123.0
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert manifest["version"] == 1 and manifest["nodes"] == {"pin": 5, "board": 3}
    assert not list(tmp_path.glob(".g.*")), "no temporary directories are left behind"


def test_save_replaces_atomically_and_failure_keeps_old(tmp_path, monkeypatch):
    g = _rich_graph()
    g.save(tmp_path / "g")
    smaller = g.remove_edges("in", torch.tensor([0]), torch.tensor([0]))
    smaller.save(tmp_path / "g")
    assert PinBoardGraph.load(tmp_path / "g").num_edges("in") == 4

    import boardgraph.graph.io as gio

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(gio, "_save_tensor", boom)
    with pytest.raises(OSError, match="disk full"):
        g.save(tmp_path / "g")
    assert PinBoardGraph.load(tmp_path / "g").num_edges("in") == 4  # the previous save is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g"]


def test_no_pickle_in_saved_files(tmp_path):
    _rich_graph().save(tmp_path / "g")
    for f in (tmp_path / "g").rglob("*.npy"):
        arr = np.load(f, allow_pickle=False)  # would raise on object arrays
        assert arr.dtype != object


def test_load_errors(tmp_path):
    with pytest.raises(GraphFormatError, match="no manifest.json"):
        PinBoardGraph.load(tmp_path)
    _rich_graph().save(tmp_path / "g")
    (tmp_path / "g" / "topology" / "pin__in__board" / "in_eid.npy").unlink()
    with pytest.raises(GraphFormatError, match="incomplete: .*in_eid.npy is missing"):
        PinBoardGraph.load(tmp_path / "g")
    m = tmp_path / "g" / "manifest.json"
    m.write_text(json.dumps({**json.loads(m.read_text()), "version": 99}))
    with pytest.raises(GraphFormatError, match="version 99"):
        PinBoardGraph.load(tmp_path / "g")


def test_atomic_write_text_replaces_whole_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    from boardgraph._io import atomic_write_text

    target = tmp_path / "config.json"
    atomic_write_text(target, "old é")
    atomic_write_text(target, "new")
    assert target.read_text(encoding="utf-8") == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("boardgraph._io.os.replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "never seen")
    assert target.read_text() == "new"  # the previous file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]  # and the temporary is gone


# -- a corrupt save raises GraphFormatError naming the file and the fix, never a raw traceback -----
def _corrupt(root, how):
    m = root / "manifest.json"
    if how == "manifest not json":
        m.write_text('{"format": "boardgraph", "vers')
        return "manifest.json"
    if how == "manifest not an object":
        m.write_text("[1, 2]")
        return "manifest.json"
    if how == "manifest without keys":
        m.write_text(json.dumps({"format": "boardgraph", "version": 1}))
        return "manifest.json"
    if how == "manifest bad counts":
        doc = json.loads(m.read_text())
        doc["nodes"]["pin"] = "five"
        m.write_text(json.dumps(doc))
        return "manifest.json"
    if how == "wrong edge count":
        doc = json.loads(m.read_text())
        rel = doc["relations"][0]
        assert rel["etype"] == ["pin", "in", "board"]
        rel["num_edges"] += 1
        m.write_text(json.dumps(doc))
        return rf"topology/pin__in__board holds {rel['num_edges'] - 1} edges .*manifest\.json says {rel['num_edges']}"
    target = {"truncated npy": "topology/pin__in__board/out_indices.npy",
              "truncated npy header": "topology/pin__in__board/in_eid.npy",
              "truncated feature npy": "features/pin/emb.npy",
              "truncated ids parquet": "ids/pin.parquet",
              "truncated table parquet": "features/pin/table.parquet",
              "deleted ids parquet": "ids/board.parquet",
              "deleted table parquet": "features/board/table.parquet",
              "feature rows": "features/pin/emb.npy",
              "indptr length": "topology/board__similar__board/out_indptr.npy"}[how]
    f = root / target
    if how.startswith("deleted"):
        f.unlink()
    elif how == "feature rows":
        np.save(f, np.zeros((4, 8), dtype=np.float32))
    elif how == "indptr length":
        np.save(f, np.array([0, 1, 2], dtype=np.int64))
    else:
        data = f.read_bytes()
        f.write_bytes(data[:20] if how.endswith("header") else data[: len(data) // 2])
    return target.replace(".", r"\.")


@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize("how", ["manifest not json", "manifest not an object", "manifest without keys",
                                 "manifest bad counts", "wrong edge count", "truncated npy", "truncated npy header",
                                 "truncated feature npy", "truncated ids parquet", "truncated table parquet",
                                 "deleted ids parquet", "deleted table parquet", "feature rows", "indptr length"])
def test_load_corrupt_save_names_the_file_and_the_fix(tmp_path, how, mmap):
    _rich_graph().save(tmp_path / "g")
    name = _corrupt(tmp_path / "g", how)
    with pytest.raises(GraphFormatError) as e:
        PinBoardGraph.load(tmp_path / "g", mmap=mmap)
    msg = str(e.value)
    assert type(e.value) is GraphFormatError, type(e.value)
    import re
    assert re.search(name, msg), msg
    assert "None" not in msg and "save the graph again" in msg, msg
    assert str(tmp_path / "g") in msg, msg


def test_load_refuses_an_artefact_of_another_kind(tmp_path):
    _rich_graph().save(tmp_path / "g")
    m = tmp_path / "g" / "manifest.json"
    m.write_text(json.dumps({**json.loads(m.read_text()), "artefact": "boardgraph.index"}))
    with pytest.raises(GraphFormatError, match=r"manifest\.json.*boardgraph\.index.*not a saved graph"):
        PinBoardGraph.load(tmp_path / "g")
