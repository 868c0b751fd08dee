"""The out-of-core builder gives the in-memory builder's graph and report, file for file and count for
count, on tables with every kind of bad row, from every input format; and its errors are the same."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from boardgraph.graph import PinBoardGraph, from_collections, from_interactions
from boardgraph.graph.errors import MalformedValueError, NullIdError, SchemaError, UnknownIdError, EmptyGraphError
from boardgraph.graph.stream import StreamTuning
from boardgraph.graph.stream.spill import MemoryLimitError

# tiny sizes: many batches, many spill files, merged and split groups
TINY = StreamTuning(1 << 30, rows_per_batch=37, bucket_width=4, capacity=150)


def messy_table(n: int = 700, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Memberships with every kind of bad row, and item and board tables with bad rows of their own."""
    rng = np.random.default_rng(seed)
    pins = np.array([f"p{i}" for i in rng.integers(0, 160, n)], dtype=object)
    boards = np.array([f"b{i}" for i in (rng.zipf(1.6, n) % 90)], dtype=object)
    pins[rng.random(n) < 0.02] = None
    pins[rng.random(n) < 0.01] = "  "
    boards[rng.random(n) < 0.02] = None
    weight = rng.random(n).round(3).astype(object)
    weight[rng.random(n) < 0.02] = "heavy"
    weight[rng.random(n) < 0.01] = "inf"
    weight[rng.random(n) < 0.01] = "1e400"
    weight[rng.random(n) < 0.01] = "$2.50"
    ts = (1_700_000_000 + rng.integers(0, 10**6, n)).astype(object)
    ts[rng.random(n) < 0.05] = "2024-03-01"
    ts[rng.random(n) < 0.02] = "not a date"
    consent = rng.choice(np.array(["yes", "no", "1", "0", "1.0", "true", "maybe", None], dtype=object), n,
                         p=[.4, .05, .2, .05, .1, .14, .03, .03])
    df = pd.DataFrame({"board_id": boards, "pin_id": pins, "w": weight, "ts": ts, "ok": consent})
    dup = df.sample(40, random_state=seed)
    df = pd.concat([df, dup], ignore_index=True).sample(frac=1, random_state=seed + 1).reset_index(drop=True)
    items = pd.DataFrame({"pin_id": [f"p{i}" for i in range(150)] + [None, "p3"],
                          "title": [f"pin {i}" for i in range(150)] + ["x", "dup"],
                          "price": [str(i) for i in range(148)] + ["abc", "inf", "1", "2"]})
    board_t = pd.DataFrame({"board_id": [f"b{i}" for i in range(85)] + ["b2", None],
                            "topic": [f"t{i % 7}" for i in range(85)] + ["dup", "none"]})
    return df, items, board_t


def as_input(df: pd.DataFrame, fmt: str, tmp: Path):
    """``df`` as a DataFrame, a CSV file, a Parquet file or a folder of three Parquet shards."""
    if fmt == "frame":
        return df
    if fmt == "csv":
        df.to_csv(tmp / "m.csv", index=False)
        return tmp / "m.csv"
    text = df.astype({c: "string" for c in df.columns if df[c].dtype == object})
    if fmt == "parquet":
        text.to_parquet(tmp / "m.parquet", index=False)
        return tmp / "m.parquet"
    (tmp / "shards").mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(df)), 3)):
        text.iloc[part].to_parquet(tmp / "shards" / f"part-{i}.parquet", index=False)
    return tmp / "shards"


def assert_same_build(a: tuple[PinBoardGraph, object], b: tuple[PinBoardGraph, object]) -> None:
    (g1, r1), (g2, r2) = a, b
    for f in ("rows_in", "counts", "examples", "nodes", "edges", "scopes", "warnings"):
        assert getattr(r1, f) == getattr(r2, f), f
    assert r1.messages.keys() == r2.messages.keys()
    assert g1.node_types == g2.node_types and g1.canonical_edge_types == g2.canonical_edge_types
    for t in g1.node_types:
        assert list(g1.id_map(t).values) == list(g2.id_map(t).values), t
        f1, f2 = g1.features(t), g2.features(t)
        assert f1.kinds == f2.kinds
        pd.testing.assert_frame_equal(f1.table.reset_index(drop=True), f2.table.reset_index(drop=True))
    for e in g1.canonical_edge_types:
        t1, t2 = g1.relation(e).tensors(), g2.relation(e).tensors()
        assert t1.keys() == t2.keys()
        for k in t1:
            assert t1[k].dtype == t2[k].dtype and t1[k].shape == t2[k].shape, k
            assert bool((t1[k] == t2[k]).all()), k


