"""External ids (strings or ints, as in the user's tables) <-> contiguous node indices."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from .errors import DuplicateIdError, UnknownIdError

__all__ = ["IdMap"]


def _as_index(ids: Any) -> pd.Index:
    if isinstance(ids, pd.Index):
        return ids
    if isinstance(ids, Tensor):
        return pd.Index(ids.cpu().numpy())
    if isinstance(ids, pd.Series):
        return pd.Index(ids.to_numpy())
    return pd.Index(np.asarray(ids) if not isinstance(ids, (list, tuple)) else ids)


class IdMap:
    """Bijection between a node type's external ids and indices ``0..n-1`` (vectorised lookups).

    Args:
        ids: unique external ids in index order (strings or integers).
        ntype: node type name, used in error messages.
        unique: the caller guarantees uniqueness (e.g. ``pd.factorize`` output): skip the check.

    Raises:
        DuplicateIdError: if ``ids`` contains a value twice.
    """

    def __init__(self, ids: Iterable[Any] | pd.Index, ntype: str = "node", *, unique: bool = False) -> None:
        index = _as_index(ids)
        if not unique and not index.is_unique:
            dup = index[index.duplicated()].unique()[:5].tolist()
            raise DuplicateIdError(f"{ntype} ids are not unique: {dup} appear more than once",
                                   column=None, fix=f"give each {ntype} one row, or de-duplicate the ids first")
        self._index = index
        self.ntype = ntype

    def __len__(self) -> int:
        return len(self._index)

    @property
    def values(self) -> np.ndarray:
        """External ids as a numpy array ``[n]`` in index order."""
        return self._index.to_numpy()

    @property
    def pandas_index(self) -> pd.Index:
        return self._index

    def index(self, ids: Any, missing: str = "raise") -> Tensor:
        """Indices of external ids: int64 ``[n]``.

        Args:
            ids: a scalar, list, numpy array, Series or tensor of external ids.
            missing: ``"raise"`` (default) raises :class:`UnknownIdError` naming unknown ids;
                ``"ignore"`` returns ``-1`` for them.
        """
        scalar = np.isscalar(ids) or isinstance(ids, str)
        q = _as_index([ids] if scalar else ids)
        pos = self._index.get_indexer(q)
        if missing == "raise" and (pos < 0).any():
            bad = q[pos < 0][:5].tolist()
            n_bad = int((pos < 0).sum())
            raise UnknownIdError(
                f"{n_bad} unknown {self.ntype} id(s), e.g. {bad}",
                fix=f"check the ids against graph.ids('{self.ntype}'), or pass missing='ignore' to get -1")
        elif missing not in ("raise", "ignore"):
            raise ValueError(f"missing must be 'raise' or 'ignore', got {missing!r}")
        return torch.from_numpy(np.asarray(pos, dtype=np.int64))

    def ids(self, idx: Any) -> np.ndarray:
        """External ids of indices ``idx`` (int tensor/array ``[n]``) as a numpy array ``[n]``."""
        if isinstance(idx, Tensor):
            idx = idx.detach().cpu().numpy()
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"{self.ntype} index out of range [0, {len(self)}): got {idx.min()}..{idx.max()}")
        return self.values[idx]

    def append(self, ids: Any) -> "IdMap":
        """A new map with ``ids`` appended at indices ``n..n+m-1``; they must all be new."""
        new = _as_index(ids)
        clash = self._index.get_indexer(new) >= 0
        if clash.any():
            raise DuplicateIdError(f"{self.ntype} ids already exist: {new[clash][:5].tolist()}",
                                   fix="add only new ids; existing nodes keep their index")
        return IdMap(self._index.append(new), self.ntype)

    def take(self, idx: Tensor) -> "IdMap":
        """A new map of the ids at ``idx`` (in that order), for subgraphs."""
        return IdMap(self._index[np.asarray(idx.cpu(), dtype=np.int64)], self.ntype)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"id": self.values})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._index.equals(other._index)
