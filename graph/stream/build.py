"""The out-of-core build: an edge table of any length -> a saved graph, in bounded memory.

The result is the in-memory builder's, file for file: the same nodes in the same order, the same
edges, attributes and features, and the same :class:`~boardgraph.graph.build_report.BuildReport`
counts and examples. How:

1. **Scan** (:mod:`.scan`): the table is read in batches; each batch is checked by the in-memory
   builder's own checks, its ids get codes (node-table positions, or an incremental dictionary in
   order of first appearance, :mod:`.ids`) and its kept rows are spilled to disk as records
   ``(row, source, destination, attributes)``, partitioned by source code.
2. **Minimum group size**: distinct sources per destination, one pass over the spill.
3. **Node order**: a source without a node table is ordered by its first kept row; when the
   minimum group size changes that order, the records are partitioned again by final index.
4. **Forward CSR**: group by group in source order, each group's pairs are sorted and de-duplicated
   (first row kept) and written at their final offsets; each edge goes to a second spill by
   destination. **Reverse CSR**: that spill, group by group.

Memory: one batch of rows, one group of records, and per node a few 8-byte counters, plus the id
dictionaries (:mod:`.ids`). Disk: the spill takes about ``12-16`` bytes a row beside the output
folder, deleted as it is read.
"""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from ..build_report import TABLE_ROWS, BuildReport
from ..checks import Checker, require_columns
from ..csr import cumsum0, index_dtype
from ..errors import EmptyGraphError, SchemaError
from ..feature_columns import fill_features, parse_feature_columns
from ..features import NodeFeatures
from ..image_checks import ImageRules
from ..io import GraphWriter
from ..row_filters import valid_table_rows
from ..tables import read_table
from .passes import Dropped, distinct_counts, first_rows, monotone_map, order_map, rebucket, write_in_csr, \
    write_out_csr
from .scan import ScanPlan, StreamChecker, check_order, record_dtype, scan_batch
from .source import EdgeSource, open_edge_source
from .spill import Buckets, NpyWriter, fmt_bytes, rss_bytes

__all__ = ["build_out_of_core", "StreamTuning"]

log = logging.getLogger(__name__)

_ATTRS = ("weight", "timestamp", "order")


