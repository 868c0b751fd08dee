import numpy as np
import pandas as pd
import pytest
import torch

from boardgraph.graph import (DuplicateIdError, ImageReadError, MalformedValueError, NullIdError, SchemaError,
                              UnknownIdError, from_collections, from_interactions)


@pytest.fixture
def items():
    return pd.DataFrame({"pin_id": ["p1", "p2", "p3", "p4", "p5"],
                         "title": ["red dress", "blue jeans", None, "green bag", "cold pin"],
                         "brand": ["acme", "acme", "zed", None, "zed"],
                         "price": ["$8.99", "1,200", "3", None, "4.5"]})


def test_from_collections_with_tables(tiny_memberships, items):
    boards = pd.DataFrame({"board_id": ["b3", "b2", "b1"], "name": ["x", "y", "z"]})
    g, rep = from_collections(tiny_memberships, items=items, boards=boards, text=["title"], categorical=["brand"],
                              numeric=["price"], board_text=["name"], weight="weight")
    assert g.ids("pin").tolist() == ["p1", "p2", "p3", "p4", "p5"]   # item-table order, p5 kept unconnected
    assert g.ids("board").tolist() == ["b3", "b2", "b1"]
    assert g.degree("in").tolist() == [1, 2, 1, 1, 0]
    f = g.features("pin")
    assert f.kinds == {"title": "text", "brand": "categorical", "price": "numeric"}
    assert f.text("title") == ["red dress", "blue jeans", "", "green bag", "cold pin"]
    assert np.allclose(f.numeric(["price"])[:, 0].numpy(), [8.99, 1200, 3, np.nan, 4.5], equal_nan=True)
    assert f.categorical("brand").tolist() == [0, 0, 1, -1, 1]
    assert g.features("board").text("name") == ["x", "y", "z"]
    assert rep.rows_in == 6 and rep.counts == {"duplicate_edge": 1} and rep.examples["duplicate_edge"] == [5]
    assert rep.nodes == {"pin": 5, "board": 3} and rep.edges == {"in": 5}
    assert "duplicate_edge" in str(rep)


def test_missing_column_names_it_and_the_fix(tiny_memberships):
    with pytest.raises(SchemaError, match=r"edge table has no column 'collection_id'.*Fix: pass the column names"):
        from_collections(tiny_memberships, collection="collection_id")
    with pytest.raises(SchemaError, match="pin table has no column 'title'"):
        from_collections(tiny_memberships, items=pd.DataFrame({"pin_id": ["p1"]}), text=["title"])


def test_null_id_raises_with_row_then_skip_counts():
    df = pd.DataFrame({"board_id": ["b1", None, "b2", "b2"], "pin_id": ["p1", "p2", "", "p3"]})
    with pytest.raises(NullIdError, match=r"column 'pin_id': null or empty id in row 2.*on_error='skip'") as e:
        from_collections(df)
    assert e.value.column == "pin_id" and e.value.rows == [2]
    g, rep = from_collections(df, on_error="skip")
    assert rep.counts == {"null_pin_id": 1, "null_board_id": 1}
    assert rep.examples == {"null_pin_id": [2], "null_board_id": [1]}
    assert g.num_edges("in") == 2
    # ids seen only on dropped rows are not nodes (no phantom p2, no blank pin; issue 15)
    assert g.ids("pin").tolist() == ["p1", "p3"] and g.ids("board").tolist() == ["b1", "b2"]
    assert rep.n_dropped == 2 and rep.rows_in == g.num_edges("in") + rep.n_dropped


def test_unknown_item_raises_then_skips(tiny_memberships, items):
    small = items[items.pin_id != "p4"]
    with pytest.raises(UnknownIdError, match=r"pin id 'p4' is not in the pin table in row 4.*add the pin"):
        from_collections(tiny_memberships, items=small)
    g, rep = from_collections(tiny_memberships, items=small, on_error="skip")
    assert rep.counts == {"unknown_pin": 1, "duplicate_edge": 1} and rep.examples["unknown_pin"] == [4]
    assert g.num_edges("in") == 4


