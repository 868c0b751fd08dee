"""Save and load a :class:`PinBoardGraph` as a directory (no pickle anywhere), and the rules every
saved artefact of boardgraph (graph, index, feature cache) follows.

:func:`save_graph` writes any object with the graph's accessors; :func:`read_graph` returns the
parts of a saved graph (:class:`SavedGraph`), which :meth:`PinBoardGraph.load` assembles, so this
module does not import the store.

Layout of ``path/``::

    manifest.json                     kind, format version, node/edge types, counts, feature kinds, contents
    ids/<ntype>.parquet               external ids in index order
    topology/<rel>/<tensor>.npy       CSR tensors of each relation (memory-mappable)
    features/<ntype>/table.parquet    tabular features
    features/<ntype>/<name>.npy       tensor features

Saved artefacts. A save writes a temporary folder ``.NAME.tmp-HOST-PID-RAND`` beside ``path``
(:func:`temp_sibling`) and renames it into place (:func:`atomic_replace_dir`), so a reader never
sees a half-written artefact and a crash leaves any previous save intact. Its JSON manifest names
its kind (``"artefact": "boardgraph.graph"``) and lists its top-level entries (``"contents"``).
A save replaces only a folder holding an artefact of the same kind and nothing else
(:func:`check_output`); a file, a user's folder or another kind of artefact is refused with
:class:`OutputExistsError` and never deleted, with or without ``overwrite``. The names of the
temporaries carry the writer's host and pid, so the next save to the same place removes those of
dead writers (:func:`remove_stale_temps`).
"""
from __future__ import annotations

import json
import os
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from boardgraph._io import READ_ERRORS, ArtefactKind, atomic_replace_dir, check_output, read_manifest, temp_sibling
from boardgraph.schema import EdgeType

from .csr import Relation
from .errors import GraphFormatError
from .features import NodeFeatures
from .idmap import IdMap

if TYPE_CHECKING:
    from .store import PinBoardGraph

__all__ = ["save_graph", "GraphWriter", "relation_folder", "read_graph", "SavedGraph", "FORMAT_VERSION", "GRAPH_ARTEFACT"]

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
_T = TypeVar("_T")
_CSR = ("out_indptr", "out_indices", "in_indptr", "in_indices", "in_eid")
_FIX = "save the graph again (graph.save / boardgraph build)"


GRAPH_ARTEFACT = ArtefactKind("boardgraph.graph", "manifest.json",
                              legacy_keys=("format", "version", "nodes", "relations", "features"),
                              legacy_entries=("manifest.json", "ids", "topology", "features"))


# -- the graph --------------------------------------------------------------------------------------
def _rel_dir(etype: tuple[str, str, str]) -> str:
    return "__".join(etype)


def relation_folder(path: str | Path, etype: EdgeType) -> Path:
    """The folder of relation ``etype``'s tensors in the graph saved at ``path``."""
    return Path(path) / "topology" / _rel_dir(etype)


def _save_tensor(path: Path, t: torch.Tensor) -> None:
    np.save(path, t.detach().cpu().contiguous().numpy(), allow_pickle=False)


def _load_tensor(path: Path, mmap: bool) -> torch.Tensor:
    # 'c' (copy-on-write) maps the file lazily and yields a writable array, which torch accepts.
    arr = np.load(path, mmap_mode="c" if mmap else None, allow_pickle=False)
    return torch.from_numpy(arr)


def save_graph(graph: PinBoardGraph, path: str | Path, overwrite: bool = True) -> None:
    """Write ``graph`` to folder ``path`` atomically (see the module docstring).

    Args:
        graph: a :class:`PinBoardGraph` (duck-typed: its accessors are all that is used).
        path: the folder; absent, empty, or a saved graph holding nothing else.
        overwrite: replace a graph saved at ``path`` (a file, another kind of artefact or a folder
            boardgraph did not write is never replaced).

    Raises:
        OutputExistsError: ``path`` may not be written (see :func:`check_output`); checked before
            anything is written.
    """
    with GraphWriter(path, overwrite) as w:
        for t in graph.node_types:
            w.add_ids(t, graph.id_map(t).to_frame())
        for fwd in graph.canonical_edge_types:
            r: Relation = graph.relation(fwd)
            d = w.relation_dir(fwd)
            for name, ten in r.tensors().items():
                _save_tensor(d / f"{name}.npy", ten)
            w.add_relation(fwd, graph.reverse_of(fwd), r.num_edges, list(r.tensors()))
        for t in graph.node_types:
            w.add_features(t, graph.features(t))