@pytest.mark.parametrize("fmt", ["frame", "csv", "parquet", "shards"])
@pytest.mark.parametrize("tables", [False, True])
def test_out_of_core_matches_in_memory_on_messy_tables(tmp_path, fmt, tables):
    df, items, board_t = messy_table()
    src = as_input(df, fmt, tmp_path)
    kw = dict(weight="w", timestamp="ts", consent="ok", min_board_size=3, on_error="skip")
    if tables:
        kw.update(items=items, boards=board_t, text=["title"], numeric=["price"], board_categorical=["topic"])
    mem = from_collections(src, method="memory", **kw)
    ooc = from_collections(src, method="out-of-core", out=tmp_path / "g", max_memory=TINY, **kw)
    r = mem[1]
    # the table really has every kind of bad row
    want = {"no_consent", "malformed_ok", "null_pin_id", "null_board_id", "malformed_w", "nonfinite_w",
            "malformed_ts", "duplicate_edge", "board_below_min_size"}
    if tables:
        want |= {"unknown_pin", "unknown_board", "null_pin_table_id", "duplicate_pin_row", "null_board_table_id",
                 "duplicate_board_row", "board_table_below_min_size", "malformed_price", "nonfinite_price"}
    assert want <= set(r.counts), want - set(r.counts)
    assert r.method == "in memory" and ooc[1].method == "out of core"
    assert_same_build(mem, ooc)
    # the returned graph is the saved one, memory-mapped
    assert_same_build(ooc, (PinBoardGraph.load(tmp_path / "g"), ooc[1]))


@pytest.mark.parametrize("k", [1, 2, 4])
def test_node_order_and_min_group_size_match_with_integer_ids(tmp_path, k):
    rng = np.random.default_rng(k)
    n = 3000
    df = pd.DataFrame({"board_id": rng.zipf(1.5, n) % 200 * 1000 + 7, "pin_id": rng.integers(0, 10**12, n) % 400})
    df.to_parquet(tmp_path / "m.parquet", index=False)
    mem = from_collections(tmp_path / "m.parquet", min_board_size=k, method="memory")
    ooc = from_collections(tmp_path / "m.parquet", min_board_size=k, method="out-of-core", out=tmp_path / "g",
                           max_memory=StreamTuning(1 << 30, rows_per_batch=211, bucket_width=16, capacity=1500))
    assert ooc[0].id_map("pin").values.dtype == np.int64
    if k > 1:
        assert mem[1].counts["board_below_min_size"] > 0
    assert_same_build(mem, ooc)


def test_interactions_match(tmp_path):
    df, items, _ = messy_table(seed=3)
    df = df.rename(columns={"board_id": "user_id"})
    kw = dict(weight="w", timestamp="ts", min_users=2, on_error="skip", items=items, text=["title"])
    assert_same_build(from_interactions(df, method="memory", **kw),
                      from_interactions(df, method="out-of-core", out=tmp_path / "g",
                                        max_memory=StreamTuning(1 << 30, rows_per_batch=37, bucket_width=4,
                                                                capacity=400), **kw))


