"""Save and load a :class:`PinBoardGraph` as a directory (no pickle anywhere), and the rules every
saved artefact of boardgraph (graph, index, feature cache) follows.

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
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
import pandas as pd
import torch

from boardgraph._io import READ_ERRORS, ArtefactKind, atomic_replace_dir, check_output, read_manifest, temp_sibling

from .csr import Relation
from .errors import GraphFormatError
from .features import NodeFeatures
from .idmap import IdMap

__all__ = ["save_graph", "load_graph", "FORMAT_VERSION", "GRAPH_ARTEFACT"]

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
_T = TypeVar("_T")
_CSR = ("out_indptr", "out_indices", "in_indptr", "in_indices", "in_eid")


GRAPH_ARTEFACT = ArtefactKind("boardgraph.graph", "manifest.json",
                              legacy_keys=("format", "version", "nodes", "relations", "features"),
                              legacy_entries=("manifest.json", "ids", "topology", "features"))


# -- the graph --------------------------------------------------------------------------------------
def _rel_dir(etype: tuple[str, str, str]) -> str:
    return "__".join(etype)


def _save_tensor(path: Path, t: torch.Tensor) -> None:
    np.save(path, t.detach().cpu().contiguous().numpy(), allow_pickle=False)


def _load_tensor(path: Path, mmap: bool) -> torch.Tensor:
    # 'c' (copy-on-write) maps the file lazily and yields a writable array, which torch accepts.
    arr = np.load(path, mmap_mode="c" if mmap else None, allow_pickle=False)
    return torch.from_numpy(arr)


def save_graph(graph: Any, path: str | Path, overwrite: bool = True) -> None:
    """Write ``graph`` to folder ``path`` atomically (see the module docstring).

    Args:
        graph: a :class:`PinBoardGraph`.
        path: the folder; absent, empty, or a saved graph holding nothing else.
        overwrite: replace a graph saved at ``path`` (a file, another kind of artefact or a folder
            boardgraph did not write is never replaced).

    Raises:
        OutputExistsError: ``path`` may not be written (see :func:`check_output`); checked before
            anything is written.
    """
    path = Path(path)
    check_output(path, GRAPH_ARTEFACT, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
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
        manifest = {**GRAPH_ARTEFACT.stamp(tmp), **manifest}
        with open(tmp / "manifest.json", "w") as fh:
            json.dump(manifest, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        atomic_replace_dir(tmp, path, GRAPH_ARTEFACT, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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


def load_graph(path: str | Path, mmap: bool = True):
    """Read a graph written by :func:`save_graph`.

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
    from .store import PinBoardGraph

    path = Path(path)
    mf = path / "manifest.json"
    fix = "save the graph again (graph.save / boardgraph build)"
    if not mf.exists():
        raise GraphFormatError(f"{path} is not a saved boardgraph graph (no manifest.json); "
                               "save one with graph.save(path)")
    manifest, why = read_manifest(mf)
    if manifest is None:
        raise GraphFormatError(f"saved graph {path} is damaged: {why}; {fix}")
    kind = manifest.get("artefact", GRAPH_ARTEFACT.name)
    if kind != GRAPH_ARTEFACT.name:
        raise GraphFormatError(f"{mf} names a saved {kind!r}, not a saved graph; open it with its own loader")
    if manifest.get("format") != "boardgraph" or manifest.get("version") != FORMAT_VERSION:
        raise GraphFormatError(f"{mf}: unsupported format {manifest.get('format')!r} version "
                               f"{manifest.get('version')!r}; this boardgraph reads version {FORMAT_VERSION}")
    problem = _manifest_problem(manifest)
    if problem is not None:
        raise GraphFormatError(f"saved graph {path} is damaged: manifest.json: {problem}; {fix}")

    def bad(rel: str, what: str) -> GraphFormatError:
        return GraphFormatError(f"saved graph {path} is damaged: {rel} {what}; {fix}")

    def read(rel: str, reader: Callable[[Path], _T]) -> _T:
        f = path / rel
        if not f.is_file():
            raise GraphFormatError(f"saved graph {path} is incomplete: {rel} is missing; {fix}")
        try:
            return reader(f)
        except READ_ERRORS as e:
            raise bad(rel, f"cannot be read ({' '.join(str(e).split())[:160]})") from e

    def rows(rel: str, t: torch.Tensor, n: int, what: str) -> torch.Tensor:
        if t.dim() < 1 or t.shape[0] != n:
            raise bad(rel, f"has shape {tuple(t.shape)}, expected {n} rows ({what})")
        return t

    g = PinBoardGraph()
    nodes: dict[str, int] = manifest["nodes"]
    for t, n in nodes.items():
        rel = f"ids/{t}.parquet"
        ids = read(rel, pd.read_parquet)
        if "id" not in ids.columns:
            raise bad(rel, f"has no 'id' column (columns {list(ids.columns)})")
        if len(ids) != n:
            raise bad(rel, f"has {len(ids)} rows, manifest.json says {n}")
        g.add_node_type(t, pd.Index(ids["id"].to_numpy()))
    for r in manifest["relations"]:
        fwd = tuple(r["etype"])
        d = f"topology/{_rel_dir(fwd)}"
        e, (ns, nd) = r["num_edges"], (nodes[fwd[0]], nodes[fwd[2]])
        tensors = {name: read(f"{d}/{name}.npy", lambda f: _load_tensor(f, mmap)) for name in r["tensors"]}
        sizes = {"out_indptr": (ns + 1, f"{fwd[0]} nodes + 1"), "in_indptr": (nd + 1, f"{fwd[2]} nodes + 1")}
        got = tensors["out_indices"].shape[0] if tensors["out_indices"].dim() == 1 else -1
        if got != e:
            raise bad(d, f"holds {got} edges (out_indices.npy) but manifest.json says {e}")
        for name, ten in tensors.items():
            want, what = sizes.get(name, (e, f"one per edge: manifest.json says {e} edges"))
            rows(f"{d}/{name}.npy", ten, want, what)
            if name in _CSR and (ten.dim() != 1 or ten.dtype.is_floating_point or ten.dtype == torch.bool):
                raise bad(f"{d}/{name}.npy", f"is {ten.dtype} {tuple(ten.shape)}, expected a 1-D integer array")
        for name in ("out_indptr", "in_indptr"):
            ends = (int(tensors[name][0]), int(tensors[name][-1]))
            if ends != (0, e):
                raise bad(f"{d}/{name}.npy", f"runs from {ends[0]} to {ends[1]}, expected 0 to {e}")
        g._rels[fwd] = Relation.from_tensors(ns, nd, tensors)
        g._reverse[fwd] = tuple(r["reverse"])
    for t, spec in manifest["features"].items():
        f = g.features(t)
        d = f"features/{t}"
        if spec["has_table"]:
            f.table = read(f"{d}/table.parquet", pd.read_parquet)
            if len(f.table) != nodes[t]:
                raise bad(f"{d}/table.parquet", f"has {len(f.table)} rows, the graph has {nodes[t]} {t} nodes")
        for name in spec["tensors"]:
            f.tensors[name] = rows(f"{d}/{name}.npy", read(f"{d}/{name}.npy", lambda p: _load_tensor(p, mmap)),
                                   nodes[t], f"one per {t} node")
        f.kinds = dict(spec["kinds"])
    return g
