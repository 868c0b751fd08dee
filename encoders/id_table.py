"""Per-pin ID embeddings: a full table (one row per pin) or a hashed one for huge catalogues.

A hashed table has ``buckets`` rows, fewer than the pins; pin ``i``'s ID embedding is the sum of
the rows ``h_1(i), ..., h_k(i)`` of ``k`` independent hashes of its node index (MurmurHash3's
finaliser with a seed per hash, modulo ``buckets``: well mixed even for consecutive indices,
which a linear ``(a i + b) mod p`` hash is not). Two pins share their whole embedding
only when all ``k`` hashes collide (about ``pins^2 / (2 buckets^k)`` pairs: 8 pairs for ``k = 2``
and a quarter of the pins' rows, at any size), while the table and its optimizer state take a
quarter of the memory (the "hashing trick" with double hashing of
Weinberger et al. 2009 and Svenstrup et al. 2017, without the per-pin weights that would
bring an ``O(pins)`` table back).

Both kinds expose ``weight`` (the trainable ``[rows, E]`` parameter, state-dict key
``weight``, so checkpoints of the full table load as before), :meth:`IdTable.rows` (which
rows a pin reads) and ``forward(index) -> [B, E]``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .errors import EncoderConfigError

__all__ = ["IdTable", "hash_rows", "MAX_HASHES"]

_M32 = 0xFFFF_FFFF
_SEEDS = (0x9E37_79B9, 0x85EB_CA6B, 0xC2B2_AE35, 0x27D4_EB2F)   # one per hash: fixed, so a pin's rows never change
MAX_HASHES = len(_SEEDS)


def _mul32(h: Tensor, c: int) -> Tensor:
    """``h * c mod 2^32`` for ``h`` in ``[0, 2^32)``, in 16-bit halves so no int64 product overflows."""
    return (((((h >> 16) * c) & 0xFFFF) << 16) + (h & 0xFFFF) * c) & _M32


def _fmix32(h: Tensor) -> Tensor:
    """MurmurHash3's 32-bit finaliser: every input bit flips each output bit with probability ~1/2."""
    h = h ^ (h >> 16)
    h = _mul32(h, 0x85EB_CA6B)
    h = h ^ (h >> 13)
    h = _mul32(h, 0xC2B2_AE35)
    return h ^ (h >> 16)


def hash_rows(index: Tensor, buckets: int, hashes: int) -> Tensor:
    """int64 ``[*index.shape, hashes]``: the bucket of each of ``hashes`` independent hashes (seeded
    MurmurHash3 finalisers) of each node index of ``index`` (int, ``>= 0``), in ``[0, buckets)``;
    the same on every device and run."""
    i = index.long()
    return torch.stack([_fmix32(_fmix32((i & _M32) ^ s) ^ (i >> 32)).remainder(buckets) for s in _SEEDS[:hashes]], -1)


class IdTable(nn.Module):
    """The ID embedding of ``num_ids`` pins, ``dim`` wide: full (``buckets = 0``: one row per pin,
    an ``nn.Embedding``'s layout) or hashed (``buckets`` rows shared through ``hashes`` hashes).

    Args:
        num_ids: pins that may carry an ID (node indices ``0 .. num_ids - 1``).
        dim: embedding width E.
        buckets: rows of a hashed table (``0 < buckets``; 0: the full table).
        hashes: rows summed per pin of a hashed table, in ``[1, MAX_HASHES]``.

    Raises:
        EncoderConfigError: a negative size or ``hashes`` out of range.
    """

    def __init__(self, num_ids: int, dim: int, buckets: int = 0, hashes: int = 2) -> None:
        super().__init__()
        if num_ids < 1 or dim < 1 or buckets < 0 or not 1 <= hashes <= MAX_HASHES:
            raise EncoderConfigError(f"IdTable needs num_ids >= 1, dim >= 1, buckets >= 0 and hashes in [1, "
                                     f"{MAX_HASHES}], got {num_ids}, {dim}, {buckets}, {hashes}",
                                     fix="e.g. buckets=num_ids // 4, hashes=2 (or buckets=0: a row per pin)")
        self.num_ids, self.dim, self.buckets = num_ids, dim, buckets
        self.hashes = hashes if buckets else 1
        self.weight = nn.Parameter(torch.empty(buckets or num_ids, dim))
        nn.init.normal_(self.weight)   # the draw nn.Embedding makes: later modules' init stays as it was
        nn.init.zeros_(self.weight)    # starts as the content model; the graph terms grow it

    @property
    def hashed(self) -> bool:
        return self.buckets > 0

    @property
    def num_rows(self) -> int:
        """Rows of ``weight``: ``buckets``, or ``num_ids`` for a full table."""
        return int(self.weight.shape[0])

    def rows(self, index: Tensor) -> Tensor:
        """int64 ``[B, hashes]``: the rows of ``weight`` that pins ``index [B]`` read (summed)."""
        if not self.hashed:
            return index.long()[:, None]
        return hash_rows(index, self.buckets, self.hashes)

    def forward(self, index: Tensor) -> Tensor:
        """float ``[B, E]``: the ID embeddings of pins ``index [B]`` (in ``[0, num_ids)``)."""
        return self.weight[self.rows(index)].sum(1)

    def extra_repr(self) -> str:
        kind = f"buckets={self.buckets}, hashes={self.hashes}" if self.hashed else "full"
        return f"num_ids={self.num_ids}, dim={self.dim}, {kind}"
