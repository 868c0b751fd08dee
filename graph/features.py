"""Per-node-type feature store: text, image references, categorical and numeric metadata, tensors.

Row ``i`` of a :class:`NodeFeatures` belongs to node index ``i`` of its node type. Tabular
features live in a pandas DataFrame (saved as Parquet); dense features (pre-decoded uint8 images,
cached embeddings) are tensors ``[N, ...]`` (saved as ``.npy``). Image references in the table
(file paths or encoded bytes) are decoded only when asked for.
"""
from __future__ import annotations

import io
from typing import Any, Protocol, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from .errors import ImageReadError, SchemaError

__all__ = ["NodeFeatures", "FeatureSource", "FEATURE_KINDS", "decode_image"]

#: Kinds of feature. ``label`` holds ground truth for evaluation and is never fed to encoders.
FEATURE_KINDS = ("text", "image", "categorical", "numeric", "tensor", "label")


class FeatureSource(Protocol):
    """What samplers and loaders need from a feature store (plug in your own implementation)."""

    num_nodes: int

    def names(self, kind: str | None = None) -> list[str]: ...
    def text(self, name: str, idx: Tensor | None = None) -> list[str]: ...
    def numeric(self, names: Sequence[str], idx: Tensor | None = None) -> Tensor: ...
    def categorical(self, name: str, idx: Tensor | None = None) -> Tensor: ...
    def images(self, name: str, idx: Tensor, size: int | None = None) -> Tensor: ...


def decode_image(ref: Any, size: int | None = None) -> Tensor:
    """Decode one image reference (path, bytes, or uint8 tensor/array ``[3, H, W]``) to uint8 ``[3, H, W]``.

    With ``size`` the image is resized (bilinear) to ``size x size``.

    Raises:
        ImageReadError: the file is missing/unreadable or the bytes do not decode.
    """
    if ref is None or (isinstance(ref, float) and np.isnan(ref)):
        raise ImageReadError("this node has no image (missing value)",
                             fix="select nodes that have an image, or treat the image modality as missing")
    if isinstance(ref, Tensor) or isinstance(ref, np.ndarray):
        t = torch.as_tensor(ref)
        if t.dtype != torch.uint8 or t.dim() != 3:
            raise ImageReadError(f"image tensors must be uint8 [3, H, W], got {t.dtype} {tuple(t.shape)}",
                                 fix="convert with (x * 255).round().to(torch.uint8)")
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            src = io.BytesIO(ref) if isinstance(ref, (bytes, bytearray, memoryview)) else ref
            with Image.open(src) as im:
                im = im.convert("RGB")
                if size is not None:
                    im = im.resize((size, size), Image.BILINEAR)
                arr = np.asarray(im, dtype=np.uint8)
        except Image.DecompressionBombError as e:   # not an OSError: a huge image is refused, never decoded
            what = "bytes" if isinstance(ref, (bytes, bytearray, memoryview)) else repr(ref)
            raise ImageReadError(f"image {what[:200]} is too large to decode: {e}",
                                 fix="resize it (or rebuild the graph: the build refuses such images)") from e
        except (OSError, UnidentifiedImageError, ValueError) as e:
            what = "bytes" if isinstance(ref, (bytes, bytearray, memoryview)) else repr(ref)
            raise ImageReadError(f"cannot read image {what[:200]}: {e}",
                                 fix="check the path exists and is a readable image file") from e
        return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()
    if size is not None and (t.shape[1] != size or t.shape[2] != size):
        t = torch.nn.functional.interpolate(t[None].float(), size=(size, size), mode="bilinear",
                                            align_corners=False)[0].round().clamp(0, 255).to(torch.uint8)
    return t


def _idx_np(idx: Tensor | np.ndarray | Sequence[int] | None, n: int) -> np.ndarray:
    if idx is None:
        return np.arange(n)
    if isinstance(idx, Tensor):
        idx = idx.detach().cpu().numpy()
    return np.asarray(idx, dtype=np.int64)