def test_malformed_price_names_value_column_row(tiny_memberships, items):
    bad = items.copy()
    bad.loc[2, "price"] = "abc"
    with pytest.raises(MalformedValueError, match=r"column 'price': value 'abc' is not a number in row 2") as e:
        from_collections(tiny_memberships, items=bad, numeric=["price"])
    assert e.value.column == "price"
    g, rep = from_collections(tiny_memberships, items=bad, numeric=["price"], on_error="skip")
    assert rep.counts["malformed_price"] == 1
    assert np.isnan(g.features("pin").numeric(["price"])[2, 0].item())  # set missing, pin kept
    assert g.num_nodes("pin") == 5


def test_unreadable_image_path(tmp_path, tiny_memberships):
    from PIL import Image

    Image.new("RGB", (8, 6), (255, 0, 0)).save(tmp_path / "ok.png")
    items = pd.DataFrame({"pin_id": ["p1", "p2", "p3", "p4"], "img": ["ok.png", "missing.png", None, "ok.png"]})
    with pytest.raises(ImageReadError, match=r"column 'img': image 'missing.png' cannot be read in row 1"):
        from_collections(tiny_memberships, items=items, image="img", image_root=str(tmp_path))
    g, rep = from_collections(tiny_memberships, items=items, image="img", image_root=str(tmp_path), on_error="skip")
    assert rep.counts["unreadable_img"] == 1
    imgs = g.features("pin").images("img", torch.tensor([0, 3]))
    assert imgs.shape == (2, 3, 6, 8) and imgs.dtype == torch.uint8 and imgs[0, 0].eq(255).all()
    assert g.features("pin").images("img", torch.tensor([0]), size=4).shape == (1, 3, 4, 4)
    with pytest.raises(ImageReadError, match="has no image"):  # the unreadable path was set missing
        g.features("pin").images("img", torch.tensor([1]))
    (tmp_path / "ok.png").write_bytes(b"not a png")               # a file that became unreadable later
    with pytest.raises(ImageReadError, match="cannot read image"):
        g.features("pin").images("img", torch.tensor([0]))


def test_duplicate_item_rows(tiny_memberships, items):
    dup = pd.concat([items, items.iloc[[1]]], ignore_index=True)
    with pytest.raises(DuplicateIdError, match=r"id 'p2' listed twice in row 5"):
        from_collections(tiny_memberships, items=dup)
    g, rep = from_collections(tiny_memberships, items=dup, on_error="skip")
    assert rep.counts["duplicate_pin_row"] == 1 and g.num_nodes("pin") == 5


def test_csv_and_parquet_paths(tmp_path, tiny_memberships):
    tiny_memberships.to_csv(tmp_path / "m.csv", index=False)
    tiny_memberships.to_parquet(tmp_path / "m.parquet")
    a, _ = from_collections(tmp_path / "m.csv", weight="weight")
    b, _ = from_collections(str(tmp_path / "m.parquet"), weight="weight")
    assert a.ids("pin").tolist() == b.ids("pin").tolist() == ["p1", "p2", "p3", "p4"]
    assert torch.equal(a.csr("has")[1], b.csr("has")[1])
    bad = tiny_memberships.copy()
    bad.loc[3, "pin_id"] = None
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(NullIdError, match=r"row 3 \(line 5 of bad.csv\)"):
        from_collections(tmp_path / "bad.csv")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        from_collections(tmp_path / "nope.csv")
    with pytest.raises(SchemaError, match="unknown file type"):
        (tmp_path / "m.xlsx").write_text("x")
        from_collections(tmp_path / "m.xlsx")


def test_inline_features_and_timestamps():
    df = pd.DataFrame({"board_id": ["b1", "b1", "b2"], "pin_id": ["p1", "p2", "p1"], "title": ["a", "b", "a2"],
                       "ts": ["2024-01-01", "2024-01-02", "not a date"]})
    with pytest.raises(MalformedValueError, match=r"column 'ts': value 'not a date' is not a valid timestamp"):
        from_collections(df, text=["title"], timestamp="ts")
    g, rep = from_collections(df, text=["title"], timestamp="ts", on_error="skip")
    assert g.features("pin").text("title") == ["a", "b"]      # first row per pin
    assert g.edge_attr("in", "timestamp").tolist() == [1704067200, 1704153600]
    assert rep.counts == {"malformed_ts": 1}


def test_consent_and_min_board_size():
    df = pd.DataFrame({"board_id": ["b1", "b1", "b1", "b2", "b2", "b3"],
                       "pin_id": ["p1", "p2", "p3", "p1", "p4", "p5"],
                       "ok": ["yes", "yes", "no", "true", "yes", "yes"]})
    g, rep = from_collections(df, consent="ok", min_board_size=2)
    assert rep.counts == {"no_consent": 1, "board_below_min_size": 1}
    assert g.ids("board").tolist() == ["b1", "b2"] and g.num_edges("in") == 4