class GraphWriter:
    """Writes a saved graph into a temporary sibling of ``path`` and moves it into place when the
    ``with`` block ends without an error (deletes it otherwise): :func:`save_graph`, and the
    out-of-core builder, which writes the topology files itself into :meth:`relation_dir`.

    Raises:
        OutputExistsError: ``path`` may not be written (see :func:`check_output`), on entry.
    """

    def __init__(self, path: str | Path, overwrite: bool = True) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        check_output(self.path, GRAPH_ARTEFACT, overwrite)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temp_sibling(self.path)
        self.tmp.mkdir()
        self.manifest: dict[str, Any] = {"format": "boardgraph", "version": FORMAT_VERSION,
                                         "nodes": {}, "relations": [], "features": {}}

    def __enter__(self) -> "GraphWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            try:
                self._commit()
                return
            except BaseException:
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise
        shutil.rmtree(self.tmp, ignore_errors=True)

    def add_ids(self, ntype: str, ids: Any) -> None:
        """The external ids of ``ntype`` in index order: a DataFrame or a pyarrow Table with one column ``id``."""
        (self.tmp / "ids").mkdir(exist_ok=True)
        out = self.tmp / "ids" / f"{ntype}.parquet"
        if isinstance(ids, pd.DataFrame):
            ids.to_parquet(out, index=False)
        else:
            pq.write_table(ids, out)
        self.manifest["nodes"][ntype] = len(ids)

    def relation_dir(self, fwd: EdgeType) -> Path:
        """The (new) folder the ``.npy`` tensors of relation ``fwd`` go into (names as :meth:`Relation.tensors`)."""
        d = self.tmp / "topology" / _rel_dir(fwd)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def add_relation(self, fwd: EdgeType, reverse: EdgeType, num_edges: int, tensors: list[str]) -> None:
        """Record relation ``fwd``, whose ``tensors`` are in :meth:`relation_dir`."""
        self.manifest["relations"].append({"etype": list(fwd), "reverse": list(reverse),
                                           "num_edges": int(num_edges), "tensors": sorted(tensors)})

    def add_features(self, ntype: str, f: NodeFeatures) -> None:
        """Write the features of ``ntype``."""
        d = self.tmp / "features" / ntype
        d.mkdir(parents=True)
        if len(f.table.columns):
            f.table.to_parquet(d / "table.parquet", index=False)
        for name, ten in f.tensors.items():
            _save_tensor(d / f"{name}.npy", ten)
        self.manifest["features"][ntype] = {"kinds": f.kinds, "tensors": sorted(f.tensors),
                                            "has_table": bool(len(f.table.columns))}

    def _commit(self) -> None:
        manifest = {**GRAPH_ARTEFACT.stamp(self.tmp), **self.manifest}
        with open(self.tmp / "manifest.json", "w") as fh:
            json.dump(manifest, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        atomic_replace_dir(self.tmp, self.path, GRAPH_ARTEFACT, overwrite=self.overwrite)


def _manifest_problem(m: dict[str, Any]) -> str | None:
    """What is wrong with the structure of a graph manifest (``None``: nothing)."""
    def names(x: Any, n: int | None = None) -> bool:
        return isinstance(x, list) and all(isinstance(s, str) for s in x) and (n is None or len(x) == n)

    missing = [k for k in ("nodes", "relations", "features") if k not in m]
    if missing:
        return f"lacks {', '.join(map(repr, missing))}"
    nodes = m["nodes"]
    if not isinstance(nodes, dict) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                              for n in nodes.values()):
        return f"'nodes' must map each node type to its count, got {nodes!r:.80}"
    rels = m.get("relations")
    if not isinstance(rels, list):
        return f"'relations' must be a list, got {rels!r:.80}"
    for r in rels:
        ok = isinstance(r, dict) and names(r.get("etype"), 3) and names(r.get("reverse"), 3) \
            and names(r.get("tensors")) and isinstance(r.get("num_edges"), int) and r["num_edges"] >= 0
        if not ok or r["etype"][0] not in nodes or r["etype"][2] not in nodes or not set(_CSR) <= set(r["tensors"]):
            return f"bad relation entry {r!r:.120}"
    feats = m.get("features")
    if not isinstance(feats, dict) or not set(feats) <= set(nodes):
        return f"'features' must map node types to their feature lists, got {feats!r:.80}"
    for t, s in feats.items():
        if not (isinstance(s, dict) and isinstance(s.get("kinds"), dict) and names(s.get("tensors"))
                and isinstance(s.get("has_table"), bool)):
            return f"bad feature entry of {t!r}: {s!r:.120}"
    return None


