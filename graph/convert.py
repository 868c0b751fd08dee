"""Conversions to and from networkx, DGL and PyG (the latter two only when installed).

The functions take the graph duck-typed (anything with :class:`PinBoardGraph`'s accessors), and
:func:`from_networkx` is given the class to build, so this module does not import the store.
"""
from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, TypeVar

import networkx as nx
import numpy as np
import torch

from .errors import SchemaError

if TYPE_CHECKING:
    from .store import PinBoardGraph

_G = TypeVar("_G", bound="PinBoardGraph")

__all__ = ["to_networkx", "from_networkx", "to_dgl", "to_pyg"]


def to_networkx(graph: PinBoardGraph) -> nx.MultiDiGraph:
    """A ``networkx.MultiDiGraph`` with nodes ``(ntype, external_id)`` and one edge per stored
    (forward) edge, carrying ``relation``, ``reverse`` and the edge attributes. Node attribute
    ``ntype`` is set; features are not copied (they can be large)."""
    g = nx.MultiDiGraph()
    for t in graph.node_types:
        g.add_nodes_from(((t, i) for i in graph.ids(t).tolist()), ntype=t)
    for fwd in graph.canonical_edge_types:
        s, d = graph.edges(fwd)
        sid, did = graph.ids(fwd[0], s).tolist(), graph.ids(fwd[2], d).tolist()
        attrs = {k: v.cpu().tolist() for k, v in graph.relation(fwd).attrs.items()}
        rev = graph.reverse_of(fwd)[1]
        for j, (a, b) in enumerate(zip(sid, did)):
            g.add_edge((fwd[0], a), (fwd[2], b), relation=fwd[1], reverse=rev,
                       **{k: v[j] for k, v in attrs.items()})
    return g


def from_networkx(g: nx.Graph, graph_type: type[_G]) -> _G:
    """Build a graph of class ``graph_type`` (:class:`PinBoardGraph`; :meth:`PinBoardGraph.from_networkx`
    passes it) from a networkx graph whose nodes are ``(ntype, id)`` tuples (or carry an ``ntype``
    attribute) and whose edges carry ``relation`` (and optionally ``reverse`` and numeric
    attributes). Node order per type follows ``g.nodes``."""
    def ntype_of(n, data):
        if "ntype" in data:
            return data["ntype"], (n[1] if isinstance(n, tuple) and len(n) == 2 else n)
        if isinstance(n, tuple) and len(n) == 2:
            return n
        raise SchemaError(f"networkx node {n!r} has no ntype", fix="name nodes (ntype, id) or set an 'ntype' attribute")

    by_type: dict[str, list] = {}
    key = {}
    for n, data in g.nodes(data=True):
        t, i = ntype_of(n, data)
        key[n] = (t, len(by_type.setdefault(t, [])))
        by_type[t].append(i)
    out = graph_type()
    for t, ids in by_type.items():
        out.add_node_type(t, ids)
    groups: dict[tuple, dict] = {}
    for a, b, data in g.edges(data=True):
        if "relation" not in data:
            raise SchemaError(f"networkx edge {a!r} -> {b!r} has no 'relation' attribute",
                              fix="set relation='in' (etc.) on every edge")
        et = (key[a][0], data["relation"], key[b][0])
        grp = groups.setdefault(et, {"src": [], "dst": [], "reverse": data.get("reverse"), "attrs": {}})
        grp["src"].append(key[a][1])
        grp["dst"].append(key[b][1])
        for k, v in data.items():
            if k not in ("relation", "reverse"):
                grp["attrs"].setdefault(k, []).append(v)
    for et, grp in groups.items():
        attrs = {k: torch.as_tensor(np.asarray(v)) for k, v in grp["attrs"].items() if len(v) == len(grp["src"])}
        out.add_relation(et, torch.tensor(grp["src"], dtype=torch.int64), torch.tensor(grp["dst"], dtype=torch.int64),
                         reverse=grp["reverse"], attrs=attrs)
    return out


def _require(pkg: str, purpose: str):
    if importlib.util.find_spec(pkg) is None:
        raise ImportError(f"{purpose} needs the optional package '{pkg}', which is not installed; "
                          f"boardgraph does not depend on it (install it yourself to export)")
    return importlib.import_module(pkg)


def to_dgl(graph: PinBoardGraph):
    """A ``dgl.heterograph`` with every edge type (forward and reverse) and the edge attributes."""
    dgl = _require("dgl", "to_dgl()")
    data = {}
    for et in graph.edge_types:
        s, d = graph.edges(et)
        data[et] = (s.cpu(), d.cpu())
    g = dgl.heterograph(data, num_nodes_dict={t: graph.num_nodes(t) for t in graph.node_types})
    for fwd in graph.canonical_edge_types:
        for k, v in graph.relation(fwd).attrs.items():
            g.edges[fwd].data[k] = v.cpu()
            g.edges[graph.reverse_of(fwd)].data[k] = v.cpu()
    return g


def to_pyg(graph: PinBoardGraph):
    """A ``torch_geometric.data.HeteroData`` with ``edge_index`` for every edge type (forward and
    reverse, in forward eid order), edge attributes, and each node type's ``num_nodes`` plus its
    tensor features."""
    _require("torch_geometric", "to_pyg()")
    from torch_geometric.data import HeteroData

    data = HeteroData()
    for t in graph.node_types:
        data[t].num_nodes = graph.num_nodes(t)
        for k, v in graph.features(t).tensors.items():
            data[t][k] = v
    for fwd in graph.canonical_edge_types:
        s, d = graph.edges(fwd)
        for et, ei in ((fwd, torch.stack([s, d])), (graph.reverse_of(fwd), torch.stack([d, s]))):
            data[et].edge_index = ei
            for k, v in graph.relation(fwd).attrs.items():
                data[et][k] = v
    return data