@pytest.mark.parametrize("bad, exc, column", [
    ({"pin_id": (None, [5, 130, 131, 299])}, NullIdError, "pin_id"),
    ({"w": ("heavy", [5, 130, 131, 299])}, MalformedValueError, "w"),
    ({"w": ("inf", [5, 130, 131, 299])}, MalformedValueError, "w"),
    ({"ok": ("maybe", [5, 130, 131, 299])}, MalformedValueError, "ok"),
    ({"board_id": ("nowhere", [5, 130, 131, 299])}, UnknownIdError, "board_id"),
    # the first failing kind of check wins, not the first bad row: null ids come before attributes
    ({"w": ("heavy", [3, 4]), "pin_id": (None, [7, 250])}, NullIdError, "pin_id"),
    ({"board_id": ("nowhere", [1]), "w": ("1e400", [2]), "ok": ("maybe", [280])}, MalformedValueError, "ok"),
])
def test_raise_mode_raises_the_same_error(tmp_path, bad, exc, column):
    rng = np.random.default_rng(1)
    n = 300
    df = pd.DataFrame({"board_id": [f"b{i}" for i in rng.integers(0, 20, n)],
                       "pin_id": [f"p{i}" for i in rng.integers(0, 50, n)], "w": rng.random(n).astype(object),
                       "ok": "yes"})
    for c, (v, rows) in bad.items():
        df.loc[rows, c] = v
    boards = pd.DataFrame({"board_id": [f"b{i}" for i in range(20)]})
    errors = []
    for method in ("memory", "out-of-core"):
        with pytest.raises(exc) as e:
            from_collections(df, weight="w", consent="ok", boards=boards, method=method, out=tmp_path / method,
                             max_memory=TINY)
        errors.append(e.value)
    a, b = errors
    assert a.column == b.column == column and a.rows == b.rows, (a, b)
    assert str(a) == str(b)
    assert not (tmp_path / "out-of-core").exists() and not any(tmp_path.iterdir())


def test_empty_and_all_dropped_tables(tmp_path):
    empty = pd.DataFrame({"board_id": pd.Series([], dtype=object), "pin_id": pd.Series([], dtype=object)})
    empty.to_csv(tmp_path / "e.csv", index=False)
    for method in ("memory", "out-of-core"):
        with pytest.raises(EmptyGraphError, match="has no rows"):
            from_collections(tmp_path / "e.csv", method=method, out=tmp_path / "g", max_memory=TINY)
    df = pd.DataFrame({"board_id": ["a", "b", "c"], "pin_id": ["x", "y", "z"]})
    msgs = []
    for method in ("memory", "out-of-core"):
        with pytest.raises(EmptyGraphError) as e:
            from_collections(df, min_board_size=2, method=method, out=tmp_path / "g", max_memory=TINY)
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1] and "board_below_min_size: 3" in msgs[0]


def test_features_from_the_edge_table_need_a_node_table(tmp_path):
    df = pd.DataFrame({"board_id": ["a", "b"], "pin_id": ["x", "y"], "title": ["t", "u"]})
    with pytest.raises(SchemaError, match="pass a pin table"):
        from_collections(df, text=["title"], method="out-of-core", out=tmp_path / "g", max_memory=TINY)


def test_one_node_over_the_memory_limit_is_named(tmp_path):
    # a node with more memberships than a group holds is read as a group of its own, up to 16 groups' worth
    tuning = StreamTuning(1 << 30, rows_per_batch=50, bucket_width=4, capacity=100)
    df = pd.DataFrame({"board_id": [f"b{i}" for i in range(1500)], "pin_id": "same"})
    assert_same_build(from_collections(df, method="memory"),
                      from_collections(df, method="out-of-core", out=tmp_path / "g", max_memory=tuning))
    df = pd.DataFrame({"board_id": [f"b{i}" for i in range(1700)], "pin_id": "same"})
    with pytest.raises(MemoryLimitError, match="one pin .* has 1,700 memberships, more than the 1,600"):
        from_collections(df, method="out-of-core", out=tmp_path / "g2", max_memory=tuning)


