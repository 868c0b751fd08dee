"""Input safety of the graph builders (issue 15): ids read as written, non-finite numbers, image
checks and confinement, no phantom nodes, empty tables, unreadable files, consent messages, and
the accounting rule ``rows_in == edges + n_dropped``."""
import logging
import struct
import zlib

import numpy as np
import pandas as pd
import pytest
import torch

from boardgraph.graph import (BoardgraphError, BuildError, ImageReadError, MalformedValueError, NullIdError,
                              from_collections, from_interactions, read_table)
from boardgraph.graph.errors import EmptyGraphError, ImageTooLargeError, PathOutsideRootError, TableReadError


def _balanced(rep) -> bool:
    return rep.rows_in == sum(rep.edges.values()) + rep.n_dropped


# -- 1. ids are read as written --------------------------------------------------------------------

def test_csv_ids_that_look_like_numbers_stay_distinct(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("board_id,pin_id\nb1,007\nb1,7\nb1,0007\n10,1e3\n10,1000\n010,7\n")
    g, rep = from_collections(p)
    assert g.ids("pin").tolist() == ["007", "7", "0007", "1e3", "1000"]
    assert g.ids("board").tolist() == ["b1", "10", "010"]
    assert rep.counts == {} and g.num_edges("in") == 6


def test_csv_item_table_ids_are_strings_too(tmp_path):
    (tmp_path / "m.csv").write_text("board_id,pin_id\nb1,007\nb1,7\n")
    (tmp_path / "items.csv").write_text("pin_id,title\n7,seven\n007,double-o seven\n1e3,unused\n")
    g, _ = from_collections(tmp_path / "m.csv", items=tmp_path / "items.csv", text=["title"])
    assert g.ids("pin").tolist() == ["7", "007", "1e3"]
    assert g.features("pin").text("title") == ["seven", "double-o seven", "unused"]
    assert g.degree("in").tolist() == [1, 1, 0]


def test_csv_literal_na_ids_are_real_ids_and_only_empty_cells_are_missing(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("board_id,pin_id,price\nb1,NA,NA\nb1,null,null\nb1,None,3\nb2,,4\nb2,n/a,\n")
    with pytest.raises(NullIdError, match=r"column 'pin_id': null or empty id in row 3 \(line 5 of m.csv\)"):
        from_collections(p)
    g, rep = from_collections(p, numeric=["price"], on_error="skip")
    assert g.ids("pin").tolist() == ["NA", "null", "None", "n/a"]
    assert rep.counts == {"null_pin_id": 1}
    # other columns keep pandas' missing-value spellings: "NA", "null" and "" are a missing price
    assert np.allclose(g.features("pin").numeric(["price"])[:, 0].numpy(), [np.nan, np.nan, 3, np.nan],
                       equal_nan=True)


def test_parquet_integer_ids_stay_integers_and_dataframes_keep_dtypes(tmp_path):
    df = pd.DataFrame({"board_id": [10, 10, 20], "pin_id": np.array([7, 1000, 7], dtype=np.int64)})
    df.to_parquet(tmp_path / "m.parquet")
    g, _ = from_collections(tmp_path / "m.parquet")
    assert g.ids("pin").dtype == np.int64 and g.ids("pin").tolist() == [7, 1000]
    assert g.ids("board").dtype == np.int64 and g.ids("board").tolist() == [10, 20]
    g, _ = from_collections(df)
    assert g.ids("pin").dtype == np.int64 and g.ids("board").tolist() == [10, 20]
    assert read_table(df, "edge") is df


def test_mixed_id_types_name_the_mismatch(tmp_path):
    (tmp_path / "items.csv").write_text("pin_id\n7\n8\n")
    df = pd.DataFrame({"board_id": ["b1"], "pin_id": [7]})
    with pytest.raises(BuildError, match=r"pin id 7 is not in the pin table.*edge table's 'pin_id' ids are int64 "
                                         r"and the pin table's are strings"):
        from_collections(df, items=tmp_path / "items.csv")


# -- 2. non-finite numbers ------------------------------------------------------------------------

def test_nonfinite_weight_is_a_bad_row(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("board_id,pin_id,w\nb1,p1,1\nb1,p2,inf\nb2,p3,1e400\nb2,p4,-inf\nb2,p1,2\n")
    with pytest.raises(MalformedValueError, match=r"column 'w': value inf is not a finite number in rows 1, 2, 3 "
                                                  r"\(line 3, 4, 5 of m.csv\).*Fix: .*finite") as e:
        from_collections(p, weight="w")
    assert e.value.column == "w" and e.value.rows == [1, 2, 3]
    g, rep = from_collections(p, weight="w", on_error="skip")
    assert rep.counts == {"nonfinite_w": 3} and rep.examples["nonfinite_w"] == [1, 2, 3]
    assert g.edge_attr("in", "weight").tolist() == [1.0, 2.0]
    assert torch.isfinite(g.edge_attr("in", "weight")).all() and _balanced(rep)


def test_nonfinite_and_out_of_range_timestamps_are_bad_rows():
    df = pd.DataFrame({"board_id": ["b1", "b1", "b2", "b2"], "pin_id": ["p1", "p2", "p3", "p4"],
                       "ts": [1.7e9, np.inf, 1e30, 1.7e9 + 1]})
    with pytest.raises(MalformedValueError, match=r"column 'ts': value inf is not a finite number in row 1"):
        from_collections(df, timestamp="ts")
    g, rep = from_collections(df, timestamp="ts", on_error="skip")
    assert rep.counts == {"nonfinite_ts": 1, "malformed_ts": 1}
    assert g.edge_attr("in", "timestamp").tolist() == [1_700_000_000, 1_700_000_001]
    assert g.ids("pin").tolist() == ["p1", "p4"] and _balanced(rep)


def test_nonfinite_numeric_feature_is_set_missing_and_counted(tmp_path):
    items = pd.DataFrame({"pin_id": ["p1", "p2", "p3"], "price": ["1.5", "inf", "-1e400"]})
    df = pd.DataFrame({"board_id": ["b1", "b1", "b1"], "pin_id": ["p1", "p2", "p3"]})
    with pytest.raises(MalformedValueError, match=r"column 'price': value 'inf' is not a finite number in rows 1, 2"):
        from_collections(df, items=items, numeric=["price"])
    g, rep = from_collections(df, items=items, numeric=["price"], on_error="skip")
    assert rep.counts == {"nonfinite_price": 2}
    assert np.allclose(g.features("pin").numeric(["price"])[:, 0].numpy(), [1.5, np.nan, np.nan], equal_nan=True)
    assert g.num_nodes("pin") == 3 and rep.n_dropped == 0 and _balanced(rep)   # values set missing, rows kept


# -- 3. images ------------------------------------------------------------------------------------

def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` pixels but carries no pixel data (PIL reads only the header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.fixture
def image_dir(tmp_path):
    from PIL import Image

    root = tmp_path / "imgs"
    root.mkdir()
    Image.new("RGB", (8, 6), (255, 0, 0)).save(root / "ok.png")
    Image.new("RGB", (100, 100)).save(root / "big.png")
    (root / "notes.png").write_text("this is not an image")
    (root / "cut.png").write_bytes((root / "ok.png").read_bytes()[:40])
    (root / "bomb.png").write_bytes(_png_header(20_000, 20_000))
    Image.new("RGB", (4, 4)).save(tmp_path / "secret.png")
    return root


def _image_edges(n):
    return pd.DataFrame({"board_id": ["b1"] * n, "pin_id": [f"p{i}" for i in range(n)]})


def test_image_header_is_verified_and_non_image_files_fail(image_dir):
    items = pd.DataFrame({"pin_id": ["p0", "p1", "p2"], "img": ["ok.png", "notes.png", "cut.png"]})
    with pytest.raises(ImageReadError, match=r"column 'img': image 'notes.png' cannot be read in rows 1, 2"):
        from_collections(_image_edges(3), items=items, image="img", image_root=str(image_dir))
    g, rep = from_collections(_image_edges(3), items=items, image="img", image_root=str(image_dir), on_error="skip")
    assert rep.counts == {"unreadable_img": 2} and rep.examples["unreadable_img"] == [1, 2]
    refs = g.features("pin").table["img"]
    assert refs[0] == str(image_dir / "ok.png") and refs.isna().tolist() == [False, True, True]
    # encoded bytes are verified the same way
    raw = pd.DataFrame({"pin_id": ["p0", "p1"], "img": [(image_dir / "ok.png").read_bytes(), b"GIF89a broken"]})
    _, rep = from_collections(_image_edges(2), items=raw, image="img", on_error="skip")
    assert rep.counts == {"unreadable_img": 1}


def test_image_pixel_limit_and_decompression_bombs_are_counted(image_dir):
    items = pd.DataFrame({"pin_id": ["p0", "p1", "p2"], "img": ["ok.png", "big.png", "bomb.png"]})
    with pytest.raises(ImageTooLargeError, match=r"image 'big.png' is too large in rows 1, 2: 10,000 pixels "
                                                 r"\(100x100\), over max_image_pixels=1,000"):
        from_collections(_image_edges(3), items=items, image="img", image_root=str(image_dir), max_image_pixels=1000)
    _, rep = from_collections(_image_edges(3), items=items, image="img", image_root=str(image_dir),
                              max_image_pixels=1000, on_error="skip")
    assert rep.counts == {"oversized_img": 2}
    # default limit: PIL's 89,478,485 pixels; the 20000x20000 bomb is refused, the rest pass
    g, rep = from_collections(_image_edges(3), items=items, image="img", image_root=str(image_dir), on_error="skip")
    assert rep.counts == {"oversized_img": 1} and rep.examples["oversized_img"] == [2]
    assert g.features("pin").table["img"].isna().tolist() == [False, False, True]
    # with our limit off, PIL's own bomb check still refuses it: counted, never a traceback
    _, rep = from_collections(_image_edges(3), items=items, image="img", image_root=str(image_dir),
                              max_image_pixels=None, on_error="skip")
    assert rep.counts == {"oversized_img": 1}


def test_image_paths_are_confined_to_image_root(image_dir):
    outside = str(image_dir.parent / "secret.png")
    items = pd.DataFrame({"pin_id": ["p0", "p1", "p2", "p3"],
                          "img": ["ok.png", "../secret.png", outside, str(image_dir / "ok.png")]})
    with pytest.raises(PathOutsideRootError, match=r"column 'img': image '\.\./secret\.png' is outside image_root.* "
                                                   r"in rows 1, 2.*allow_outside_root=True"):
        from_collections(_image_edges(4), items=items, image="img", image_root=str(image_dir))
    g, rep = from_collections(_image_edges(4), items=items, image="img", image_root=str(image_dir), on_error="skip")
    assert rep.counts == {"outside_root_img": 2}
    assert g.features("pin").table["img"].isna().tolist() == [False, True, True, False]
    g, rep = from_collections(_image_edges(4), items=items, image="img", image_root=str(image_dir),
                              allow_outside_root=True)
    assert rep.counts == {} and g.features("pin").images("img", torch.tensor([1])).shape == (1, 3, 4, 4)


def test_image_symlink_out_of_root_is_refused(image_dir):
    (image_dir / "link.png").symlink_to(image_dir.parent / "secret.png")
    items = pd.DataFrame({"pin_id": ["p0"], "img": ["link.png"]})
    with pytest.raises(PathOutsideRootError):
        from_collections(_image_edges(1), items=items, image="img", image_root=str(image_dir))


# -- 4. no phantom nodes --------------------------------------------------------------------------

def test_skip_mode_keeps_no_phantom_nodes():
    df = pd.DataFrame({"board_id": ["b1", "b1", "b2", "b3", "b4", "b1"],
                       "pin_id": ["p1", " ", "p2", "p3", "p4", "p5"],
                       "w": ["1", "2", "3", "heavy", None, "4"]})
    g, rep = from_collections(df, weight="w", on_error="skip")
    assert g.ids("pin").tolist() == ["p1", "p2", "p5"]          # no " " (rejected), no p3/p4 (dropped rows)
    assert g.ids("board").tolist() == ["b1", "b2"]
    assert rep.counts == {"null_pin_id": 1, "malformed_w": 2} and _balanced(rep)
    # an explicit node table keeps its nodes, with or without memberships
    items = pd.DataFrame({"pin_id": ["p1", "p2", "p3", "p4", "p5", "p6"]})
    g, rep = from_collections(df, items=items, weight="w", on_error="skip")
    assert g.ids("pin").tolist() == ["p1", "p2", "p3", "p4", "p5", "p6"]
    assert g.ids("board").tolist() == ["b1", "b2"]


def test_inline_features_come_from_the_first_kept_row():
    df = pd.DataFrame({"board_id": ["b1", "b1", "b2"], "pin_id": ["p1", "p1", "p2"],
                       "title": ["dropped", "kept", "two"], "w": ["heavy", "1", "2"]})
    g, rep = from_collections(df, text=["title"], weight="w", on_error="skip")
    assert g.features("pin").text("title") == ["kept", "two"] and rep.counts == {"malformed_w": 1}


# -- 5. weights with currency signs, and words ----------------------------------------------------

def test_weight_with_currency_is_parsed_and_words_are_bad_rows():
    df = pd.DataFrame({"board_id": ["b1", "b1", "b2"], "pin_id": ["p1", "p2", "p3"], "w": ["$0.5", "1,200", "heavy"]})
    with pytest.raises(MalformedValueError, match=r"column 'w': value 'heavy' is not a valid weight in row 2") as e:
        from_collections(df, weight="w")
    assert e.value.column == "w"
    g, rep = from_collections(df, weight="w", on_error="skip")
    assert g.edge_attr("in", "weight").tolist() == [0.5, 1200.0]
    assert rep.counts == {"malformed_w": 1}
    g, _ = from_interactions(df.rename(columns={"board_id": "user_id"})[:2], weight="w")
    assert g.edge_attr("saved", "weight").tolist() == [0.5, 1200.0]


# -- 6. empty and tiny graphs ---------------------------------------------------------------------

def test_empty_edge_table_raises_a_build_error(tmp_path):
    with pytest.raises(EmptyGraphError, match=r"the edge table has no rows.*Fix: "):
        from_collections(pd.DataFrame({"board_id": [], "pin_id": []}))
    (tmp_path / "h.csv").write_text("board_id,pin_id\n")
    with pytest.raises(EmptyGraphError, match=r"edge table h.csv has no rows"):
        from_collections(tmp_path / "h.csv")
    df = pd.DataFrame({"board_id": ["b1", None], "pin_id": [None, "p2"]})
    with pytest.raises(EmptyGraphError, match=r"all 2 rows of the edge table were dropped \(null_pin_id: 1, "
                                              r"null_board_id: 1\)") as e:
        from_collections(df, on_error="skip")
    assert e.value.report.counts == {"null_pin_id": 1, "null_board_id": 1}
    small = pd.DataFrame({"board_id": ["b1", "b2"], "pin_id": ["p1", "p2"]})
    with pytest.raises(EmptyGraphError, match=r"board_below_min_size: 2.*min_board_size"):
        from_collections(small, min_board_size=2)


def test_tiny_graph_is_reported_loudly(caplog):
    with caplog.at_level(logging.WARNING, logger="boardgraph.graph.builders"):
        g, rep = from_collections(pd.DataFrame({"board_id": ["b1"], "pin_id": ["p1"]}))
    assert g.num_edges("in") == 1
    assert rep.warnings == ["only 1 pin and 1 board: training and evaluation need at least 2 of each"]
    assert "WARNING: only 1 pin and 1 board" in str(rep)
    assert "only 1 pin and 1 board" in caplog.text
    _, rep = from_collections(pd.DataFrame({"board_id": ["b1", "b2"], "pin_id": ["p1", "p1"]}))
    assert rep.warnings == ["only 1 pin: training and evaluation need at least 2 pins"]
    _, rep = from_collections(pd.DataFrame({"board_id": ["b1", "b2"], "pin_id": ["p1", "p2"]}))
    assert rep.warnings == [] and "WARNING" not in str(rep)


# -- 7. unreadable files --------------------------------------------------------------------------

def test_unreadable_tables_raise_named_errors(tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "zero.parquet").write_bytes(b"")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    (tmp_path / "latin.csv").write_bytes("board_id,pin_id\nb1,caf\xe9\nb1,p2\n".encode("latin-1"))
    cases = [("empty.csv", r"edge table empty.csv is empty \(no header line\).*Fix: "),
             ("zero.parquet", r"edge table zero.parquet is not a readable Parquet file.*Fix: .*re-export"),
             ("broken.parquet", r"edge table broken.parquet is not a readable Parquet file"),
             ("latin.csv", r"edge table latin.csv is not utf-8 text \(byte 0xe9 at position \d+\).*Fix: "
                           r"pass encoding=")]
    for name, pattern in cases:
        with pytest.raises(TableReadError, match=pattern) as e:
            from_collections(tmp_path / name)
        assert isinstance(e.value, BoardgraphError) and e.value.path == str(tmp_path / name)
    g, _ = from_collections(tmp_path / "latin.csv", encoding="latin-1")
    assert g.ids("pin").tolist() == ["caf\xe9", "p2"]
    with pytest.raises(TableReadError, match=r"pin table latin.csv is not utf-8"):
        from_collections(pd.DataFrame({"board_id": ["b1"], "pin_id": ["p2"]}), items=tmp_path / "latin.csv")
    with pytest.raises(TableReadError, match=r"unknown encoding 'klingon'"):
        from_collections(tmp_path / "latin.csv", encoding="klingon")
    (tmp_path / "ragged.csv").write_text('board_id,pin_id\nb1,"p1\n')
    with pytest.raises(TableReadError, match=r"edge table ragged.csv cannot be parsed as CSV"):
        from_collections(tmp_path / "ragged.csv")


# -- 8. consent messages --------------------------------------------------------------------------

def test_consent_error_names_the_offending_values_and_the_accepted_ones(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("board_id,pin_id,ok\nb1,p1,1\nb1,p2,0\nb2,p3,maybe\nb2,p4,1\nb2,p5,2\nb1,p6,yes\n")
    with pytest.raises(MalformedValueError) as e:
        from_collections(p, consent="ok")
    msg = str(e.value)
    assert "'maybe'" in msg and "'2'" in msg and "'1'" not in msg.split("Fix:")[0]
    assert "rows 2, 4 (line 4, 6 of m.csv)" in msg
    assert "accepted" in msg and "1/0" in msg and "yes/no" in msg
    g, rep = from_collections(p, consent="ok", on_error="skip")
    assert g.ids("pin").tolist() == ["p1", "p4", "p6"]
    assert rep.counts == {"no_consent": 1, "malformed_ok": 2} and _balanced(rep)


# -- accounting -----------------------------------------------------------------------------------

def test_every_input_row_is_an_edge_or_a_counted_drop():
    df = pd.DataFrame({"board_id": ["b1", "b1", "b1", "b1", "b2", "b2", None, "b3", "b4", "b4", "b4", "b4"],
                       "pin_id": ["p1", "p1", "p2", "p9", "p3", "", "p4", "p5", "p6", "p7", "p8", "p10"],
                       "w": [1, 1, np.inf, 1, 2, 3, 4, 5, 6, 7, "x", 8],
                       "ok": [1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1]})
    items = pd.DataFrame({"pin_id": [f"p{i}" for i in range(1, 11)] + ["p8"],
                          "price": [1, np.inf, 3, 4, 5, 6, 7, 8, 9, 10, 11]})
    g, rep = from_collections(df, items=items, numeric=["price"], weight="w", consent="ok", min_board_size=2,
                              on_error="skip")
    assert rep.rows_in == 12
    assert rep.dropped == {"no_consent": 1, "null_pin_id": 1, "null_board_id": 1, "nonfinite_w": 1,
                           "malformed_w": 1, "board_below_min_size": 2, "duplicate_edge": 1}
    assert rep.examples["board_below_min_size"] == [4, 7]
    assert rep.n_dropped == 8 and g.num_edges("in") == 4 and _balanced(rep)
    assert g.ids("board").tolist() == ["b1", "b4"]
    # node-table rows and feature values are counted too, but are not edge-table rows
    assert rep.counts["duplicate_pin_row"] == 1 and rep.counts["nonfinite_price"] == 1
    assert rep.scopes["duplicate_pin_row"] == "table_rows" and rep.scopes["nonfinite_price"] == "values"
    assert "4 edges + 8 dropped = 12 rows read" in str(rep)


def test_node_table_null_ids_are_counted_apart_from_edge_null_ids():
    df = pd.DataFrame({"board_id": ["b1", "b1", "b1"], "pin_id": ["p1", None, "p2"]})
    items = pd.DataFrame({"pin_id": ["p1", None, "p2"]})
    _, rep = from_collections(df, items=items, on_error="skip")
    assert rep.counts == {"null_pin_id": 1, "null_pin_table_id": 1}
    assert rep.dropped == {"null_pin_id": 1} and _balanced(rep)


def test_min_board_size_holds_after_bad_rows_are_skipped():
    """A board that falls under min_board_size once its bad rows are skipped is dropped too (the
    size rule is a privacy rule: it must hold in the built graph), from the board table as well."""
    df = pd.DataFrame({"board_id": ["b1", "b1", "b2", "b2"], "pin_id": ["p1", "p2", "p3", "p4"],
                       "w": ["1", "heavy", "1", "2"]})
    g, rep = from_collections(df, weight="w", min_board_size=2, on_error="skip")
    assert g.ids("board").tolist() == ["b2"] and g.ids("pin").tolist() == ["p3", "p4"]
    assert rep.counts == {"malformed_w": 1, "board_below_min_size": 1}
    assert rep.examples["board_below_min_size"] == [0] and _balanced(rep)
    boards = pd.DataFrame({"board_id": ["b1", "b2", "b3"], "name": ["small", "big", "empty"]})
    g, rep = from_collections(df, boards=boards, board_text=["name"], weight="w", min_board_size=2, on_error="skip")
    assert g.ids("board").tolist() == ["b2", "b3"] and g.features("board").text("name") == ["big", "empty"]
    assert rep.counts == {"malformed_w": 1, "board_below_min_size": 1, "board_table_below_min_size": 1}


def test_a_column_that_is_both_weight_and_feature_is_counted_under_two_reasons():
    df = pd.DataFrame({"board_id": ["b1", "b1", "b2"], "pin_id": ["p1", "p2", "p3"], "w": ["1", "heavy", "2"]})
    g, rep = from_collections(df, weight="w", numeric=["w"], on_error="skip")
    assert rep.counts == {"malformed_w": 1} and rep.scopes == {"malformed_w": "edge_rows"}  # row dropped first
    items = pd.DataFrame({"pin_id": ["p1", "p2", "p3"], "w": ["1", "x", "2"]})
    g, rep = from_collections(df, items=items, weight="w", numeric=["w"], on_error="skip")
    assert rep.counts == {"malformed_w": 1, "malformed_w_values": 1} and _balanced(rep)


def test_max_image_pixels_must_be_a_positive_int():
    with pytest.raises(ValueError, match=r"max_image_pixels must be an int >= 1 or None, got 0"):
        from_collections(_image_edges(1), max_image_pixels=0)


_CELLS = ["b1", "b2", "7", "007", 7, 7.0, np.nan, None, True, 1e400, -np.inf, 2 ** 70, "", " ", "heavy", "$0.5",
          "2024-01-01", "yes", "1", 0, "maybe", "NA", b"\x89PNG", "ok.png", "../ok.png", "/etc/passwd"]


@pytest.mark.parametrize("seed", range(4))
def test_random_malformed_tables_build_or_raise_a_named_error_and_every_row_is_counted(tmp_path, seed):
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "ok.png")
    rng = np.random.default_rng(seed)

    def column(n):
        return [_CELLS[i] for i in rng.integers(0, len(_CELLS), n)]

    for it in range(40):
        n = int(rng.integers(1, 10))
        df = pd.DataFrame({c: column(n) for c in ["board_id", "pin_id", "w", "ts", "ok", "price", "img"]})
        kw = {k: v for k, v in (("weight", "w"), ("timestamp", "ts"), ("consent", "ok"), ("min_board_size", 2),
                                ("numeric", ["price", "w"]), ("image", "img")) if rng.random() < 0.35}
        if "image" in kw:
            kw["image_root"] = str(tmp_path)
        if rng.random() < 0.3:
            kw["items"] = pd.DataFrame({"pin_id": column(6), "price": column(6), "img": column(6)})
        src = df
        if rng.random() < 0.3:
            src = tmp_path / f"t{it}.csv"
            df.to_csv(src, index=False)
        try:
            _, rep = from_collections(src, on_error="skip" if rng.random() < 0.7 else "raise", **kw)
        except BoardgraphError as e:  # a named error, on one line
            assert "\n" not in str(e)
        else:
            assert _balanced(rep), (kw, rep)
