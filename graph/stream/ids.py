"""Provisional node codes for an out-of-core build: an incremental dictionary per node type.

Ids get codes ``0, 1, 2, ...`` in order of first appearance, batch after batch.

* Integer ids go into a hash table of int64 (pandas' factorizer): about 60 bytes per distinct id
  at its peak (the table doubles as it grows), freed after the scan but for the ids themselves
  (8 bytes each).
* Text ids are hashed to 64 bits (SipHash with a fixed key), and the hashes go into the same table;
  the text itself is kept once per id in an Arrow array (its UTF-8 bytes plus 8), and a second,
  independent 64-bit hash per id (8 bytes) detects collisions: two different ids with the same
  first hash raise :class:`IdCollisionError` instead of being merged. With a billion distinct ids
  the chance of a first-hash collision is about 3%, and of one the second hash misses 2**-64.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas._libs import hashtable as _ht

from ..errors import BuildError, SchemaError, show_value

__all__ = ["IdDictionary", "IdCollisionError", "id_type", "text_hashes"]

_KEYS = ("boardgraph-ids-1", "boardgraph-ids-2")  # SipHash keys: 16 characters each


class IdCollisionError(BuildError):
    """Two different text ids hash to the same 64-bit value in an out-of-core build."""

    reason = "id_hash_collision"


def id_type(values: pd.Series, column: str) -> str:
    """``"int"`` or ``"str"``: how an out-of-core build keys the id column ``column`` (from its first batch).

    Raises:
        SchemaError: ids that are neither integers nor text (floats, dates, mixed objects).
    """
    dt = values.dtype
    if pd.api.types.is_integer_dtype(dt) and not pd.api.types.is_bool_dtype(dt):
        return "int"
    if pd.api.types.is_string_dtype(dt) and (dt != object or pd.api.types.infer_dtype(values, skipna=True)
                                            in ("string", "empty")):
        return "str"
    raise SchemaError(f"column {column!r} holds {pd.api.types.infer_dtype(values, skipna=True)} ids "
                      f"({dt}); an out-of-core build keys nodes by integer or text ids", column=column,
                      fix="store the ids as integers or strings, or build in memory (method='memory')")


def text_hashes(text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 64-bit hashes (uint64 ``[n]`` each) of the strings ``text`` (object ``[n]``)."""
    return (pd.util.hash_array(text, hash_key=_KEYS[0], categorize=False),
            pd.util.hash_array(text, hash_key=_KEYS[1], categorize=False))


class IdDictionary:
    """Codes of one node type's ids in order of first appearance (see the module docstring).

    Args:
        ntype: the node type, for messages.
        kind: ``"int"`` or ``"str"`` (:func:`id_type`).
        column: the id column, for messages.
    """

    def __init__(self, ntype: str, kind: str, column: str) -> None:
        self.ntype, self.kind, self.column = ntype, kind, column
        self._table = _ht.Int64Factorizer(1 << 16)
        self._check = np.zeros(1 << 16, np.uint64)  # second hash of each text id, by code
        self._text: list[pa.Array] = []
        self._dtype: np.dtype | None = None

    def __len__(self) -> int:
        return int(self._table.count) if self._table is not None else len(self._ids)

    def encode(self, uniques: pd.Index) -> np.ndarray:
        """Codes ``[len(uniques)]`` (int64) of distinct non-null ids given in order of first
        appearance; ids not seen before get the next codes, in that order.

        Raises:
            IdCollisionError: a text id hashes like a different one seen before.
        """
        if self.kind == "int":
            if self._dtype is None:
                self._dtype = np.dtype(getattr(uniques.dtype, "numpy_dtype", uniques.dtype))  # Int64 -> int64
            return self._table.factorize(np.asarray(uniques, dtype=np.int64))
        text = np.asarray(uniques, dtype=object)
        h1, h2 = text_hashes(text)
        before = len(self)
        codes = self._table.factorize(h1.view(np.int64))
        new = codes >= before
        if new.any():
            first = np.flatnonzero(new)
            first = first[np.unique(codes[first], return_index=True)[1]]  # one text per new code, in code order
            n = len(self)
            if n > len(self._check):
                self._check = np.concatenate([self._check, np.zeros(max(n, 2 * len(self._check)) - len(self._check),
                                                                    np.uint64)])
            self._check[codes[first]] = h2[first]
            self._text.append(pa.array(text[first], type=pa.large_string()))
        clash = self._check[codes] != h2
        if clash.any():
            i = int(np.flatnonzero(clash)[0])
            raise IdCollisionError(f"column {self.column!r}: {self.ntype} id {show_value(text[i])} has the same "
                                   f"64-bit hash as a different {self.ntype} id read before it", column=self.column,
                                   fix="rename one of the two ids, or build in memory (method='memory'), which "
                                       "compares ids themselves")
        return codes

    def freeze(self) -> None:
        """Drop the hash table once every id is encoded; :meth:`ids` still works."""
        if self.kind == "int":
            vals = self._table.uniques.to_array()
            self._ids = vals.astype(self._dtype) if self._dtype is not None else vals
        else:
            self._ids = pa.concat_arrays(self._text) if self._text else pa.array([], pa.large_string())
            self._text = []
        self._table, self._check = None, None

    def ids(self, codes: np.ndarray) -> pa.Array:
        """The ids of ``codes`` (after :meth:`freeze`), as an Arrow array."""
        codes = np.asarray(codes, np.int64)
        if self.kind == "int":
            return pa.array(self._ids[codes])
        return self._ids.take(pa.array(codes))

    def nbytes(self) -> int:
        """Bytes held now (the hash table's are estimated at 48 per id; the ids and checks exactly)."""
        if self._table is not None:
            held = 48 * len(self) + (self._check.nbytes if self.kind == "str" else 0)
            return held + sum(a.nbytes for a in self._text)
        return int(self._ids.nbytes)