def test_from_interactions():
    df = pd.DataFrame({"user": ["u1", "u2", "u2", "u3", "u1"], "item": [7, 7, 8, 9, 7], "w": [1, 2, 3, 4, 5]})
    g, rep = from_interactions(df, user="user", item="item", weight="w", min_users=2)
    assert g.node_types == ["user", "pin"]
    assert g.ids("pin").tolist() == [7] and g.ids("user").tolist() == ["u1", "u2"]
    assert g.edge_types == [("user", "saved", "pin"), ("pin", "saved_by", "user")]
    assert g.edge_attr("saved", "weight").tolist() == [1.0, 2.0]
    assert rep.counts == {"pin_below_min_size": 2, "duplicate_edge": 1}


@pytest.mark.slow
def test_million_row_string_build_is_vectorised():
    rng = np.random.default_rng(0)
    n = 1_000_000
    df = pd.DataFrame({"board_id": np.char.add("b", rng.integers(0, 10_000, n).astype(str)),
                       "pin_id": np.char.add("p", rng.integers(0, 100_000, n).astype(str))})
    g, rep = from_collections(df)
    uniq = len(df.drop_duplicates())
    assert g.num_edges("in") == uniq and rep.counts.get("duplicate_edge", 0) == n - uniq
    i = 12345
    p, b = g.index("pin", [df.pin_id[i]]), g.index("board", [df.board_id[i]])
    assert g.edge_ids("in", p, b).item() >= 0


def test_report_lines_without_example_rows_show_no_empty_example_list():
    from boardgraph.graph.build_report import BuildReport

    r = BuildReport()
    r.counts["no_consent"] = 3
    text = str(r)
    assert "no_consent" in text and "(e.g. rows )" not in text and "e.g." not in text


def test_consent_and_min_board_size_report_example_rows():
    import pandas as pd

    from boardgraph.graph import from_collections

    df = pd.DataFrame({"board_id": ["a", "a", "b", "c", "c"], "pin_id": ["1", "2", "3", "4", "5"],
                       "ok": [True, True, True, False, True]})
    _, report = from_collections(df, consent="ok", min_board_size=2)
    assert report.counts == {"no_consent": 1, "board_below_min_size": 2}
    assert report.examples["no_consent"] == [3] and report.examples["board_below_min_size"] == [2, 4]
    assert "(e.g. rows 3)" in str(report) and "(e.g. rows 2, 4)" in str(report)


def test_min_board_size_removes_the_small_boards_from_the_board_table_too():
    """A board dropped by the size rule must not stay behind as an isolated node with its
    features (the rule is a privacy rule); the board table rows removed are counted."""
    df = pd.DataFrame({"board_id": ["b1", "b1", "b2", "b3"], "pin_id": ["p1", "p2", "p3", "p4"]})
    boards = pd.DataFrame({"board_id": ["b1", "b2", "b3", "b4"],
                           "name": ["two pins", "private one", "another one", "never used"]})
    g, rep = from_collections(df, boards=boards, board_text=["name"], min_board_size=2)
    # b4 had no memberships to begin with: kept (a board table may list empty boards)
    assert g.ids("board").tolist() == ["b1", "b4"]
    assert g.features("board").text("name") == ["two pins", "never used"]
    assert rep.counts == {"board_below_min_size": 2, "board_table_below_min_size": 2}
    assert rep.examples["board_table_below_min_size"] == [1, 2]
    assert g.num_edges("in") == 2 and sorted(g.ids("pin").tolist()) == ["p1", "p2"]


def test_min_users_removes_the_rare_items_from_the_item_table_too():
    df = pd.DataFrame({"user": ["u1", "u2", "u3"], "item": ["i1", "i1", "i2"]})
    items = pd.DataFrame({"item": ["i1", "i2", "i3"], "title": ["popular", "rare", "cold"]})
    g, rep = from_interactions(df, user="user", item="item", items=items, text=["title"], min_users=2)
    assert g.ids("pin").tolist() == ["i1", "i3"] and g.features("pin").text("title") == ["popular", "cold"]
    assert rep.counts == {"pin_below_min_size": 1, "pin_table_below_min_size": 1}
