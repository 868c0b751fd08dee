"""Feature fetching for mini-batches: the `FeatureFetcher` plug-in point and its default.

A fetcher maps ``{ntype: int64 [N_t] node indices}`` to ``{ntype: {name: value}}`` with row ``i``
of every value belonging to node ``i`` of the request. Swap in your own (a memory-mapped
embedding table, a remote key-value store, an image decoder pool) by implementing ``__call__``.
"""
from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

import pandas as pd
import torch
from torch import Tensor

from boardgraph.graph import PinBoardGraph, decode_image

from .errors import SamplingError

__all__ = ["FeatureFetcher", "GraphFeatureFetcher"]


@runtime_checkable
class FeatureFetcher(Protocol):
    """Reads the features of the nodes a mini-batch needs.

    ``__call__(nodes)`` gets ``{ntype: int64 [N_t]}`` (on the graph's device) and returns
    ``{ntype: {name: value}}``: tensors ``[N_t, ...]`` (any device; the loader moves them), or
    lists of ``N_t`` strings for text. It runs in the loader's background thread, so it must not
    rely on thread-local state.
    """

    def __call__(self, nodes: Mapping[str, Tensor]) -> dict[str, dict[str, Any]]: ...


class GraphFeatureFetcher:
    """Default fetcher: reads features stored in the graph's :class:`NodeFeatures`.

    Columns are converted once, at construction (text to arrays of strings, categorical to int64
    codes, numeric to float32), so a fetch is one index operation per feature.

    Args:
        graph: the graph whose features are read.
        include: ``{ntype: [feature names]}``; by default every feature except ``label`` kinds
            (ground truth is never fed to encoders) of every node type that has any.
        image_size: resize decoded images to ``size x size`` (needed for path/bytes image columns
            of mixed sizes).

    Returns (per call): text -> ``list[str]`` (missing -> ``""``); categorical -> int64 ``[N]``
    (-1 missing); numeric -> float32 ``[N]`` (NaN missing); tensors -> ``[N, ...]`` rows of the
    stored tensor (uint8 ``[N, 3, H, W]`` for images).
    """

    def __init__(self, graph: PinBoardGraph, include: Mapping[str, Sequence[str]] | None = None, *,
                 image_size: int | None = None) -> None:
        self.image_size = image_size
        if include is None:
            include = {t: [n for n in graph.features(t).names() if graph.features(t).kinds[n] != "label"]
                       for t in graph.node_types}
            include = {t: v for t, v in include.items() if v}
        self._cols: dict[str, dict[str, tuple[str, Any]]] = {}
        for t, names in include.items():
            feats = graph.features(t)
            cols = {}
            for name in names:
                if name not in feats.kinds:
                    raise SamplingError(f"node type {t!r} has no feature {name!r}; it has {sorted(feats.kinds)}")
                kind = feats.kinds[name]
                if kind == "label":  # only when asked for by name: read it as its values allow
                    col = feats.table[name] if name not in feats.tensors else None
                    kind = ("tensor" if col is None else "categorical" if isinstance(col.dtype, pd.CategoricalDtype)
                            else "numeric" if pd.api.types.is_numeric_dtype(col.dtype) else "text")
                if name in feats.tensors:
                    cols[name] = ("tensor", feats.tensors[name])
                elif kind == "text":
                    cols[name] = ("text", feats.table[name].to_numpy(dtype=object, na_value=""))
                elif kind == "categorical":
                    cols[name] = ("tensor", feats.categorical(name))
                elif kind == "numeric":
                    cols[name] = ("tensor", feats.numeric([name])[:, 0].contiguous())
                else:  # image references (paths or bytes), decoded per fetch
                    cols[name] = ("image_ref", feats.table[name].to_numpy(dtype=object))
            self._cols[t] = cols

    def __repr__(self) -> str:
        return f"GraphFeatureFetcher({ {t: list(c) for t, c in self._cols.items()} })"

    def __call__(self, nodes: Mapping[str, Tensor]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for t, idx in nodes.items():
            cols = self._cols.get(t)
            if not cols:
                continue
            res: dict[str, Any] = {}
            idx_np = None
            for name, (how, col) in cols.items():
                if how == "tensor":
                    res[name] = col.index_select(0, idx.to(col.device))
                    continue
                if idx_np is None:
                    idx_np = idx.detach().cpu().numpy()
                if how == "text":
                    res[name] = col[idx_np].tolist()
                else:  # image references, decoded now
                    refs = col[idx_np]
                    res[name] = (torch.stack([decode_image(r, self.image_size) for r in refs]) if len(refs)
                                 else torch.empty(0, 3, self.image_size or 0, self.image_size or 0, dtype=torch.uint8))
            out[t] = res
        return out
