"""Build a :class:`PinBoardGraph` from the tables users have.

* :func:`from_collections` — one row per membership (wishlists, lookbooks, outfits, bundles).
* :func:`from_interactions` — one row per user action on an item (saves, purchases).

Both accept DataFrames or CSV / Parquet paths, optional item and board tables with text, image,
categorical and numeric columns, and ``on_error="raise" | "skip"``. In ``raise`` mode the first
bad value raises a specific :class:`~boardgraph.graph.errors.BuildError` naming the column, the
rows and the fix; in ``skip`` mode bad rows are dropped (bad feature values set missing) and
counted in the returned :class:`BuildReport`. Duplicate memberships are always de-duplicated and
counted. Every row of the edge table ends up either as an edge or counted under a reason:
``report.rows_in == sum(report.edges.values()) + report.n_dropped``.

What counts as bad:

* ids: a null or blank id. CSV id columns are read as the text written (``"007"``, ``"7"`` and
  ``"1e3"`` are three ids; ``"NA"``, ``"null"`` and ``"None"`` are ids); only an empty cell is a
  missing id. Parquet and DataFrame ids keep their types.
* numbers (weight, timestamp, order, numeric features): text that is not a number, and values that
  are not finite: ``inf``, ``-inf``, overflows such as ``1e400``, and beyond the float32 range for
  weights and features (the dtype the models read). Edge attributes make their row bad; a bad
  feature value is set missing and counted (its node is kept).
* images: a path that resolves outside ``image_root``, a file that is missing or that PIL cannot
  open and verify, or one over ``max_image_pixels``; set missing and counted, like other features.

This module assembles the graph; the parts live beside it: :mod:`~boardgraph.graph.tables` reads
the tables, :mod:`~boardgraph.graph.checks` checks ids and numbers, :mod:`~boardgraph.graph.row_filters`
drops rows (node-table ids, edge attributes, consent, minimum group size),
:mod:`~boardgraph.graph.feature_columns` parses feature columns and
:mod:`~boardgraph.graph.image_checks` checks images.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from boardgraph._io import check_output

from .build_report import BuildReport
from .checks import Checker, lookup_ids, require_columns
from .errors import EmptyGraphError, SchemaError
from .feature_columns import FeatureSpec, fill_features, parse_feature_columns
from .idmap import IdMap
from .image_checks import DEFAULT_MAX_IMAGE_PIXELS, ImageRules
from .row_filters import (apply_consent, apply_min_group, check_null_ids, check_unknown_ids, edge_attr_tensors,
                          valid_table_rows)
from .io import GRAPH_ARTEFACT
from .store import PinBoardGraph
from .stream import StreamTuning, build_out_of_core, choose_method
from .tables import read_table

__all__ = ["from_collections", "from_interactions", "read_table", "parse_feature_columns", "BuildReport",
           "DEFAULT_MAX_IMAGE_PIXELS"]

log = logging.getLogger(__name__)


# -- public builders ------------------------------------------------------------------------------

def from_collections(memberships: Any, collection: str = "board_id", item: str = "pin_id", *,
                     items: Any = None, boards: Any = None,
                     text: Sequence[str] = (), image: str | None = None, categorical: Sequence[str] = (),
                     numeric: Sequence[str] = (), labels: Sequence[str] = (),
                     board_text: Sequence[str] = (), board_categorical: Sequence[str] = (),
                     board_numeric: Sequence[str] = (), board_labels: Sequence[str] = (),
                     weight: str | None = None, timestamp: str | None = None, order: str | None = None,
                     consent: str | None = None, min_board_size: int = 1, image_root: str | None = None,
                     max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS, allow_outside_root: bool = False,
                     encoding: str = "utf-8", on_error: str = "raise", out: str | os.PathLike | None = None,
                     method: str = "auto", max_memory: int | str | StreamTuning | None = None,
                     overwrite: bool = True) -> tuple[PinBoardGraph, BuildReport]:
    """Build a Pin-Board graph from a membership table (one row per pin on a board).

    Args:
        memberships: DataFrame or CSV/Parquet path with columns ``collection`` and ``item``.
        collection, item: names of the board-id and pin-id columns. Ids from a CSV are strings,
            exactly as written (``"007"`` and ``"7"`` are two pins; ``"NA"`` is an id; an empty
            cell is a missing id); Parquet and DataFrame ids keep their type (e.g. int64).
        items: optional pin table keyed by ``item``; its row order becomes the pin index order and
            pins without memberships are kept (cold-start pins). Without it, pins are the distinct
            ids of the kept rows of ``memberships`` in order of first appearance (ids seen only on
            dropped rows are not nodes), and feature columns named below are read from
            ``memberships`` (first kept row per pin).
        boards: optional board table keyed by ``collection`` (same rules).
        text, image, categorical, numeric, labels: pin feature columns. ``image`` holds file paths
            (relative to ``image_root``) or encoded bytes; each is opened and verified by PIL at
            build time. ``numeric`` accepts "$8.99" and "1,200"; ``labels`` are ground truth kept
            for evaluation only.
        board_text, board_categorical, board_numeric, board_labels: board feature columns.
        weight, timestamp, order: membership columns stored as edge attributes ``[E]``
            (float32; int64 seconds since the epoch, from numbers or date strings; int64).
            ``weight`` accepts "$0.5" and "1,200" like ``numeric``.
        consent: optional column; only rows whose value is true are used (privacy). Accepted:
            true/false, yes/no (any case), 1/0 (numbers or text), bools; empty means no consent.
        min_board_size: boards with fewer distinct pins are dropped (privacy / noise): their
            memberships and, when ``boards`` is given, their rows of it (counted as
            ``board_table_below_min_size``); boards the table lists without any membership stay.
        image_root: folder that relative image paths resolve against; paths that resolve outside
            it (``../``, absolute paths, symlinks) are refused unless ``allow_outside_root``.
            ``None``: paths are used as written, with no confinement.
        max_image_pixels: images with more pixels (width x height) are refused; default PIL's
            decompression-bomb limit, 89,478,485. ``None`` turns this check off (PIL's own limit,
            twice that, still refuses bigger images).
        allow_outside_root: accept image paths outside ``image_root``.
        encoding: text encoding of CSV tables (memberships, items, boards).
        on_error: ``"raise"`` or ``"skip"``. In skip mode a bad membership row (null or unknown
            id, bad weight/timestamp/order, unrecognised consent) is dropped, a bad node-table
            row (null or repeated id) is dropped, and a bad feature value (malformed or non-finite
            number, refused image) is set missing with its node kept; each is counted by reason.
        out: a folder to save the graph to (atomically; a saved graph there is replaced when
            ``overwrite``). Needed for the out-of-core path, which writes it as it goes; the graph
            returned is then memory-mapped from it.
        method: ``"auto"`` (default): in memory when the estimated peak (about 100 bytes a row,
            plus 60 per text id column) fits ``max_memory``, out of core otherwise (with ``out``);
            ``"memory"``; or ``"out-of-core"``: read the table in batches and spill to disk beside
            ``out``, with the same graph and report as in memory. Its input is a Parquet file, a
            folder of Parquet shards, a CSV/TSV file or a DataFrame, and features come from node
            tables (``items=``/``boards=``), which are read in memory. ``report.method`` says
            which path was taken and why.
        max_memory: the memory limit, bytes or text such as ``"4G"`` (default: half the memory
            available), or a :class:`~boardgraph.graph.stream.StreamTuning` that also sets the
            batch and spill sizes. An out-of-core build stays within it, but for its scan, which
            also holds the id dictionaries (about 50-60 bytes per distinct id while reading, 8
            after, plus the text of text ids) and one batch, and about 40 bytes per node of
            counters.
        overwrite: with ``out``, replace a graph saved there (nothing else is ever replaced).

    Returns:
        ``(graph, report)``: a graph with node types ``pin`` and ``board`` and relation
        ``("pin", "in", "board")`` (reverse ``("board", "has", "pin")``), and the BuildReport, where
        ``report.rows_in == report.edges["in"] + report.n_dropped``. A graph with fewer than 2
        pins or 2 boards is built, with a line in ``report.warnings`` (and a logged warning).

    Raises:
        SchemaError, NullIdError, UnknownIdError, DuplicateIdError, MalformedValueError,
        ImageReadError (ImageTooLargeError, PathOutsideRootError): in ``raise`` mode, naming the
        column, rows and fix.
        EmptyGraphError: in either mode, when the table has no rows or none is left.
        TableReadError: a table file cannot be read (empty, wrong encoding, broken CSV/Parquet).
        FileNotFoundError: a table path does not exist.
        ValueError: ``on_error`` or ``max_image_pixels`` is not a valid setting.
    """
    return _build(memberships, src=_Side("pin", item, FeatureSpec(text, image, categorical, numeric, labels), items),
                  dst=_Side("board", collection,
                            FeatureSpec(board_text, None, board_categorical, board_numeric, board_labels), boards),
                  rel=("in", "has"), weight=weight, timestamp=timestamp, order=order, consent=consent,
                  min_group=min_board_size, min_name="min_board_size",
                  images=ImageRules(image_root, max_image_pixels, allow_outside_root), encoding=encoding,
                  on_error=on_error, out=_Out(out, method, max_memory, overwrite))


def from_interactions(interactions: Any, user: str = "user_id", item: str = "pin_id", *,
                      items: Any = None, users: Any = None, relation: str = "saved", reverse: str = "saved_by",
                      text: Sequence[str] = (), image: str | None = None, categorical: Sequence[str] = (),
                      numeric: Sequence[str] = (), labels: Sequence[str] = (),
                      weight: str | None = None, timestamp: str | None = None, consent: str | None = None,
                      min_users: int = 1, image_root: str | None = None,
                      max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS, allow_outside_root: bool = False,
                      encoding: str = "utf-8", on_error: str = "raise", out: str | os.PathLike | None = None,
                      method: str = "auto", max_memory: int | str | StreamTuning | None = None,
                      overwrite: bool = True) -> tuple[PinBoardGraph, BuildReport]:
    """Build a User-Pin graph from an interaction table (saves, purchases, clicks).

    Same conventions and options as :func:`from_collections` (``out``, ``method`` and ``max_memory``
    included); node types ``user`` and ``pin``,
    relation ``("user", relation, "pin")`` with reverse ``("pin", reverse, "user")``, and
    ``report.rows_in == report.edges[relation] + report.n_dropped``. ``min_users`` drops pins
    that fewer distinct users interacted with (k-anonymity for rare items), from ``items`` too
    (counted as ``pin_table_below_min_size``). Repeated (user, pin) rows are de-duplicated (the
    first row's attributes are kept) and counted.
    """
    return _build(interactions, src=_Side("user", user, FeatureSpec(), users),
                  dst=_Side("pin", item, FeatureSpec(text, image, categorical, numeric, labels), items),
                  rel=(relation, reverse), weight=weight, timestamp=timestamp, order=None, consent=consent,
                  min_group=min_users, min_name="min_users",
                  images=ImageRules(image_root, max_image_pixels, allow_outside_root), encoding=encoding,
                  on_error=on_error, out=_Out(out, method, max_memory, overwrite))


# -- assembly -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Side:
    """One node type of a build: its name, its id column in the edge table, its feature columns and
    its node table as given (a DataFrame, a CSV/Parquet path, or ``None``)."""

    ntype: str
    col: str
    spec: FeatureSpec
    table: Any = None


@dataclass(frozen=True)
class _Out:
    """Where and how a build goes: the output folder (or None), the method, the memory limit, overwrite."""

    folder: str | os.PathLike | None = None
    method: str = "auto"
    max_memory: int | str | StreamTuning | None = None
    overwrite: bool = True


def _build(edges_obj: Any, *, src: _Side, dst: _Side, rel: tuple[str, str], weight: str | None,
           timestamp: str | None, order: str | None, consent: str | None, min_group: int, min_name: str,
           images: ImageRules, encoding: str, on_error: str, out: _Out) -> tuple[PinBoardGraph, BuildReport]:
    """Both builders: relation ``(src.ntype, rel[0], dst.ntype)`` with reverse ``rel[1]``, in memory
    or out of core (:func:`~boardgraph.graph.stream.choose_method`), saved to ``out.folder`` if given."""
    if out.folder is not None:
        check_output(out.folder, GRAPH_ARTEFACT, out.overwrite)  # before the slow part
    cols = [c for c in (src.col, dst.col) if c]
    path, why, limit = choose_method(edges_obj, out.method, out.max_memory, out.folder, cols, encoding)
    if path == "out of core":
        report = build_out_of_core(edges_obj, out.folder, sides=(src, dst), rel=rel,
                                   attrs={"weight": weight, "timestamp": timestamp, "order": order}, consent=consent,
                                   min_group=min_group, min_name=min_name, images=images, encoding=encoding,
                                   on_error=on_error, overwrite=out.overwrite,
                                   tuning=out.max_memory if isinstance(out.max_memory, StreamTuning)
                                   else StreamTuning(limit))
        report.method_note = why
        return PinBoardGraph.load(out.folder, mmap=True), report
    graph, report = _build_in_memory(edges_obj, src=src, dst=dst, rel=rel, weight=weight, timestamp=timestamp,
                                     order=order, consent=consent, min_group=min_group, min_name=min_name,
                                     images=images, encoding=encoding, on_error=on_error)
    report.method, report.method_note = "in memory", why
    if out.folder is not None:
        graph.save(out.folder, overwrite=out.overwrite)
    return graph, report


def _build_in_memory(edges_obj: Any, *, src: _Side, dst: _Side, rel: tuple[str, str], weight: str | None,
                     timestamp: str | None, order: str | None, consent: str | None, min_group: int, min_name: str,
                     images: ImageRules, encoding: str, on_error: str) -> tuple[PinBoardGraph, BuildReport]:
    """The in-memory build.

    The checks run in a fixed order (tables and columns, consent, ids, edge attributes, minimum
    group size, features), so the first error raised in ``raise`` mode is always the same one.
    """
    report = BuildReport()
    checker = Checker(on_error, report)
    df, name = _read_edges(edges_obj, src, dst, [weight, timestamp, order, consent], encoding, report)
    tables = _read_node_tables(df, (src, dst), encoding)
    if consent is not None:
        df = apply_consent(df, consent, checker, report)
    codes, keep = _check_ids(df, (src, dst), tables, checker)
    attrs, keep = edge_attr_tensors(df, weight, timestamp, order, checker, keep)
    if min_group > 1:  # groups are dst nodes (boards, or items), members are distinct src nodes
        keep, dst_t = apply_min_group(df, keep, dst.col, src.col, min_group, dst.ntype, src.ntype,
                                      tables.get(dst.ntype), report)
        if dst_t is not None:
            tables[dst.ntype] = dst_t
    if not keep.any():
        reasons = ", ".join(f"{r}: {n}" for r, n in report.dropped.items())
        raise EmptyGraphError(f"all {report.rows_in} rows of {name} were dropped ({reasons})", report=report,
                              fix=f"fix the rows counted under those reasons, or relax the filter that dropped them "
                                  f"(consent, {min_name})")
    nodes = [_nodes(s, *codes[s.ntype], tables.get(s.ntype), keep, df, checker, images) for s in (src, dst)]
    graph = _assemble(df, keep, attrs, (src, dst), rel, nodes, report)
    report.nodes = {t: graph.num_nodes(t) for t in graph.node_types}
    report.edges = {rel[0]: graph.num_edges((src.ntype, rel[0], dst.ntype))}
    report.warn_if_small()
    return graph, report


def _read_edges(obj: Any, src: _Side, dst: _Side, attr_cols: list[str | None], encoding: str,
                report: BuildReport) -> tuple[pd.DataFrame, str]:
    """The edge table (with its id and attribute columns, and at least one row) and its name in messages."""
    df = read_table(obj, "edge", ids=(src.col, dst.col), encoding=encoding)
    name = f"the edge table {Path(df.attrs['source']).name}" if "source" in df.attrs else "the edge table"
    report.rows_in = len(df)
    require_columns(df, [src.col, dst.col, *attr_cols], "edge",
                    f"pass the column names, e.g. {dst.col}=... / {src.col}=...")
    if len(df) == 0:
        raise EmptyGraphError(f"{name} has no rows", report=report,
                              fix=f"pass a table with one row per ({src.col}, {dst.col}) pair (a CSV needs rows "
                                  f"under its header)")
    return df, name


def _read_node_tables(df: pd.DataFrame, sides: Sequence[_Side], encoding: str) -> dict[str, pd.DataFrame]:
    """Node type -> its node table, for the sides given one; a side without one must find its
    feature columns in the edge table ``df``."""
    tables = {}
    for s in sides:
        if s.table is None:
            missing = [c for c in s.spec.kinds() if c not in df.columns]
            if missing:
                raise SchemaError(f"{s.ntype} feature column {missing[0]!r} is not in the table and no {s.ntype} "
                                  f"table was given", column=missing[0],
                                  fix=f"pass a {s.ntype} table (items=/boards=) or drop the column name")
        else:
            tables[s.ntype] = read_table(s.table, s.ntype, ids=(s.col,), encoding=encoding)
    return tables


def _check_ids(df: pd.DataFrame, sides: Sequence[_Side], tables: dict[str, pd.DataFrame],
               checker: Checker) -> tuple[dict[str, tuple[np.ndarray, pd.Index]], np.ndarray]:
    """Check the ids of the edge table ``df``: null ids, then ids missing from a node table.

    Node tables in ``tables`` are replaced by their rows with a usable id (:func:`valid_table_rows`).

    Returns:
        ``(codes, keep)``: node type -> (int64 code of each row's id ``[len(df)]``, -1 when null;
        the distinct ids), and the bool mask ``[len(df)]`` of rows still kept.
    """
    codes = {}
    keep = np.ones(len(df), bool)
    for s in sides:
        c, u = pd.factorize(df[s.col])
        codes[s.ntype] = (c, pd.Index(u))
        keep = check_null_ids(df, s.col, s.ntype, c, pd.Index(u), checker, keep)
    for s in sides:
        if s.ntype not in tables:
            continue
        t = tables[s.ntype] = valid_table_rows(s.ntype, s.col, tables[s.ntype], s.spec, checker)
        c, u = codes[s.ntype]
        keep = check_unknown_ids(df, s.col, s.ntype, c, u, pd.Index(t[s.col]), checker, keep)
    return codes, keep


def _nodes(side: _Side, codes: np.ndarray, uniques: pd.Index, table: pd.DataFrame | None, keep: np.ndarray,
           edges: pd.DataFrame, checker: Checker,
           images: ImageRules) -> tuple[pd.Index, np.ndarray, pd.DataFrame | None]:
    """The nodes of one side: ``(ids [m], node of every edge row int64 [len(edges)], features or None)``.

    With a node table the nodes are its rows, in order, and features come from it; without one,
    see :func:`_edge_nodes`.
    """
    if table is None:
        return _edge_nodes(codes, uniques, keep, side.spec, edges, checker, images)
    ids = pd.Index(table[side.col].to_numpy())
    feats = parse_feature_columns(table, side.spec.kinds(), checker, images.root, max_image_pixels=images.max_pixels,
                                  allow_outside_root=images.allow_outside_root)
    return ids, lookup_ids(ids, codes, uniques), feats


def _edge_nodes(codes: np.ndarray, uniques: pd.Index, keep: np.ndarray, spec: FeatureSpec, edges: pd.DataFrame,
                checker: Checker, rules: ImageRules) -> tuple[pd.Index, np.ndarray, pd.DataFrame | None]:
    """Nodes of a type without a node table: the distinct ids of the kept rows, in order of first
    appearance (ids seen only on dropped rows are not nodes); features from each one's first kept row.

    Returns ``(ids [m], node of every edge row int64 [len(edges)] (-1 on dropped rows), features or None)``.
    """
    rows = np.flatnonzero(keep)
    new_codes, used = pd.factorize(codes[rows])
    node_of_row = np.full(len(codes), -1, np.int64)
    node_of_row[rows] = new_codes
    feats = None
    cols = list(spec.kinds())
    if cols:
        _, first = np.unique(new_codes, return_index=True)
        feats = parse_feature_columns(edges.iloc[rows[first]][cols], spec.kinds(), checker, rules.root,
                                      max_image_pixels=rules.max_pixels, allow_outside_root=rules.allow_outside_root)
    return uniques.take(used), node_of_row, feats


def _assemble(edges: pd.DataFrame, keep: np.ndarray, attrs: dict[str, torch.Tensor], sides: tuple[_Side, _Side],
              rel: tuple[str, str], nodes: list[tuple[pd.Index, np.ndarray, pd.DataFrame | None]],
              report: BuildReport) -> PinBoardGraph:
    """The graph of the kept rows (``keep``, bool ``[len(edges)]``) of ``edges``: both node types,
    the relation with the rows' ``attrs`` (each ``[len(edges)]``), and the features of ``nodes``
    (one entry per side, as :func:`_nodes` returns). Repeated pairs are counted as ``duplicate_edge``."""
    (src, dst), ((s_ids, s_of_row, s_feats), (d_ids, d_of_row, d_feats)) = sides, nodes
    graph = PinBoardGraph()
    graph.add_node_type(src.ntype, IdMap(s_ids, src.ntype, unique=True))
    graph.add_node_type(dst.ntype, IdMap(d_ids, dst.ntype, unique=True))
    rows = np.flatnonzero(keep)
    s_t = torch.from_numpy(s_of_row[rows])
    d_t = torch.from_numpy(d_of_row[rows])
    attrs = {k: v[torch.from_numpy(rows)] for k, v in attrs.items()}
    kept = graph.add_relation((src.ntype, rel[0], dst.ntype), s_t, d_t, reverse=rel[1], attrs=attrs)
    n_dup = len(s_t) - len(kept)
    if n_dup:
        dup = np.ones(len(s_t), bool)
        dup[kept.numpy()] = False
        report.add("duplicate_edge", n_dup, edges.index[rows[dup][:10]].tolist(),
                   f"the same ({src.col}, {dst.col}) pair appears again; the first row is kept")
    _add_features(graph, src.ntype, s_feats, src.spec)
    _add_features(graph, dst.ntype, d_feats, dst.spec)
    return graph


def _add_features(graph: PinBoardGraph, ntype: str, feats: pd.DataFrame | None, spec: FeatureSpec) -> None:
    """Add the parsed feature columns ``feats`` (one row per ``ntype`` node) to ``graph``, by kind."""
    if feats is not None:
        fill_features(graph.features(ntype), feats, spec)
