"""Build a :class:`PinBoardGraph` from the tables users have.

* :func:`from_collections` — one row per membership (wishlists, lookbooks, outfits, bundles).
* :func:`from_interactions` — one row per user action on an item (saves, purchases).

Both accept DataFrames or CSV / Parquet paths, optional item and board tables with text, image,
categorical and numeric columns, and ``on_error="raise" | "skip"``. In ``raise`` mode the first
bad value raises a specific :class:`~boardgraph.graph.errors.BuildError` naming the column, the
rows and the fix; in ``skip`` mode bad rows are dropped (bad values set missing) and counted in
the returned :class:`BuildReport`. Duplicate memberships are always de-duplicated and counted.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from .errors import (BuildError, DuplicateIdError, ImageReadError, MalformedValueError, NullIdError,
                     SchemaError, UnknownIdError, format_rows)
from .idmap import IdMap
from .report import BuildReport
from .store import PinBoardGraph

__all__ = ["from_collections", "from_interactions", "read_table", "parse_feature_columns", "BuildReport"]

_CURRENCY = r"[\s$€£¥,]|USD|EUR|GBP"


def read_table(obj: Any, what: str) -> pd.DataFrame:
    """A DataFrame from a DataFrame, or a path to a ``.csv``/``.tsv``/``.parquet``/``.pq`` file."""
    if isinstance(obj, pd.DataFrame):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        p = Path(obj)
        if not p.exists():
            raise FileNotFoundError(f"{what} table {p} does not exist; pass a DataFrame or an existing CSV/Parquet path")
        suffix = p.suffix.lower()
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(p)
        if suffix in (".csv", ".tsv", ".txt"):
            df = pd.read_csv(p, sep="\t" if suffix == ".tsv" else ",", low_memory=False)
            df.attrs["source_csv"] = str(p)
            return df
        raise SchemaError(f"{what} table {p}: unknown file type {suffix!r}", fix="use .csv, .tsv or .parquet")
    raise TypeError(f"{what} must be a pandas DataFrame or a CSV/Parquet path, got {type(obj).__name__}")


class _Checker:
    """Raises (``on_error="raise"``) or drops-and-counts (``"skip"``) bad rows of one table."""

    def __init__(self, on_error: str, report: BuildReport) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.skip = on_error == "skip"
        self.report = report

    def where(self, df: pd.DataFrame, labels: list[Any], n: int) -> str:
        s = format_rows(labels, n)
        src = df.attrs.get("source_csv")
        if src is not None and isinstance(df.index, pd.RangeIndex):
            lines = ", ".join(str(int(i) + 2) for i in labels[:5])
            s += f" (line {lines} of {Path(src).name})"
        return s

    def check(self, df: pd.DataFrame, bad: np.ndarray, exc: type[BuildError], what: str, column: str | None,
              fix: str, reason: str | None = None) -> np.ndarray:
        """Handle rows where ``bad`` (bool ``[len(df)]``) is set; returns the mask of rows to keep."""
        n = int(bad.sum())
        if n == 0:
            return ~bad
        labels = df.index[bad][:10].tolist()
        msg = f"{what} in {self.where(df, labels, n)}"
        if not self.skip:
            raise exc(msg, column=column, rows=labels, fix=fix + " (or pass on_error='skip' to drop and count them)")
        self.report.add(reason or exc.reason, n, labels, msg)
        return ~bad


def _require(df: pd.DataFrame, cols: Sequence[str | None], what: str, hint: str) -> None:
    missing = [c for c in cols if c is not None and c not in df.columns]
    if missing:
        raise SchemaError(f"{what} table has no column {missing[0]!r} (it has {list(df.columns)})",
                          column=missing[0], fix=hint)


def _null_ids(codes: np.ndarray, uniques: pd.Index) -> np.ndarray:
    """Rows whose id is null (code -1) or an empty / blank string (checked once per distinct id)."""
    bad = codes < 0
    if uniques.dtype == object or pd.api.types.is_string_dtype(uniques.dtype):
        stripped = pd.Series(uniques, copy=False).str.strip()  # non-strings give NaN: not blank
        blank = np.asarray((stripped == "").fillna(False), bool)
        if blank.any():
            bad |= np.isin(codes, np.flatnonzero(blank))
    return bad


def _parse_numeric(col: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """float64 values of a numeric column ("$8.99", "1,200" accepted) and the mask of malformed cells."""
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        return col.astype("float64"), np.zeros(len(col), bool)
    s = col.astype("string").str.replace(_CURRENCY, "", regex=True).str.strip()
    blank = s.isna() | (s == "")
    val = pd.to_numeric(s.mask(blank), errors="coerce")
    bad = np.asarray(val.isna() & ~blank, bool)
    return val.astype("float64"), bad


def _image_ok(refs: pd.Series, root: str | None) -> np.ndarray:
    """Mask of image cells that are missing-as-null or readable (bytes, or an existing readable file)."""
    def ok(v: Any) -> bool:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return True
        if isinstance(v, (bytes, bytearray, memoryview)):
            return len(v) > 0
        if isinstance(v, (str, os.PathLike)):
            p = Path(root, v) if root and not os.path.isabs(v) else Path(v)
            return p.is_file() and os.access(p, os.R_OK)
        return False
    return np.fromiter((ok(v) for v in refs.to_numpy(dtype=object)), bool, len(refs))


@dataclass
class _FeatureSpec:
    text: Sequence[str] = ()
    image: str | None = None
    categorical: Sequence[str] = ()
    numeric: Sequence[str] = ()
    labels: Sequence[str] = ()

    def kinds(self) -> dict[str, str]:
        out = {c: "text" for c in self.text}
        out.update({c: "categorical" for c in self.categorical})
        out.update({c: "numeric" for c in self.numeric})
        out.update({c: "label" for c in self.labels})
        if self.image:
            out[self.image] = "image"
        return out


def parse_feature_columns(table: pd.DataFrame, kinds: dict[str, str], checker: _Checker | None = None,
                          image_root: str | None = None) -> pd.DataFrame:
    """Parse feature columns of ``table`` by kind; malformed numerics / unreadable images raise,
    or (with a skip-mode checker) become missing and are counted. Returns the parsed columns."""
    checker = checker or _Checker("raise", BuildReport())
    out = {}
    for c, kind in kinds.items():
        if c not in table.columns:
            continue
        col = table[c]
        if kind == "numeric":
            val, bad = _parse_numeric(col)
            if bad.any():
                first = col[bad].iloc[0]
                checker.check(table, bad, MalformedValueError, f"column {c!r}: value {first!r} is not a number",
                              c, f"write plain numbers in {c!r} (currency signs and thousands commas are accepted)",
                              reason=f"malformed_{c}")
                val = val.mask(bad)
            out[c] = val.to_numpy()
        elif kind == "image":
            bad = ~_image_ok(col, image_root)
            if bad.any():
                first = col[bad].iloc[0]
                checker.check(table, bad, ImageReadError, f"column {c!r}: image {first!r} cannot be read", c,
                              "check the file exists and is readable (relative paths resolve against image_root)",
                              reason=f"unreadable_{c}")
                col = col.where(~bad, None)
            if image_root:
                col = col.map(lambda v: os.path.join(image_root, v) if isinstance(v, str) and not os.path.isabs(v) else v)
            out[c] = col.to_numpy(dtype=object)
        else:
            out[c] = col.to_numpy() if kind != "categorical" else col.astype("category").values
    return pd.DataFrame(out, index=pd.RangeIndex(len(table)))


def _node_table(kind: str, key: str, ids_codes: np.ndarray, ids_uniques: pd.Index, table: Any,
                spec: _FeatureSpec, edges: pd.DataFrame, checker: _Checker, image_root: str | None):
    """Resolve one node type: its ordered ids, the node index of every edge row (-1 = unknown),
    and its parsed feature table (or None)."""
    if table is None:
        feats = None
        cols = [c for c in spec.kinds() if c in edges.columns]
        if cols:  # features given inline in the edge table: first row per node
            first = pd.Series(np.arange(len(ids_codes))).groupby(ids_codes).first()
            first = first[first.index >= 0]
            feats = parse_feature_columns(edges.iloc[first.to_numpy()][cols], spec.kinds(), checker, image_root)
        missing = [c for c in spec.kinds() if c not in edges.columns]
        if missing:
            raise SchemaError(f"{kind} feature column {missing[0]!r} is not in the table and no {kind} table was given",
                              column=missing[0], fix=f"pass a {kind} table (items=/boards=) or drop the column name")
        return IdMap(ids_uniques, kind, unique=True), ids_codes.astype(np.int64, copy=False), feats
    t = read_table(table, kind)
    _require(t, [key] + list(spec.kinds()), kind, f"name the {kind} id column with the same name as in the edge table")
    tk = t[key]
    codes, uniq = pd.factorize(tk)
    keep = checker.check(t, _null_ids(codes, pd.Index(uniq)), NullIdError, f"{kind} table column {key!r}: null or empty id",
                         key, f"give every {kind} row an id", reason=f"null_{kind}_id")
    dup = np.asarray(tk.duplicated(), bool) & keep
    keep &= checker.check(t, dup, DuplicateIdError, f"{kind} table column {key!r}: id {tk[dup].iloc[0] if dup.any() else ''!r} "
                          f"listed twice", key, f"give each {kind} one row", reason=f"duplicate_{kind}_row")
    if not keep.all():
        t = t[keep]
    t_index = pd.Index(t[key].to_numpy())
    pos_of_unique = t_index.get_indexer(ids_uniques)
    node_of_row = np.where(ids_codes >= 0, pos_of_unique[np.maximum(ids_codes, 0)], -1)
    feats = parse_feature_columns(t, spec.kinds(), checker, image_root)
    return IdMap(t_index, kind, unique=True), node_of_row.astype(np.int64), feats


def _edge_attr_tensors(df: pd.DataFrame, weight: str | None, timestamp: str | None, order: str | None,
                       checker: _Checker, keep: np.ndarray) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    attrs = {}
    for name, col, dtype in (("weight", weight, torch.float32), ("timestamp", timestamp, torch.int64),
                             ("order", order, torch.int64)):
        if col is None:
            continue
        c = df[col]
        if name == "timestamp" and not pd.api.types.is_numeric_dtype(c.dtype):
            parsed = pd.to_datetime(c, errors="coerce", utc=True)
            bad = np.asarray(parsed.isna(), bool)
            secs = (parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
            vals = secs.fillna(0).astype("int64").to_numpy()
        else:
            num, bad = _parse_numeric(c)
            bad |= np.asarray(num.isna(), bool)
            vals = num.fillna(0).to_numpy()
        keep &= checker.check(df, bad & keep, MalformedValueError, f"column {col!r}: value {c[bad].iloc[0] if bad.any() else ''!r} "
                              f"is not a valid {name}", col, f"give every row a {name}", reason=f"malformed_{col}")
        attrs[name] = torch.as_tensor(np.array(vals)).to(dtype)
    return attrs, keep


def _add_features(graph: PinBoardGraph, ntype: str, feats: pd.DataFrame | None, spec: _FeatureSpec) -> None:
    if feats is None:
        return
    kinds = spec.kinds()
    f = graph.features(ntype)
    for c in feats.columns:
        f.add_column(c, feats[c], kinds[c])


def from_collections(memberships: Any, collection: str = "board_id", item: str = "pin_id", *,
                     items: Any = None, boards: Any = None,
                     text: Sequence[str] = (), image: str | None = None, categorical: Sequence[str] = (),
                     numeric: Sequence[str] = (), labels: Sequence[str] = (),
                     board_text: Sequence[str] = (), board_categorical: Sequence[str] = (),
                     board_numeric: Sequence[str] = (), board_labels: Sequence[str] = (),
                     weight: str | None = None, timestamp: str | None = None, order: str | None = None,
                     consent: str | None = None, min_board_size: int = 1, image_root: str | None = None,
                     on_error: str = "raise") -> tuple[PinBoardGraph, BuildReport]:
    """Build a Pin-Board graph from a membership table (one row per pin on a board).

    Args:
        memberships: DataFrame or CSV/Parquet path with columns ``collection`` and ``item``.
        collection, item: names of the board-id and pin-id columns (ids may be strings or ints).
        items: optional pin table keyed by ``item``; its row order becomes the pin index order and
            pins without memberships are kept (cold-start pins). Without it, pins are the distinct
            ids of ``memberships`` in order of first appearance, and feature columns named below
            are read from ``memberships`` (first row per pin).
        boards: optional board table keyed by ``collection`` (same rules).
        text, image, categorical, numeric, labels: pin feature columns. ``image`` holds file paths
            (checked to be readable, relative to ``image_root``) or encoded bytes; ``numeric``
            accepts "$8.99" and "1,200"; ``labels`` are ground truth kept for evaluation only.
        board_text, board_categorical, board_numeric, board_labels: board feature columns.
        weight, timestamp, order: membership columns stored as edge attributes
            (float32, int64 seconds since the epoch, int64).
        consent: optional column; only rows whose value is true are used (privacy).
        min_board_size: boards with fewer distinct pins are dropped (privacy / noise): their
            memberships and, when ``boards`` is given, their rows of it (counted as
            ``board_table_below_min_size``); boards the table lists without any membership stay.
        on_error: ``"raise"`` or ``"skip"`` (drop bad rows, count them in the report).

    Returns:
        ``(graph, report)``: a graph with node types ``pin`` and ``board`` and relation
        ``("pin", "in", "board")`` (reverse ``("board", "has", "pin")``), and the BuildReport.

    Raises:
        SchemaError, NullIdError, UnknownIdError, DuplicateIdError, MalformedValueError,
        ImageReadError: in ``raise`` mode, naming the column, rows and fix.
    """
    return _build(memberships, src=item, dst=collection, src_type="pin", dst_type="board", rel=("in", "has"),
                  src_table=items, dst_table=boards,
                  src_spec=_FeatureSpec(text, image, categorical, numeric, labels),
                  dst_spec=_FeatureSpec(board_text, None, board_categorical, board_numeric, board_labels),
                  weight=weight, timestamp=timestamp, order=order, consent=consent,
                  min_group=min_board_size, image_root=image_root, on_error=on_error)


def from_interactions(interactions: Any, user: str = "user_id", item: str = "pin_id", *,
                      items: Any = None, users: Any = None, relation: str = "saved", reverse: str = "saved_by",
                      text: Sequence[str] = (), image: str | None = None, categorical: Sequence[str] = (),
                      numeric: Sequence[str] = (), labels: Sequence[str] = (),
                      weight: str | None = None, timestamp: str | None = None, consent: str | None = None,
                      min_users: int = 1, image_root: str | None = None,
                      on_error: str = "raise") -> tuple[PinBoardGraph, BuildReport]:
    """Build a User-Pin graph from an interaction table (saves, purchases, clicks).

    Same conventions as :func:`from_collections`; node types ``user`` and ``pin``, relation
    ``("user", relation, "pin")`` with reverse ``("pin", reverse, "user")``. ``min_users`` drops
    pins that fewer distinct users interacted with (k-anonymity for rare items), from ``items`` too
    (counted as ``pin_table_below_min_size``). Repeated
    (user, pin) rows are de-duplicated (the first row's attributes are kept) and counted.
    """
    return _build(interactions, src=user, dst=item, src_type="user", dst_type="pin", rel=(relation, reverse),
                  src_table=users, dst_table=items, src_spec=_FeatureSpec(),
                  dst_spec=_FeatureSpec(text, image, categorical, numeric, labels),
                  weight=weight, timestamp=timestamp, order=None, consent=consent,
                  min_group=min_users, image_root=image_root, on_error=on_error)


def _build(edges_obj: Any, *, src: str, dst: str, src_type: str, dst_type: str, rel: tuple[str, str],
           src_table: Any, dst_table: Any, src_spec: _FeatureSpec, dst_spec: _FeatureSpec,
           weight: str | None, timestamp: str | None, order: str | None, consent: str | None,
           min_group: int, image_root: str | None, on_error: str) -> tuple[PinBoardGraph, BuildReport]:
    from .privacy import filter_consent, filter_min_group_size

    report = BuildReport()
    checker = _Checker(on_error, report)
    df = read_table(edges_obj, "edge")
    report.rows_in = len(df)
    hint = f"pass the column names, e.g. {dst}=... / {src}=..."
    _require(df, [src, dst, weight, timestamp, order, consent], "edge", hint)
    if consent is not None:
        before = df.index
        df, n = filter_consent(df, consent)
        report.add("no_consent", n, rows=before.difference(df.index, sort=False)[:10].tolist(),
                   message=f"column {consent!r} is not true")
    if min_group > 1:  # groups are dst nodes (boards, or items), members are distinct src nodes
        k = min_group
        before = df.index
        groups_before = pd.Index(df[dst].dropna().unique())
        df, n = filter_min_group_size(df, dst, src, k, nulls="keep")  # null ids are checked below
        what = f"{dst_type} with fewer than {k} distinct {src_type}s"
        report.add(f"{dst_type}_below_min_size", n, rows=before.difference(df.index, sort=False)[:10].tolist(),
                   message=what)
        if dst_table is not None:
            # a group dropped for its size must not survive as a node of its own table (with its
            # features) either: the filter is a privacy rule, not only a membership rule
            dropped = groups_before.difference(pd.Index(df[dst].dropna().unique()))
            if len(dropped):
                t = read_table(dst_table, dst_type)
                _require(t, [dst], dst_type, f"name the {dst_type} id column with the same name as in the edge table")
                gone = t[dst].isin(dropped).to_numpy()
                report.add(f"{dst_type}_table_below_min_size", int(gone.sum()), rows=t.index[gone][:10].tolist(),
                           message=f"{dst_type} table rows of {what} (removed with their memberships)")
                dst_table = t[~gone]

    s_codes, s_uniq = pd.factorize(df[src])
    d_codes, d_uniq = pd.factorize(df[dst])
    keep = checker.check(df, _null_ids(s_codes, pd.Index(s_uniq)), NullIdError, f"column {src!r}: null or empty id",
                         src, f"give every row a {src_type} id", reason=f"null_{src_type}_id")
    keep &= checker.check(df, _null_ids(d_codes, pd.Index(d_uniq)) & keep, NullIdError,
                          f"column {dst!r}: null or empty id", dst, f"give every row a {dst_type} id",
                          reason=f"null_{dst_type}_id")
    s_ids, s_node, s_feats = _node_table(src_type, src, s_codes, pd.Index(s_uniq), src_table, src_spec, df, checker, image_root)
    d_ids, d_node, d_feats = _node_table(dst_type, dst, d_codes, pd.Index(d_uniq), dst_table, dst_spec, df, checker, image_root)
    for node, col, kind, tbl in ((s_node, src, src_type, "items" if src_type == "pin" else "users"),
                                 (d_node, dst, dst_type, "boards" if dst_type == "board" else "items")):
        unknown = (node < 0) & keep
        if unknown.any():
            first = df[col][unknown].iloc[0]
            keep &= checker.check(df, unknown, UnknownIdError, f"column {col!r}: {kind} id {first!r} is not in the "
                                  f"{kind} table", col, f"add the {kind} to the {tbl} table or remove the row",
                                  reason=f"unknown_{kind}")
    attrs, keep = _edge_attr_tensors(df, weight, timestamp, order, checker, keep)
    graph = PinBoardGraph()
    graph.add_node_type(src_type, s_ids)
    graph.add_node_type(dst_type, d_ids)
    rows = np.flatnonzero(keep) if not keep.all() else None
    s_t = torch.from_numpy(s_node if rows is None else s_node[rows])
    d_t = torch.from_numpy(d_node if rows is None else d_node[rows])
    if rows is not None:
        attrs = {k2: v[torch.from_numpy(rows)] for k2, v in attrs.items()}
    kept = graph.add_relation((src_type, rel[0], dst_type), s_t, d_t, reverse=rel[1], attrs=attrs)
    n_dup = len(s_t) - len(kept)
    if n_dup:
        dup = np.ones(len(s_t), bool)
        dup[kept.numpy()] = False
        labels = df.index[(rows if rows is not None else np.arange(len(df)))[dup][:10]].tolist()
        report.add("duplicate_edge", n_dup, labels, f"the same ({src}, {dst}) pair appears again; the first row is kept")
    _add_features(graph, src_type, s_feats, src_spec)
    _add_features(graph, dst_type, d_feats, dst_spec)
    report.nodes = {t: graph.num_nodes(t) for t in graph.node_types}
    report.edges = {rel[0]: graph.num_edges((src_type, rel[0], dst_type))}
    return graph, report