@dataclass
class StreamTuning:
    """Sizes of an out-of-core build, derived from its memory limit (tests set them small).

    Attributes:
        limit: the memory limit in bytes.
        rows_per_batch: rows read at a time (default: limit / 4000, between 50k and 1M).
        bucket_width: source codes per spill file of the scan.
        capacity: records in memory at a time (default: what the limit leaves, at about
            ``3 x record + 48`` bytes each).
    """

    limit: int
    rows_per_batch: int | None = None
    bucket_width: int = 1 << 16
    capacity: int | None = None

    def batch_rows(self) -> int:
        return self.rows_per_batch or int(np.clip(self.limit // 4000, 50_000, 1_000_000))

    def group_capacity(self, itemsize: int, reserve: int = 0) -> int:
        """Records of ``itemsize`` bytes that fit in what the limit leaves now, less ``reserve``
        bytes for arrays still to be allocated (at least 262,144)."""
        if self.capacity:
            return self.capacity
        free = self.limit - rss_bytes() - reserve - (96 << 20)
        return int(max(1 << 18, free // (3 * itemsize + 48)))


def build_out_of_core(edges_obj: Any, out: str | os.PathLike, *, sides: Sequence[Any], rel: tuple[str, str],
                      attrs: dict[str, str | None], consent: str | None, min_group: int, min_name: str,
                      images: ImageRules, encoding: str, on_error: str, tuning: StreamTuning,
                      overwrite: bool = True) -> BuildReport:
    """Build the graph of the edge table ``edges_obj`` into the saved-graph folder ``out``.

    Same arguments as the in-memory builder (``sides``: the source and destination sides, each
    with ``ntype``, ``col``, ``spec`` and ``table``; ``attrs``: edge attribute name -> column or
    None). Feature columns must come from node tables.

    Returns:
        The build's report (``report.method == "out of core"``).

    Raises:
        What the in-memory builder raises, in the same cases; SchemaError for feature columns
        without a node table; IdCollisionError; MemoryLimitError; OutputExistsError (before reading).
    """
    src, dst = sides
    report = BuildReport(method="out of core")
    source = open_edge_source(edges_obj, encoding)
    _check_columns(source, sides, attrs, consent)
    tables = {s.ntype: read_table(s.table, s.ntype, ids=(s.col,), encoding=encoding) for s in sides
              if s.table is not None}
    checker = StreamChecker(on_error, report, check_order(src.ntype, dst.ntype, list(tables), consent,
                                                          list(attrs.values())))
    for s in sides:
        if s.ntype in tables:
            tables[s.ntype] = valid_table_rows(s.ntype, s.col, tables[s.ntype], s.spec, checker)
    used = [a for a in _ATTRS if attrs.get(a)]
    dtype = record_dtype(source.max_rows, *(len(tables[s.ntype]) if s.ntype in tables else source.max_rows
                                            for s in sides), used)
    plan = ScanPlan(((src.ntype, src.col), (dst.ntype, dst.col)),
                    {s.ntype: pd.Index(tables[s.ntype][s.col]) if s.ntype in tables else None for s in sides},
                    attrs, consent, checker, dtype)
    with GraphWriter(out, overwrite) as w:
        spill = w.tmp / "_spill"
        try:
            _build(source, plan, w, spill, tables, sides, rel, used, min_group, min_name, images, on_error,
                   tuning, report)
        finally:
            shutil.rmtree(spill, ignore_errors=True)
    return report


def _check_columns(source: EdgeSource, sides: Sequence[Any], attrs: dict[str, str | None], consent: str | None) -> None:
    src, dst = sides
    require_columns(pd.DataFrame(columns=source.columns), [src.col, dst.col, *attrs.values(), consent], "edge",
                    f"pass the column names, e.g. {dst.col}=... / {src.col}=...")
    for s in sides:
        if s.table is None and s.spec.kinds():
            col = next(iter(s.spec.kinds()))
            raise SchemaError(f"{s.ntype} feature column {col!r} would be read from the edge table, which an "
                              f"out-of-core build does not hold", column=col,
                              fix=f"pass a {s.ntype} table (items=/boards=) with the features, or build in "
                                  f"memory (method='memory')")


def _scan(source: EdgeSource, plan: ScanPlan, folder: Any, tuning: StreamTuning,
          report: BuildReport) -> tuple[Buckets, np.ndarray]:
    """Pass 1: the kept rows' records in buckets by source code, and the records per destination code."""
    buckets = Buckets(folder / "edges", plan.dtype, "s", np.arange(512, dtype=np.int64) * tuning.bucket_width,
                      plan.sides[0][0])
    d_counts = np.zeros(1024, np.int64)
    cols = [c for c in dict.fromkeys([c for _, c in plan.sides] + list(plan.attrs.values()) + [plan.consent]) if c]
    for df in source.batches(cols, [c for _, c in plan.sides], tuning.batch_rows()):
        report.rows_in += len(df)
        recs = scan_batch(df, plan, report)
        buckets.add(recs)
        if len(recs):
            c = np.bincount(recs["d"])
            if len(c) > len(d_counts):
                d_counts = np.concatenate([d_counts, np.zeros(max(len(c), 2 * len(d_counts)) - len(d_counts),
                                                              np.int64)])
            d_counts[:len(c)] += c
    buckets.close()
    return buckets, d_counts


def _build(source: EdgeSource, plan: ScanPlan, w: GraphWriter, spill: Path, tables: dict[str, pd.DataFrame],
           sides: Sequence[Any], rel: tuple[str, str], used: list[str], k: int, min_name: str, images: ImageRules,
           on_error: str, tuning: StreamTuning, report: BuildReport) -> None:
    """Scan, check, filter by group size, order the nodes, then write the topology, ids and features."""
    src, dst = sides
    buckets, d_counts = _scan(source, plan, spill, tuning, report)
    if report.rows_in == 0:
        raise EmptyGraphError(f"{source.name} has no rows", report=report,
                              fix=f"pass a table with one row per ({src.col}, {dst.col}) pair (a CSV needs rows "
                                  f"under its header)")
    plan.checker.finish()
    held = sum(d.nbytes() for d in plan.dictionaries.values())
    for d in plan.dictionaries.values():
        d.freeze()
    log.info("out-of-core build: scanned %s rows (%s records spilled); id dictionaries about %s at their peak, "
             "%s after; resident %s", f"{report.rows_in:,}", f"{buckets.total:,}", fmt_bytes(held),
             fmt_bytes(sum(d.nbytes() for d in plan.dictionaries.values())), fmt_bytes(rss_bytes()))
    n_src, n_dst = (len(tables[s.ntype]) if s.ntype in tables else len(plan.dictionaries.get(s.ntype, ()))
                    for s in sides)
    d_counts = np.concatenate([d_counts, np.zeros(max(0, n_dst - len(d_counts)), np.int64)])[:n_dst]
    # the per-node arrays of the passes below (maps, first rows, degrees): about 40 bytes a node
    cap = tuning.group_capacity(plan.dtype.itemsize, reserve=40 * (n_src + n_dst))
    keep_dst = np.ones(n_dst, bool)
    if k > 1:
        distinct = distinct_counts(buckets, cap, n_dst)
        keep_dst = ~((distinct > 0) & (distinct < k))
        _drop_small_groups(report, tables, sides, k, keep_dst, int(d_counts[~keep_dst].sum()))
    if buckets.total == int(d_counts[~keep_dst].sum()):
        reasons = ", ".join(f"{r}: {c}" for r, c in report.dropped.items())
        raise EmptyGraphError(f"all {report.rows_in} rows of {source.name} were dropped ({reasons})", report=report,
                              fix=f"fix the rows counted under those reasons, or relax the filter that dropped them "
                                  f"(consent, {min_name})")
    feats = {s.ntype: parse_feature_columns(tables[s.ntype], s.spec.kinds(), Checker(on_error, report), images.root,
                                            max_image_pixels=images.max_pixels,
                                            allow_outside_root=images.allow_outside_root)
             for s in sides if s.ntype in tables}
    d_map = monotone_map(keep_dst)
    s_map, dropped, rebucketed = None, Dropped(), False
    if k > 1 and src.ntype not in tables:  # a source's first kept row may move when groups are dropped
        s_map, in_order = order_map(first_rows(buckets, cap, n_src, keep_dst))
        if not in_order:  # records by final source index, the dropped groups' rows counted
            buckets = rebucket(buckets, cap, spill / "final", s_map, keep_dst, int((s_map >= 0).sum()), dropped)
            rebucketed = True
    maps = {src.ntype: s_map, dst.ntype: d_map if k > 1 else None}
    nodes = {src.ntype: _count(s_map, n_src), dst.ntype: _count(maps[dst.ntype], n_dst)}
    dst_counts = np.zeros(nodes[dst.ntype], np.int64)
    dst_counts[d_map[keep_dst]] = d_counts[keep_dst]
    n_edges = _write_topology(w, buckets, cap, tuning, sides, rel, used, plan.dtype, spill, dropped,
                              s_map=None if rebucketed else s_map, d_map=None if keep_dst.all() else d_map,
                              keep_dst=keep_dst if k > 1 and not rebucketed else None, nodes=nodes,
                              dst_counts=dst_counts)
    log.info("out-of-core build: wrote %s edges; resident %s", f"{n_edges:,}", fmt_bytes(rss_bytes()))
    _report_dropped(report, source, dropped, k, sides)
    for s in sides:
        w.add_ids(s.ntype, _ids(s, tables, plan, maps[s.ntype]))
        f = NodeFeatures(nodes[s.ntype])
        if s.ntype in feats:
            fill_features(f, feats[s.ntype], s.spec)
        w.add_features(s.ntype, f)
    report.nodes = dict(nodes)
    report.edges = {rel[0]: n_edges}
    report.warn_if_small()


def _count(m: np.ndarray | None, n: int) -> int:
    """Nodes of a side: all ``n`` codes, or those ``m`` maps to an index."""
    return n if m is None else int((m >= 0).sum())


def _write_topology(w: GraphWriter, buckets: Buckets, cap: int, tuning: StreamTuning, sides: Sequence[Any],
                    rel: tuple[str, str], used: list[str], dtype: np.dtype, spill: Path, dropped: Dropped, *,
                    s_map: np.ndarray | None, d_map: np.ndarray | None, keep_dst: np.ndarray | None,
                    nodes: dict[str, int], dst_counts: np.ndarray) -> int:
    """Write both CSR directions and the attributes of the relation; returns its edge count."""
    src, dst = sides
    n_src, n_dst = nodes[src.ntype], nodes[dst.ntype]
    fwd = (src.ntype, rel[0], dst.ntype)
    folder = w.relation_dir(fwd)
    out_ind = NpyWriter(folder / "out_indices.npy", _np(index_dtype(n_dst)))
    attr_w = {a: NpyWriter(folder / f"attr.{a}.npy", dtype[a]) for a in used}
    oc = write_out_csr(buckets, cap, s_map=s_map, d_map=d_map, keep_dst=keep_dst, n_src=n_src, n_dst=n_dst,
                       dst_counts=dst_counts, out_indices=out_ind, attrs=attr_w, folder=spill / "by_dst",
                       dropped=dropped, dst_name=dst.ntype)
    for x in [out_ind, *attr_w.values()]:
        x.close()
    _write_array(folder / "out_indptr.npy", cumsum0(torch.from_numpy(oc.degree)).numpy())
    in_ind = NpyWriter(folder / "in_indices.npy", _np(index_dtype(n_src)))
    in_eid = NpyWriter(folder / "in_eid.npy", _np(index_dtype(oc.num_edges)))
    in_deg = write_in_csr(oc.by_dst, tuning.group_capacity(oc.by_dst.dtype.itemsize, reserve=8 * n_dst), n_src,
                          n_dst, in_ind, in_eid)
    in_ind.close()
    in_eid.close()
    _write_array(folder / "in_indptr.npy", cumsum0(torch.from_numpy(in_deg)).numpy())
    w.add_relation(fwd, (dst.ntype, rel[1], src.ntype), oc.num_edges,
                   ["out_indptr", "out_indices", "in_indptr", "in_indices", "in_eid"] + [f"attr.{a}" for a in used])
    return oc.num_edges


def _drop_small_groups(report: BuildReport, tables: dict[str, pd.DataFrame], sides: Sequence[Any], k: int,
                       keep_dst: np.ndarray, n_rows: int) -> None:
    """Count the rows of groups below ``k`` members (their examples come after the topology pass) and
    drop those groups' rows of the group table, as the in-memory builder does."""
    src, dst = sides
    what = f"{dst.ntype} with fewer than {k} distinct {src.ntype}s"
    report.add(f"{dst.ntype}_below_min_size", n_rows, rows=[], message=what)
    t = tables.get(dst.ntype)
    if t is not None and n_rows:
        gone = ~keep_dst
        report.add(f"{dst.ntype}_table_below_min_size", int(gone.sum()), rows=t.index[gone][:10].tolist(),
                   message=f"{dst.ntype} table rows of {what} (removed with their memberships)", scope=TABLE_ROWS)
        tables[dst.ntype] = t[~gone]


def _report_dropped(report: BuildReport, source: EdgeSource, dropped: Dropped, k: int, sides: Sequence[Any]) -> None:
    src, dst = sides
    if k > 1 and dropped.small.n:
        report.examples[f"{dst.ntype}_below_min_size"] = source.labels(np.array(dropped.small.rows, np.int64))
    if dropped.duplicate.n:
        report.add("duplicate_edge", dropped.duplicate.n,
                   source.labels(np.array(dropped.duplicate.rows, np.int64)),
                   f"the same ({src.col}, {dst.col}) pair appears again; the first row is kept")


def _ids(side: Any, tables: dict[str, pd.DataFrame], plan: ScanPlan, m: np.ndarray | None) -> Any:
    """The ids of one side in final node order: its table's, or its dictionary's (``m``: codes ->
    final index, -1 for codes that are not nodes; ``None``: the codes are the order)."""
    if side.ntype in tables:
        return pd.DataFrame({"id": tables[side.ntype][side.col].to_numpy()})
    d = plan.dictionaries[side.ntype]
    if m is None:
        codes = np.arange(len(d))
    else:
        nodes = np.flatnonzero(m >= 0)
        codes = np.empty(len(nodes), np.int64)
        codes[m[nodes]] = nodes
    return pa.table({"id": d.ids(codes)})


def _np(dt: torch.dtype) -> type:
    return np.int32 if dt == torch.int32 else np.int64


def _write_array(path: Path, a: np.ndarray) -> None:
    wr = NpyWriter(path, a.dtype)
    wr.write(a)
    wr.close()
