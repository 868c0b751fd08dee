"""Save and load a :class:`PinBoardGraph` as a directory (no pickle anywhere).

Layout of ``path/``::

    manifest.json                     format version, node/edge types, counts, feature kinds
    ids/<ntype>.parquet               external ids in index order
    topology/<rel>/<tensor>.npy       CSR tensors of each relation (memory-mappable)
    features/<ntype>/table.parquet    tabular features
    features/<ntype>/<name>.npy       tensor features

The directory is written under a temporary name beside ``path`` and renamed into place, so a
reader never sees a half-written graph and a crash leaves any previous save intact.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .csr import Relation
from .errors import GraphFormatError
from .features import NodeFeatures
from .idmap import IdMap

__all__ = ["save_graph", "load_graph", "atomic_replace_dir", "atomic_write_text", "FORMAT_VERSION"]

FORMAT_VERSION = 1


def _rel_dir(etype: tuple[str, str, str]) -> str:
    return "__".join(etype)


def _save_tensor(path: Path, t: torch.Tensor) -> None:
    np.save(path, t.detach().cpu().contiguous().numpy(), allow_pickle=False)


def _load_tensor(path: Path, mmap: bool) -> torch.Tensor:
    # 'c' (copy-on-write) maps the file lazily and yields a writable array, which torch accepts.
    arr = np.load(path, mmap_mode="c" if mmap else None, allow_pickle=False)
    return torch.from_numpy(arr)


def atomic_replace_dir(tmp: Path, path: Path) -> None:
    """Move the finished directory ``tmp`` to ``path``, replacing an existing one safely."""
    if path.exists():
        old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a uniquely named temporary file beside it, then
    rename it over ``path``: a reader sees the old file or the new one, never a part, and two
    writers never share a temporary file. A failed write removes its temporary file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_graph(graph: Any, path: str | Path) -> None:
    """Write ``graph`` to directory ``path`` atomically (see the module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        manifest: dict[str, Any] = {"format": "boardgraph", "version": FORMAT_VERSION,
                                    "nodes": {}, "relations": [], "features": {}}
        (tmp / "ids").mkdir()
        for t in graph.node_types:
            m: IdMap = graph.id_map(t)
            m.to_frame().to_parquet(tmp / "ids" / f"{t}.parquet", index=False)
            manifest["nodes"][t] = len(m)
        for fwd in graph.canonical_edge_types:
            r: Relation = graph.relation(fwd)
            d = tmp / "topology" / _rel_dir(fwd)
            d.mkdir(parents=True)
            for name, ten in r.tensors().items():
                _save_tensor(d / f"{name}.npy", ten)
            manifest["relations"].append({"etype": list(fwd), "reverse": list(graph.reverse_of(fwd)),
                                          "num_edges": r.num_edges, "tensors": sorted(r.tensors())})
        for t in graph.node_types:
            f: NodeFeatures = graph.features(t)
            d = tmp / "features" / t
            d.mkdir(parents=True)
            if len(f.table.columns):
                f.table.to_parquet(d / "table.parquet", index=False)
            for name, ten in f.tensors.items():
                _save_tensor(d / f"{name}.npy", ten)
            manifest["features"][t] = {"kinds": f.kinds, "tensors": sorted(f.tensors),
                                       "has_table": bool(len(f.table.columns))}
        with open(tmp / "manifest.json", "w") as fh:
            json.dump(manifest, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        atomic_replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_graph(path: str | Path, mmap: bool = True):
    """Read a graph written by :func:`save_graph`.

    Args:
        path: the directory.
        mmap: memory-map tensors (pages are read on first touch; writes stay private).

    Raises:
        GraphFormatError: missing manifest or files, or an unknown format version.
    """
    from .store import PinBoardGraph

    path = Path(path)
    mf = path / "manifest.json"
    if not mf.exists():
        raise GraphFormatError(f"{path} is not a saved boardgraph graph (no manifest.json); "
                               "save one with graph.save(path)")
    manifest = json.loads(mf.read_text())
    if manifest.get("format") != "boardgraph" or manifest.get("version") != FORMAT_VERSION:
        raise GraphFormatError(f"{mf}: unsupported format {manifest.get('format')!r} version "
                               f"{manifest.get('version')!r}; this boardgraph reads version {FORMAT_VERSION}")
    g = PinBoardGraph()
    try:
        for t, n in manifest["nodes"].items():
            ids = pd.read_parquet(path / "ids" / f"{t}.parquet")["id"]
            if len(ids) != n:
                raise GraphFormatError(f"{path}: ids/{t}.parquet has {len(ids)} rows, manifest says {n}")
            g.add_node_type(t, pd.Index(ids.to_numpy()))
        for rel in manifest["relations"]:
            fwd = tuple(rel["etype"])
            d = path / "topology" / _rel_dir(fwd)
            tensors = {name: _load_tensor(d / f"{name}.npy", mmap) for name in rel["tensors"]}
            g._rels[fwd] = Relation.from_tensors(manifest["nodes"][fwd[0]], manifest["nodes"][fwd[2]], tensors)
            g._reverse[fwd] = tuple(rel["reverse"])
        for t, spec in manifest["features"].items():
            f = g.features(t)
            d = path / "features" / t
            if spec["has_table"]:
                f.table = pd.read_parquet(d / "table.parquet")
            for name in spec["tensors"]:
                f.tensors[name] = _load_tensor(d / f"{name}.npy", mmap)
            f.kinds = dict(spec["kinds"])
    except FileNotFoundError as e:
        raise GraphFormatError(f"{path} is incomplete: {e.filename} is missing; save the graph again") from e
    return g