class NodeFeatures:
    """Features of one node type (see the module docstring).

    Args:
        num_nodes: number of nodes of the type; every column and tensor has this many rows.
    """

    def __init__(self, num_nodes: int) -> None:
        self.num_nodes = int(num_nodes)
        self.table = pd.DataFrame(index=pd.RangeIndex(self.num_nodes))
        self.tensors: dict[str, Tensor] = {}
        self.kinds: dict[str, str] = {}

    # -- adding -------------------------------------------------------------------------------
    def add_column(self, name: str, values: Any, kind: str) -> None:
        """Add (or replace) a table column of ``kind`` (text, image, categorical, numeric, label).

        ``values`` has one entry per node in index order. Text is stored as strings (missing
        stays missing), categorical as a pandas Categorical, numeric as float64 with NaN for
        missing, image columns as paths or bytes.
        """
        self._check_kind(kind, tensor=False)
        values = pd.Series(values).reset_index(drop=True) if not isinstance(values, pd.Series) \
            else values.reset_index(drop=True)
        if len(values) != self.num_nodes:
            raise SchemaError(f"feature {name!r} has {len(values)} rows, expected {self.num_nodes}",
                              column=name, fix="give one value per node, in node index order")
        if kind == "numeric":
            values = pd.to_numeric(values, errors="raise").astype("float64")
        elif kind == "categorical":
            values = values.astype("category")
        elif kind == "text":
            values = values.astype("string")
        self.table[name] = values.to_numpy() if kind != "categorical" else values.values
        self.kinds[name] = kind

    def add_tensor(self, name: str, tensor: Tensor, kind: str = "tensor") -> None:
        """Add a dense feature ``[num_nodes, ...]`` (``kind="image"`` for uint8 ``[N, 3, H, W]``)."""
        self._check_kind(kind, tensor=True)
        if tensor.shape[0] != self.num_nodes:
            raise SchemaError(f"tensor feature {name!r} has {tensor.shape[0]} rows, expected {self.num_nodes}",
                              column=name, fix="stack one row per node, in node index order")
        if kind == "image" and (tensor.dtype != torch.uint8 or tensor.dim() != 4 or tensor.shape[1] != 3):
            raise SchemaError(f"image tensor {name!r} must be uint8 [N, 3, H, W], got {tensor.dtype} "
                              f"{tuple(tensor.shape)}", column=name, fix="convert to uint8 RGB, channels first")
        self.tensors[name] = tensor
        self.kinds[name] = kind

    def _check_kind(self, kind: str, tensor: bool) -> None:
        allowed = ("tensor", "image", "label") if tensor else ("text", "image", "categorical", "numeric", "label")
        if kind not in allowed:
            raise ValueError(f"kind must be one of {allowed}, got {kind!r}")

    # -- reading ------------------------------------------------------------------------------
    def names(self, kind: str | None = None) -> list[str]:
        """Feature names, optionally only those of one kind."""
        return [n for n, k in self.kinds.items() if kind is None or k == kind]

    def __contains__(self, name: str) -> bool:
        return name in self.kinds

    def __getitem__(self, name: str) -> Any:
        """The raw column (pandas Series) or tensor of a feature."""
        if name in self.tensors:
            return self.tensors[name]
        if name in self.table.columns:
            return self.table[name]
        raise KeyError(f"no feature {name!r}; have {sorted(self.kinds)}")

    def text(self, name: str, idx: Tensor | None = None) -> list[str]:
        """Strings of a text column for ``idx`` (all nodes when None); missing -> ``""``."""
        col = self.table[name].to_numpy(dtype=object, na_value="")
        return col[_idx_np(idx, self.num_nodes)].tolist()

    def numeric(self, names: Sequence[str], idx: Tensor | None = None) -> Tensor:
        """float32 ``[B, len(names)]`` of numeric columns, NaN where missing."""
        arr = self.table[list(names)].to_numpy(dtype=np.float32, na_value=np.nan)
        return torch.from_numpy(arr[_idx_np(idx, self.num_nodes)])

    def categorical(self, name: str, idx: Tensor | None = None) -> Tensor:
        """int64 ``[B]`` category codes (``-1`` where missing); vocabulary in :meth:`categories`."""
        codes = np.asarray(self.table[name].cat.codes, dtype=np.int64)
        return torch.from_numpy(codes[_idx_np(idx, self.num_nodes)])

    def categories(self, name: str) -> list[Any]:
        """The vocabulary of a categorical column (code ``i`` -> ``categories[i]``)."""
        return self.table[name].cat.categories.tolist()

    def images(self, name: str, idx: Tensor, size: int | None = None) -> Tensor:
        """Decoded images uint8 ``[B, 3, H, W]`` for node indices ``idx``.

        Tensor features are indexed directly (on their device); table columns of paths or bytes
        are decoded lazily, here, and need ``size`` unless all images share one size.
        """
        if name in self.tensors:
            t = self.tensors[name]
            out = t[idx.to(t.device)] if isinstance(idx, Tensor) else t[torch.as_tensor(idx)]
            if size is not None and out.shape[-1] != size:
                out = torch.nn.functional.interpolate(out.float(), size=(size, size), mode="bilinear",
                                                      align_corners=False).round().clamp(0, 255).to(torch.uint8)
            return out
        refs = self.table[name].to_numpy(dtype=object)[_idx_np(idx, self.num_nodes)]
        return torch.stack([decode_image(r, size) for r in refs]) if len(refs) else \
            torch.empty(0, 3, size or 0, size or 0, dtype=torch.uint8)

    # -- structure ----------------------------------------------------------------------------
    def take(self, idx: Tensor) -> "NodeFeatures":
        """Features of the nodes ``idx`` (new store; rows re-indexed ``0..len(idx)-1``)."""
        i = _idx_np(idx, self.num_nodes)
        out = NodeFeatures(len(i))
        out.table = self.table.iloc[i].reset_index(drop=True)
        out.tensors = {k: v[torch.as_tensor(i, device=v.device)] for k, v in self.tensors.items()}
        out.kinds = dict(self.kinds)
        return out

    def extend(self, table: pd.DataFrame | None, tensors: dict[str, Tensor] | None, n_new: int) -> "NodeFeatures":
        """A new store with ``n_new`` rows appended. Missing table columns become missing values;
        every existing tensor feature must be given for the new rows."""
        out = NodeFeatures(self.num_nodes + n_new)
        new = (table.reset_index(drop=True) if table is not None else pd.DataFrame(index=pd.RangeIndex(n_new)))
        extra = [c for c in new.columns if c not in self.table.columns]
        if extra:
            raise SchemaError(f"new rows have feature columns the graph does not know: {extra}",
                              column=extra[0], fix=f"use the existing columns {list(self.table.columns)}")
        parts = {}
        for c in self.table.columns:
            old = self.table[c]
            add = new[c] if c in new.columns else pd.Series([None] * n_new)
            if self.kinds[c] == "categorical":
                cats = old.cat.categories.union(pd.Index(add.dropna().unique()))
                parts[c] = pd.Categorical(pd.concat([old.astype(object), add.astype(object)], ignore_index=True),
                                          categories=cats)
            elif self.kinds[c] == "numeric":
                parts[c] = pd.concat([old, pd.to_numeric(add).astype("float64")], ignore_index=True).to_numpy()
            else:
                parts[c] = pd.concat([old.astype(old.dtype), add.astype(old.dtype)], ignore_index=True).to_numpy()
        out.table = pd.DataFrame(parts, index=pd.RangeIndex(out.num_nodes)) if parts else out.table
        tensors = tensors or {}
        missing = [k for k in self.tensors if k not in tensors]
        if missing:
            raise SchemaError(f"new nodes lack tensor features {missing}", column=missing[0],
                              fix="pass tensors={name: tensor [n_new, ...]} for each")
        for k, v in self.tensors.items():
            t = tensors[k].to(v.device, v.dtype)
            if t.shape[0] != n_new or t.shape[1:] != v.shape[1:]:
                raise SchemaError(f"tensor feature {k!r} for new nodes must be [{n_new}, {', '.join(map(str, v.shape[1:]))}], "
                                  f"got {tuple(t.shape)}", column=k, fix="match the existing feature's shape")
            out.tensors[k] = torch.cat([v, t])
        out.kinds = dict(self.kinds)
        return out

    def apply(self, fn) -> "NodeFeatures":
        """A shallow copy with ``fn`` applied to every tensor feature (device moves, pinning)."""
        out = NodeFeatures(self.num_nodes)
        out.table, out.kinds = self.table, dict(self.kinds)
        out.tensors = {k: fn(v) for k, v in self.tensors.items()}
        return out

    def __repr__(self) -> str:
        return f"NodeFeatures(num_nodes={self.num_nodes}, features={self.kinds})"