def test_auto_says_which_path_it_took(tmp_path):
    df = pd.DataFrame({"board_id": ["a", "a", "b"], "pin_id": ["x", "y", "x"]})
    df.to_parquet(tmp_path / "m.parquet", index=False)
    g, r = from_collections(tmp_path / "m.parquet", out=tmp_path / "g1", max_memory="1G")
    assert r.method == "in memory" and "within --max-memory 1.0 GB" in r.method_note
    assert "built in memory" in str(r)
    assert PinBoardGraph.load(tmp_path / "g1").num_edges("in") == 3
    # a limit the estimate (100 bytes a row) does not fit: out of core
    big = pd.DataFrame({"board_id": np.arange(3_000_000) % 1000, "pin_id": np.arange(3_000_000) % 7919})
    big.to_parquet(tmp_path / "big.parquet", index=False)
    g, r = from_collections(tmp_path / "big.parquet", out=tmp_path / "g2", max_memory="256M")
    assert r.method == "out of core" and "over --max-memory 256.0 MB" in r.method_note
    assert g.num_edges("in") == 3_000_000 and r.counts == {}
    with pytest.raises(ValueError, match="pass out=DIR"):
        from_collections(df, method="out-of-core")
    with pytest.raises(ValueError, match="not a size"):
        from_collections(tmp_path / "m.parquet", out=tmp_path / "g3", max_memory="lots")


def test_one_wide_spill_file_is_split_and_gives_the_same_graph(tmp_path):
    # every source code falls in the scan's first spill file, which is then split by key ranges
    df, items, board_t = messy_table(seed=5)
    kw = dict(weight="w", timestamp="ts", consent="ok", min_board_size=2, on_error="skip")
    wide = StreamTuning(1 << 30, rows_per_batch=64, bucket_width=1 << 20, capacity=150)
    assert_same_build(from_collections(df, method="memory", **kw),
                      from_collections(df, method="out-of-core", out=tmp_path / "g", max_memory=wide, **kw))


def test_unreadable_files_raise_the_in_memory_errors(tmp_path):
    from boardgraph.graph.errors import TableReadError
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    (tmp_path / "latin.csv").write_bytes("board_id,pin_id\nb1,caf\xe9\nb1,p2\n".encode("latin-1"))
    (tmp_path / "ragged.csv").write_text('board_id,pin_id\nb1,"p1\n')
    cases = [("empty.csv", {}, r"edge table empty.csv is empty \(no header line\)"),
             ("broken.parquet", {}, r"edge table broken.parquet is not a readable Parquet file"),
             ("latin.csv", {}, r"edge table latin.csv is not utf-8 text"),
             ("latin.csv", {"encoding": "klingon"}, r"unknown encoding 'klingon'"),
             ("ragged.csv", {}, r"edge table ragged.csv cannot be parsed as CSV")]
    for name, kw, pattern in cases:
        for method in ("memory", "out-of-core"):
            with pytest.raises(TableReadError, match=pattern):
                from_collections(tmp_path / name, method=method, out=tmp_path / "g", max_memory=TINY, **kw)
    g, _ = from_collections(tmp_path / "latin.csv", encoding="latin-1", method="out-of-core", out=tmp_path / "g",
                            max_memory=TINY)
    assert g.ids("pin").tolist() == ["caf\xe9", "p2"]


def test_integer_ids_with_nulls_stay_integers(tmp_path):
    # pandas reads an int64 Parquet column with nulls as floats, so in memory the ids become 7.0;
    # out of core they stay 7; the graph and the report are otherwise the same
    df = pd.DataFrame({"board_id": pd.array([1, 1, 2, None, 2, 3], dtype="Int64"),
                       "pin_id": pd.array([7, 8, 7, 9, None, 8], dtype="Int64")})
    df.to_parquet(tmp_path / "m.parquet", index=False)
    mem = from_collections(tmp_path / "m.parquet", on_error="skip", method="memory")
    ooc = from_collections(tmp_path / "m.parquet", on_error="skip", method="out-of-core", out=tmp_path / "g",
                           max_memory=TINY)
    assert mem[0].ids("pin").tolist() == [7.0, 8.0] and ooc[0].ids("pin").tolist() == [7, 8]
    assert ooc[0].ids("pin").dtype == np.int64
    assert mem[1].counts == ooc[1].counts == {"null_board_id": 1, "null_pin_id": 1}
    assert mem[1].examples == ooc[1].examples
    for k, v in mem[0].relation(("pin", "in", "board")).tensors().items():
        assert bool((ooc[0].relation(("pin", "in", "board")).tensors()[k] == v).all()), k
