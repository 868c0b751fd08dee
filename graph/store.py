"""`PinBoardGraph`: the heterogeneous Pin-Board graph store."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from boardgraph.schema import HAS, MEMBER, EdgeType

from . import convert
from .csr import Relation, build_relation
from .describe import GraphSummary, describe
from .errors import SchemaError, UnknownIdError
from .feature_columns import parse_feature_columns
from .features import NodeFeatures
from .idmap import IdMap
from .io import SavedGraph, read_graph, save_graph

__all__ = ["PinBoardGraph", "EdgeType", "MEMBER", "HAS", "load_graph"]


class PinBoardGraph:
    """A heterogeneous graph of pins, boards, optional users and any declared node type.

    Node types map external ids to contiguous indices (:meth:`index`, :meth:`ids`). Each relation
    ``(src, rel, dst)`` is stored once as a :class:`~boardgraph.graph.csr.Relation` holding both
    CSR directions; its reverse ``(dst, reverse_rel, src)`` is a view of the same storage
    (``("pin", "in", "board")`` and ``("board", "has", "pin")``). Node features live in one
    :class:`~boardgraph.graph.features.NodeFeatures` per node type.

    Build graphs with the builders (:func:`~boardgraph.graph.from_collections`,
    :func:`~boardgraph.graph.from_interactions`) or by hand with :meth:`add_node_type` and
    :meth:`add_relation`.
    """

    def __init__(self) -> None:
        self._ids: dict[str, IdMap] = {}
        self._features: dict[str, NodeFeatures] = {}
        self._rels: dict[EdgeType, Relation] = {}
        self._reverse: dict[EdgeType, EdgeType] = {}  # forward etype -> reverse etype

    # -- construction -------------------------------------------------------------------------
    def add_node_type(self, ntype: str, ids: Iterable[Any] | pd.Index | IdMap) -> None:
        """Declare node type ``ntype`` with external ``ids`` (index order = given order, unique)."""
        if ntype in self._ids:
            raise ValueError(f"node type {ntype!r} exists already; use add_pins to grow it")
        m = ids if isinstance(ids, IdMap) else IdMap(ids, ntype)
        self._ids[ntype] = m
        self._features[ntype] = NodeFeatures(len(m))

    def add_relation(self, etype: EdgeType, src: Tensor, dst: Tensor, *, reverse: str | None = None,
                     attrs: Mapping[str, Tensor] | None = None) -> Tensor:
        """Add relation ``etype`` from node-index arrays ``src, dst [E]`` (duplicates dropped).

        Args:
            etype: ``(src_type, relation, dst_type)``; both node types must exist.
            reverse: name of the reverse relation (default ``"rev_" + relation``).
            attrs: per-edge attributes ``[E]`` in input order.

        Returns:
            int64 ``[E_kept]``: the input position of each stored edge, in eid order.
        """
        s_t, rel, d_t = etype
        for t in (s_t, d_t):
            if t not in self._ids:
                raise SchemaError(f"unknown node type {t!r} in {etype}", fix="call add_node_type first")
        if etype in self._rels or etype in self._reverse.values():
            raise ValueError(f"relation {etype} exists already")
        r, kept = build_relation(torch.as_tensor(src), torch.as_tensor(dst), self.num_nodes(s_t),
                                 self.num_nodes(d_t), dict(attrs or {}))
        self._rels[etype] = r
        self._reverse[etype] = (d_t, reverse or f"rev_{rel}", s_t)
        return kept

    # -- schema -------------------------------------------------------------------------------
    @property
    def node_types(self) -> list[str]:
        return list(self._ids)

    @property
    def edge_types(self) -> list[EdgeType]:
        """All edge types, each forward relation followed by its reverse."""
        out: list[EdgeType] = []
        for f, r in self._reverse.items():
            out += [f, r]
        return out

    @property
    def canonical_edge_types(self) -> list[EdgeType]:
        """Stored (forward) relations only."""
        return list(self._rels)

    def _resolve(self, etype: EdgeType | str) -> tuple[Relation, bool, EdgeType]:
        """(storage, is_reverse, forward etype) for an edge type or a unique relation name."""
        if isinstance(etype, str):
            found = [e for e in self.edge_types if e[1] == etype]
            if len(found) != 1:
                raise KeyError(f"relation name {etype!r} matches {found}; give the (src, rel, dst) triple")
            etype = found[0]
        etype = tuple(etype)  # type: ignore[assignment]
        if etype in self._rels:
            return self._rels[etype], False, etype
        for f, r in self._reverse.items():
            if r == etype:
                return self._rels[f], True, f
        raise KeyError(f"no edge type {etype}; the graph has {self.edge_types}")

    def reverse_of(self, etype: EdgeType) -> EdgeType:
        """The edge type running the other way over the same edges."""
        _, is_rev, fwd = self._resolve(etype)
        return fwd if is_rev else self._reverse[fwd]

    def relation(self, etype: EdgeType) -> Relation:
        """The storage behind ``etype`` (shared by a relation and its reverse)."""
        return self._resolve(etype)[0]

    def num_nodes(self, ntype: str) -> int:
        if ntype not in self._ids:
            raise KeyError(f"no node type {ntype!r}; the graph has {self.node_types}")
        return len(self._ids[ntype])

    def num_edges(self, etype: EdgeType | str) -> int:
        return self._resolve(etype)[0].num_edges

    @property
    def device(self) -> torch.device:
        rels = list(self._rels.values())
        return rels[0].device if rels else torch.device("cpu")

    # -- topology access ----------------------------------------------------------------------
    def csr(self, etype: EdgeType | str) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(indptr [N_src + 1] int64, indices [E], eid [E] or None)`` of ``etype``'s out-edges.

        ``eid`` maps each entry to the forward relation's edge id (``None`` for a forward
        relation, whose entries are in eid order: the eid is the position).
        """
        r, is_rev, _ = self._resolve(etype)
        return (r.in_indptr, r.in_indices, r.in_eid) if is_rev else (r.out_indptr, r.out_indices, None)

    def edges(self, etype: EdgeType | str) -> tuple[Tensor, Tensor]:
        """``(src, dst)`` int64 ``[E]`` of ``etype`` in forward eid order."""
        r, is_rev, _ = self._resolve(etype)
        s, d = r.coo()
        return (d, s) if is_rev else (s, d)

    def degree(self, etype: EdgeType | str) -> Tensor:
        """int64 ``[N_src]`` out-degree of each source node of ``etype``."""
        indptr = self.csr(etype)[0]
        return indptr[1:] - indptr[:-1]

    def edge_ids(self, etype: EdgeType | str, src: Tensor, dst: Tensor, missing: str = "raise") -> Tensor:
        """Forward edge ids of the index pairs ``(src[i], dst[i])`` of ``etype``; int64 ``[n]``."""
        r, is_rev, fwd = self._resolve(etype)
        src, dst = torch.as_tensor(src), torch.as_tensor(dst)
        eid = r.find_edges(dst, src) if is_rev else r.find_edges(src, dst)
        if missing == "raise" and bool((eid < 0).any()):
            i = int(torch.nonzero(eid < 0)[0])
            raise UnknownIdError(f"{int((eid < 0).sum())} pair(s) are not edges of {fwd}, e.g. "
                                 f"({int(src[i])}, {int(dst[i])})", fix="pass missing='ignore' to get -1")
        return eid

    def edge_attr(self, etype: EdgeType | str, name: str) -> Tensor:
        """Attribute ``name`` of every edge, ``[E]`` in forward eid order."""
        r = self._resolve(etype)[0]
        if name not in r.attrs:
            raise KeyError(f"edge type {etype} has no attribute {name!r}; it has {sorted(r.attrs)}")
        return r.attrs[name]

    # -- ids and features ---------------------------------------------------------------------
    def index(self, ntype: str, ids: Any, missing: str = "raise") -> Tensor:
        """int64 indices of external ``ids`` of ``ntype`` (see :meth:`IdMap.index`)."""
        self.num_nodes(ntype)
        return self._ids[ntype].index(ids, missing=missing)

    def ids(self, ntype: str, idx: Any = None) -> np.ndarray:
        """External ids of node indices ``idx`` (all nodes when None) as a numpy array."""
        self.num_nodes(ntype)
        m = self._ids[ntype]
        return m.values if idx is None else m.ids(idx)

    def id_map(self, ntype: str) -> IdMap:
        return self._ids[ntype]

    def features(self, ntype: str) -> NodeFeatures:
        """The feature store of ``ntype`` (add features to it at any time)."""
        self.num_nodes(ntype)
        return self._features[ntype]

    # -- whole-graph operations -----------------------------------------------------------------
    def _replace(self, **parts: Any) -> "PinBoardGraph":
        g = copy.copy(self)
        for k, v in parts.items():
            setattr(g, k, v)
        return g

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "PinBoardGraph":
        """A graph whose topology and tensor features live on ``device`` (tables stay on the host)."""
        fn = lambda t: t.to(device, non_blocking=non_blocking)  # noqa: E731
        return self._replace(_rels={k: r.apply(fn) for k, r in self._rels.items()},
                             _features={k: f.apply(fn) for k, f in self._features.items()})

    def pin_memory(self) -> "PinBoardGraph":
        """A graph whose CPU tensors are in page-locked memory (faster host-to-device copies).
        Without a CUDA runtime this returns the graph unchanged."""
        if not torch.cuda.is_available():
            return self
        fn = lambda t: t.pin_memory() if t.device.type == "cpu" else t  # noqa: E731
        return self._replace(_rels={k: r.apply(fn) for k, r in self._rels.items()},
                             _features={k: f.apply(fn) for k, f in self._features.items()})

    def topology_nbytes(self) -> int:
        """Resident bytes of all stored topology (both directions, eid maps), attributes excluded."""
        return sum(r.nbytes() for r in self._rels.values())

    def remove_edges(self, etype: EdgeType | str, src: Tensor | None = None, dst: Tensor | None = None,
                     *, eids: Tensor | None = None) -> "PinBoardGraph":
        """A new graph without the given edges of ``etype`` (and its reverse), e.g. held-out pairs.

        Give either index pairs ``src, dst [n]`` (pairs that are no edge raise
        :class:`UnknownIdError`) or forward edge ids ``eids``. Node ids, features and the other
        relations are shared with this graph; edge ids of ``etype`` are renumbered.
        """
        r, _, fwd = self._resolve(etype)
        if eids is None:
            if src is None or dst is None:
                raise ValueError("give src and dst index tensors, or eids")
            eids = self.edge_ids(etype, src, dst)
        keep = torch.ones(r.num_edges, dtype=torch.bool, device=r.device)
        keep[torch.as_tensor(eids, device=r.device).long()] = False
        rels = dict(self._rels)
        rels[fwd] = r.select(keep)
        return self._replace(_rels=rels)

    def subgraph(self, nodes: Mapping[str, Tensor]) -> "PinBoardGraph":
        """The graph induced by ``nodes`` (``{ntype: int64 indices}``; types not named keep all nodes).

        Kept nodes are renumbered ``0..n-1`` in the given order; ids, features, edges between kept
        nodes and their attributes come along.
        """
        keep_idx = {t: torch.as_tensor(nodes[t]).long() if t in nodes else torch.arange(self.num_nodes(t))
                    for t in self.node_types}
        g = PinBoardGraph()
        for t in self.node_types:
            g._ids[t] = self._ids[t].take(keep_idx[t])
            g._features[t] = self._features[t].take(keep_idx[t])
        for fwd, r in self._rels.items():
            s_t, _, d_t = fwd
            maps = []
            for t in (s_t, d_t):
                m = torch.full((self.num_nodes(t),), -1, dtype=torch.int64, device=r.device)
                m[keep_idx[t].to(r.device)] = torch.arange(len(keep_idx[t]), device=r.device)
                maps.append(m)
            s, d = r.coo()
            ns, nd = maps[0][s], maps[1][d]
            ok = (ns >= 0) & (nd >= 0)
            g._rels[fwd], _ = build_relation(ns[ok], nd[ok], len(keep_idx[s_t]), len(keep_idx[d_t]),
                                             {k: v[ok] for k, v in r.attrs.items()})
            g._reverse[fwd] = self._reverse[fwd]
        return g

    def add_pins(self, ids: Any, *, features: pd.DataFrame | None = None,
                 tensors: Mapping[str, Tensor] | None = None,
                 boards: Mapping[EdgeType, Any] | Any = None, ntype: str = "pin") -> Tensor:
        """Append new pins in place (cold start): existing indices, features and embeddings stay valid.

        Args:
            ids: external ids of the new pins (must be new).
            features: optional table with one row per new pin (columns as the graph's pin table;
                values are parsed as the builder parses them).
            tensors: values of every tensor feature for the new pins, ``{name: [n_new, ...]}``.
            boards: optional memberships of the new pins: a DataFrame with columns ``pin_id`` and
                ``board_id`` (external ids; boards must exist), for relation ``("pin", "in", "board")``.
            ntype: the node type to append to (``"pin"``; another type, e.g. ``"board"``, takes
                ``features`` and ``tensors`` but no ``boards``).

        Returns:
            int64 ``[n_new]`` indices of the new nodes.

        Raises:
            SchemaError: a bad feature table or membership table, or ``boards`` with ``ntype`` other than ``"pin"``.
        """
        if boards is not None and ntype != "pin":
            raise SchemaError(f"boards= gives memberships of new pins, but ntype is {ntype!r}",
                              fix="add the new nodes without boards=, or add pins with ntype='pin'")
        old_n = self.num_nodes(ntype)
        new_map = self._ids[ntype].append(ids)
        n_new = len(new_map) - old_n
        table = None
        if features is not None:
            if len(features) != n_new:
                raise SchemaError(f"features has {len(features)} rows for {n_new} new pins",
                                  fix="give one feature row per new pin, in the order of ids")
            table = parse_feature_columns(features.reset_index(drop=True), self._features[ntype].kinds)
        new_feats = self._features[ntype].extend(table, dict(tensors or {}), n_new)
        # Validate memberships before mutating anything.
        new_rels = {}
        for fwd, r in self._rels.items():
            if ntype not in (fwd[0], fwd[2]):
                continue
            r = Relation(r.num_src + (n_new if fwd[0] == ntype else 0), r.num_dst + (n_new if fwd[2] == ntype else 0),
                         torch.cat([r.out_indptr, r.out_indptr[-1:].expand(n_new if fwd[0] == ntype else 0)]),
                         r.out_indices, torch.cat([r.in_indptr, r.in_indptr[-1:].expand(n_new if fwd[2] == ntype else 0)]),
                         r.in_indices, r.in_eid, r.attrs)
            new_rels[fwd] = r
        if boards is not None:
            fwd = ("pin", "in", "board")
            if fwd not in self._rels:
                raise SchemaError("graph has no ('pin', 'in', 'board') relation", fix="build it with from_collections")
            b = boards
            for c in ("pin_id", "board_id"):
                if c not in b.columns:
                    raise SchemaError(f"boards table lacks column {c!r}", column=c,
                                      fix="pass a DataFrame with columns pin_id, board_id")
            p_idx = new_map.index(b["pin_id"])
            if bool((p_idx < old_n).any()):
                raise SchemaError("boards names pins that are not among the new ids", column="pin_id",
                                  fix="list memberships of the new pins only")
            b_idx = self.index("board", b["board_id"])
            r = new_rels[fwd]
            s, d = r.coo()
            attrs = {k: torch.cat([v, torch.zeros(len(p_idx), dtype=v.dtype, device=v.device)]) for k, v in r.attrs.items()}
            new_rels[fwd], _ = build_relation(torch.cat([s, p_idx.to(s.device)]), torch.cat([d, b_idx.to(d.device)]),
                                              r.num_src, r.num_dst, attrs)
        self._ids[ntype] = new_map
        self._features[ntype] = new_feats
        self._rels.update(new_rels)
        return torch.arange(old_n, old_n + n_new)

    # -- io, summaries, conversions (implemented in their own modules) ---------------------------
    def save(self, path: str | Path, overwrite: bool = True) -> None:
        """Write the graph to directory ``path`` atomically (see :mod:`boardgraph.graph.io`).

        ``path`` must be absent, an empty folder or a saved graph holding nothing else; ``overwrite``
        allows replacing the latter. Anything else raises :class:`~boardgraph.graph.io.OutputExistsError`
        and is left untouched.
        """
        save_graph(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True) -> "PinBoardGraph":
        """Read a graph written by :meth:`save`; with ``mmap`` tensors are memory-mapped."""
        return load_graph(path, mmap=mmap)

    @staticmethod
    def _from_saved(saved: SavedGraph) -> "PinBoardGraph":
        """The graph made of the parts :func:`~boardgraph.graph.io.read_graph` returns."""
        g = PinBoardGraph()
        g._ids = dict(saved.ids)
        g._features = dict(saved.features)
        g._rels = dict(saved.relations)
        g._reverse = dict(saved.reverse)
        return g

    def describe(self) -> GraphSummary:
        """Counts, degree and board-size distributions and connected components (a GraphSummary)."""
        return describe(self)

    def to_networkx(self):
        return convert.to_networkx(self)

    @classmethod
    def from_networkx(cls, g) -> "PinBoardGraph":
        return convert.from_networkx(g, PinBoardGraph)

    def to_dgl(self):
        return convert.to_dgl(self)

    def to_pyg(self):
        return convert.to_pyg(self)

    def __repr__(self) -> str:
        nodes = ", ".join(f"{t}={self.num_nodes(t)}" for t in self.node_types)
        edges = ", ".join(f"{e}={r.num_edges}" for e, r in self._rels.items())
        return f"PinBoardGraph(nodes: {nodes}; edges: {edges}; device={self.device})"


def load_graph(path: str | Path, mmap: bool = True) -> PinBoardGraph:
    """Read a graph written by :func:`~boardgraph.graph.io.save_graph` (or :meth:`PinBoardGraph.save`):
    :func:`~boardgraph.graph.io.read_graph` reads its parts (what it checks, the arguments and the
    errors are documented there) and the graph is assembled from them."""
    return PinBoardGraph._from_saved(read_graph(path, mmap=mmap))