@dataclass
class SavedGraph:
    """The parts of a saved graph, as :func:`read_graph` returns them; :meth:`PinBoardGraph.load
    <boardgraph.graph.store.PinBoardGraph.load>` assembles them into a graph.

    Attributes:
        ids: node type -> its :class:`IdMap` (external ids in index order).
        relations: forward edge type -> its :class:`Relation` (both CSR directions and the attributes).
        reverse: forward edge type -> the edge type of its reverse.
        features: node type -> its :class:`NodeFeatures` (``num_nodes`` rows).
    """

    ids: dict[str, IdMap]
    relations: dict[EdgeType, Relation]
    reverse: dict[EdgeType, EdgeType]
    features: dict[str, NodeFeatures]


def read_graph(path: str | Path, mmap: bool = True) -> SavedGraph:
    """Read the parts of a graph written by :func:`save_graph` (``PinBoardGraph.load`` builds the graph).

    Only the sizes of the files are checked against the manifest (node counts, edge counts,
    CSR lengths), so a memory-mapped load stays lazy; a file whose bytes are damaged without
    changing its size is not detected.

    Args:
        path: the folder.
        mmap: memory-map tensors (pages are read on first touch; writes stay private).

    Raises:
        GraphFormatError: no manifest, an unknown format version or another kind of artefact; or a
            damaged save: an unreadable or incomplete manifest, a missing, truncated or unreadable
            file, or a file whose size disagrees with the manifest. The message names the file.
    """
    path = Path(path)
    manifest = _read_graph_manifest(path)
    reader = _Reader(path, mmap)
    nodes: dict[str, int] = manifest["nodes"]
    ids = {t: _read_ids(reader, t, n) for t, n in nodes.items()}
    relations: dict[EdgeType, Relation] = {}
    reverse: dict[EdgeType, EdgeType] = {}
    for r in manifest["relations"]:
        fwd = tuple(r["etype"])
        relations[fwd] = _read_relation(reader, fwd, r, nodes)
        reverse[fwd] = tuple(r["reverse"])
    features = {t: NodeFeatures(len(m)) for t, m in ids.items()}
    for t, spec in manifest["features"].items():
        _read_features(reader, features[t], t, spec, nodes[t])
    return SavedGraph(ids, relations, reverse, features)


def _read_graph_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the saved graph at ``path``, checked for its kind, version and structure."""
    mf = path / "manifest.json"
    if not mf.exists():
        raise GraphFormatError(f"{path} is not a saved boardgraph graph (no manifest.json); "
                               "save one with graph.save(path)")
    manifest, why = read_manifest(mf)
    if manifest is None:
        raise GraphFormatError(f"saved graph {path} is damaged: {why}; {_FIX}")
    kind = manifest.get("artefact", GRAPH_ARTEFACT.name)
    if kind != GRAPH_ARTEFACT.name:
        raise GraphFormatError(f"{mf} names a saved {kind!r}, not a saved graph; open it with its own loader")
    if manifest.get("format") != "boardgraph" or manifest.get("version") != FORMAT_VERSION:
        raise GraphFormatError(f"{mf}: unsupported format {manifest.get('format')!r} version "
                               f"{manifest.get('version')!r}; this boardgraph reads version {FORMAT_VERSION}")
    problem = _manifest_problem(manifest)
    if problem is not None:
        raise GraphFormatError(f"saved graph {path} is damaged: manifest.json: {problem}; {_FIX}")
    return manifest


class _Reader:
    """Reads the files of the saved graph at ``path``; every failure is a GraphFormatError naming the file."""

    def __init__(self, path: Path, mmap: bool) -> None:
        self.path = path
        self.mmap = mmap

    def bad(self, rel: str, what: str) -> GraphFormatError:
        return GraphFormatError(f"saved graph {self.path} is damaged: {rel} {what}; {_FIX}")

    def read(self, rel: str, reader: Callable[[Path], _T]) -> _T:
        """``reader`` applied to the file ``rel`` (relative to the folder), which must exist and be readable."""
        f = self.path / rel
        if not f.is_file():
            raise GraphFormatError(f"saved graph {self.path} is incomplete: {rel} is missing; {_FIX}")
        try:
            return reader(f)
        except READ_ERRORS as e:
            raise self.bad(rel, f"cannot be read ({' '.join(str(e).split())[:160]})") from e

    def tensor(self, rel: str) -> torch.Tensor:
        """The ``.npy`` file ``rel`` as a tensor (memory-mapped when the reader is)."""
        return self.read(rel, lambda f: _load_tensor(f, self.mmap))

    def rows(self, rel: str, t: torch.Tensor, n: int, what: str) -> torch.Tensor:
        """``t``, checked to have ``n`` rows (``what`` says why, in the message)."""
        if t.dim() < 1 or t.shape[0] != n:
            raise self.bad(rel, f"has shape {tuple(t.shape)}, expected {n} rows ({what})")
        return t


def _read_ids(reader: _Reader, t: str, n: int) -> IdMap:
    """The ids of node type ``t`` (``n`` of them, unique)."""
    rel = f"ids/{t}.parquet"
    ids = reader.read(rel, pd.read_parquet)
    if "id" not in ids.columns:
        raise reader.bad(rel, f"has no 'id' column (columns {list(ids.columns)})")
    if len(ids) != n:
        raise reader.bad(rel, f"has {len(ids)} rows, manifest.json says {n}")
    return IdMap(pd.Index(ids["id"].to_numpy()), t)


def _read_relation(reader: _Reader, fwd: EdgeType, r: dict[str, Any], nodes: dict[str, int]) -> Relation:
    """The relation ``fwd`` described by manifest entry ``r``, its tensors checked against the counts."""
    d = f"topology/{_rel_dir(fwd)}"
    e, (ns, nd) = r["num_edges"], (nodes[fwd[0]], nodes[fwd[2]])
    tensors = {name: reader.tensor(f"{d}/{name}.npy") for name in r["tensors"]}
    sizes = {"out_indptr": (ns + 1, f"{fwd[0]} nodes + 1"), "in_indptr": (nd + 1, f"{fwd[2]} nodes + 1")}
    got = tensors["out_indices"].shape[0] if tensors["out_indices"].dim() == 1 else -1
    if got != e:
        raise reader.bad(d, f"holds {got} edges (out_indices.npy) but manifest.json says {e}")
    for name, ten in tensors.items():
        want, what = sizes.get(name, (e, f"one per edge: manifest.json says {e} edges"))
        reader.rows(f"{d}/{name}.npy", ten, want, what)
        if name in _CSR and (ten.dim() != 1 or ten.dtype.is_floating_point or ten.dtype == torch.bool):
            raise reader.bad(f"{d}/{name}.npy", f"is {ten.dtype} {tuple(ten.shape)}, expected a 1-D integer array")
    for name in ("out_indptr", "in_indptr"):
        ends = (int(tensors[name][0]), int(tensors[name][-1]))
        if ends != (0, e):
            raise reader.bad(f"{d}/{name}.npy", f"runs from {ends[0]} to {ends[1]}, expected 0 to {e}")
    return Relation.from_tensors(ns, nd, tensors)


def _read_features(reader: _Reader, f: NodeFeatures, t: str, spec: dict[str, Any], n: int) -> None:
    """Fill ``f``, the features of node type ``t`` (``n`` nodes), from manifest entry ``spec``."""
    d = f"features/{t}"
    if spec["has_table"]:
        f.table = reader.read(f"{d}/table.parquet", pd.read_parquet)
        if len(f.table) != n:
            raise reader.bad(f"{d}/table.parquet", f"has {len(f.table)} rows, the graph has {n} {t} nodes")
    for name in spec["tensors"]:
        f.tensors[name] = reader.rows(f"{d}/{name}.npy", reader.tensor(f"{d}/{name}.npy"), n, f"one per {t} node")
    f.kinds = dict(spec["kinds"])
