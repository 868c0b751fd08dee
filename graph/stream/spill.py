"""Disk spill for an out-of-core build: records partitioned by key ranges, ``.npy`` files written in
pieces, ``.npy`` files read in ranges, and the memory limit.

Everything here reads and writes files with plain reads and writes, never memory maps: pages of a
memory-mapped file count towards the process's resident memory until the kernel needs them back,
so a map of a 10 GB file would break a 4 GB limit; the page cache of plain reads does not.
"""
from __future__ import annotations

import os
import re
import shutil
import struct
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from boardgraph.errors import BoardgraphError

__all__ = ["Buckets", "NpyWriter", "read_npy_range", "npy_length", "parse_memory", "fmt_bytes", "rss_bytes",
           "MemoryLimitError"]

_HEADER = 128  # bytes of an .npy header written by NpyWriter (room for any 1-D shape)
_MAX_FILES = 512
_ONE_KEY = 16  # a single key may fill this many groups' worth of records, read at once


class MemoryLimitError(BoardgraphError, MemoryError):
    """A single node has more memberships than fit in the memory limit of an out-of-core build."""


def parse_memory(value: int | str) -> int:
    """Bytes of a memory size: an int, or text such as ``"4G"``, ``"512M"``, ``"4GiB"``, ``"2.5GB"``
    (K, M, G, T are powers of 1024).

    Raises:
        ValueError: text that is not a size, or a size under 256 MiB.
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        n = int(value)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", str(value), re.IGNORECASE)
        if not m:
            raise ValueError(f"memory size {value!r} is not a size; write e.g. 4G, 512M or 4096M")
        n = int(float(m.group(1)) * 1024 ** " KMGT".index((m.group(2) or " ").upper()))
    if n < 256 * 2**20:
        raise ValueError(f"memory size {value!r} is under 256M; an out-of-core build needs at least 256M "
                         f"(4G or more is sensible for a billion rows)")
    return n


def fmt_bytes(n: float) -> str:
    """``4.0 GB`` (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"


def rss_bytes() -> int:
    """Resident memory of this process now, in bytes (0 where /proc is not available)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class Buckets:
    """Records of a structured ``dtype`` spilled to files, partitioned by ranges of the integer field ``key``.

    Bucket ``i`` holds the records whose key lies in ``[starts[i], starts[i + 1])`` (the last one is
    open-ended), in the order they were added. :meth:`groups` reads them back in key order.

    Args:
        folder: a new folder for the files (deleted by :meth:`groups` as it reads).
        dtype: the records' structured dtype.
        key: the field the ranges are of (non-negative integers).
        starts: ascending range starts, ``starts[0] == 0``; at most 512.
        what: what a key is, for messages (``"pin"``).
    """

    def __init__(self, folder: Path, dtype: np.dtype, key: str, starts: np.ndarray, what: str = "node") -> None:
        self.folder, self.dtype, self.key, self.what = Path(folder), np.dtype(dtype), key, what
        self.starts = np.asarray(starts, np.int64)
        if len(self.starts) > _MAX_FILES or self.starts[0] != 0:
            raise ValueError("starts must begin at 0 and name at most 512 buckets")
        self.folder.mkdir(parents=True)
        self.counts = np.zeros(len(self.starts), np.int64)
        self._files: dict[int, BinaryIO] = {}
        # a key's bucket: by division when the ranges are equal, else by a table over the keys
        steps = np.diff(self.starts)
        self._width = int(steps[0]) if len(steps) and np.all(steps == steps[0]) else 0
        self._table = None if self._width or len(self.starts) == 1 else \
            np.repeat(np.arange(len(self.starts), dtype=np.int16), np.diff(np.r_[self.starts, self.starts[-1] + 1]))

    def _path(self, i: int) -> Path:
        return self.folder / f"{i:04d}.bin"

    def add(self, recs: np.ndarray) -> None:
        """Append the records ``recs`` (dtype ``self.dtype``) to their buckets."""
        if not len(recs):
            return
        keys = recs[self.key]
        last = len(self.starts) - 1
        if self._width:
            b = np.minimum(keys // self._width, last).astype(np.int16)
        elif self._table is not None:
            b = self._table[np.minimum(keys, self.starts[-1])]
        else:
            b = np.zeros(len(recs), np.int16)
        order = np.argsort(b, kind="stable")  # a radix sort for int16
        b, recs = b[order], recs[order]
        cuts = np.flatnonzero(b[1:] != b[:-1]) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(b)]):
            i = int(b[lo])
            if i not in self._files:
                self._files[i] = open(self._path(i), "ab", buffering=1 << 16)
            self._files[i].write(memoryview(recs[lo:hi]).cast("B"))
            self.counts[i] += hi - lo

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def groups(self, capacity: int, delete: bool = True) -> Iterator[tuple[int, np.ndarray]]:
        """``(lo, records)`` in key order: consecutive buckets merged while they hold at most
        ``capacity`` records together, and a bucket over ``capacity`` split into finer ranges (one
        more read and write of it). ``lo`` is the first key of the group's range; within a
        bucket records keep the order they were added in. With ``delete`` each file is removed once
        read, and the folder at the end. A single key with more than ``capacity`` records is read as
        a group of its own, up to 16 x ``capacity``.

        Raises:
            MemoryLimitError: a single key has more than 16 x ``capacity`` records.
        """
        self.close()
        pending: list[int] = []
        for i in np.flatnonzero(self.counts):
            i = int(i)
            if self.counts[i] > capacity:
                yield from self._flush(pending, delete)
                pending = []
                yield from self._split(i, capacity, delete)
                continue
            if pending and self.counts[pending].sum() + self.counts[i] > capacity:
                yield from self._flush(pending, delete)
                pending = []
            pending.append(i)
        yield from self._flush(pending, delete)
        if delete:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _flush(self, ids: list[int], delete: bool) -> Iterator[tuple[int, np.ndarray]]:
        if not ids:
            return
        out = np.empty(int(self.counts[ids].sum()), self.dtype)
        at = 0
        for i in ids:  # read each file straight into its slice: no second copy
            n = int(self.counts[i])
            with open(self._path(i), "rb") as fh:
                fh.readinto(memoryview(out[at:at + n]).cast("B"))
            at += n
            if delete:
                self._path(i).unlink()
        yield int(self.starts[ids[0]]), out

    def _split(self, i: int, capacity: int, delete: bool) -> Iterator[tuple[int, np.ndarray]]:
        path, n = self._path(i), int(self.counts[i])
        step = max(1, capacity)
        lo, hi = int(self.starts[i]), None
        for start in range(0, n, step):  # pass 1: the keys' range and coarse counts
            k = np.fromfile(path, dtype=self.dtype, count=step, offset=start * self.dtype.itemsize)[self.key]
            hi = max(hi or 0, int(k.max()) + 1)
        if hi - lo == 1:  # one key: read whole when it fits 16 groups' worth, else give up
            if n > _ONE_KEY * capacity:
                raise MemoryLimitError(f"one {self.what} (number {lo} in reading order) has {n:,} memberships, more "
                                       f"than the {_ONE_KEY * capacity:,} that fit in this build's memory limit; "
                                       f"raise the limit (max_memory / --max-memory)")
            yield from self._flush([i], delete)
            return
        width = max(1, -(-(hi - lo) // 4096))
        counts = np.zeros(-(-(hi - lo) // width), np.int64)
        for start in range(0, n, step):
            k = np.fromfile(path, dtype=self.dtype, count=step, offset=start * self.dtype.itemsize)[self.key]
            counts += np.bincount((k - lo) // width, minlength=len(counts))
        starts = _cut(counts, max(1, capacity // 2), _MAX_FILES) * width
        sub = Buckets(self.folder / f"split{i:04d}", self.dtype, self.key, starts, self.what)
        for start in range(0, n, step):
            recs = np.fromfile(path, dtype=self.dtype, count=step, offset=start * self.dtype.itemsize)
            recs[self.key] -= lo
            sub.add(recs)
        if delete:
            path.unlink()
        for sub_lo, recs in sub.groups(capacity, delete=True):
            recs[self.key] += lo
            yield lo + sub_lo, recs


def _cut(counts: np.ndarray, target: int, max_parts: int) -> np.ndarray:
    """Range starts (indices into ``counts``, the first 0) so that each range holds about ``target``
    (at most ``max_parts`` ranges); a bin over ``target`` gets a range of its own, so that a split
    always separates a heavy key from the rest."""
    total = int(counts.sum())
    target = max(target, -(-total // max_parts))
    cum = np.cumsum(counts)
    heavy = np.flatnonzero(counts > target)
    starts = np.r_[np.searchsorted(cum, np.arange(target, total, target), side="right"), heavy, heavy + 1]
    starts = np.unique(starts[(starts > 0) & (starts < len(counts))])
    if not len(starts) and len(counts) > 1:  # everything in one range: cut it in two all the same
        starts = np.array([max(1, int(np.searchsorted(cum, total / 2, side="right")))])
        starts = starts[starts < len(counts)]
    return np.r_[0, starts].astype(np.int64)[:max_parts]


class NpyWriter:
    """A ``.npy`` file of rows written in pieces (its length is filled in by :meth:`close`): 1-D, or
    ``[rows, cols]`` with ``cols``. Readable by ``np.load`` (also memory-mapped) once closed.
    """

    def __init__(self, path: Path, dtype: np.dtype, cols: int | None = None) -> None:
        self.path, self.dtype, self.cols, self.n = Path(path), np.dtype(dtype), cols, 0
        self._f = open(self.path, "wb")
        self._f.write(self._header())

    def _header(self) -> bytes:
        shape = (self.n,) if self.cols is None else (self.n, self.cols)
        d = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": shape}
        body = repr(d).ljust(_HEADER - 10 - 1) + "\n"
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body.encode("latin1")

    def write(self, values: np.ndarray) -> None:
        """Append ``values``: ``[n]``, or ``[n, cols]``."""
        a = np.ascontiguousarray(values, dtype=self.dtype)
        if self.cols is not None and (a.ndim != 2 or a.shape[1] != self.cols):
            raise ValueError(f"expected rows of {self.cols} values, got shape {a.shape}")
        self._f.write(a.tobytes())
        self.n += a.shape[0] if a.ndim else 1

    def close(self) -> int:
        """Write the header with the final length; returns the number of rows written."""
        self._f.seek(0)
        self._f.write(self._header())
        self._f.close()
        return self.n

    def discard(self) -> None:
        """Close and delete the unfinished file."""
        self._f.close()
        self.path.unlink(missing_ok=True)


def _npy_header(fh: BinaryIO) -> tuple[tuple[int, ...], np.dtype]:
    major, _ = np.lib.format.read_magic(fh)
    read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read(fh)
    if fortran and len(shape) > 1:
        raise ValueError("Fortran-ordered arrays are not read in ranges")
    return shape, dtype


def npy_length(path: str | Path) -> int:
    """Rows of a saved ``.npy`` array, from its header."""
    with open(path, "rb") as fh:
        return int(_npy_header(fh)[0][0])


def read_npy_range(path: str | Path, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a saved ``.npy`` array (C order), read (not mapped) from the file."""
    with open(path, "rb") as fh:
        shape, dtype = _npy_header(fh)
        stop = min(stop, shape[0])
        row = int(np.prod(shape[1:], dtype=np.int64))
        if stop <= start:
            return np.zeros((0, *shape[1:]), dtype)
        out = np.fromfile(fh, dtype=dtype, count=(stop - start) * row, offset=start * row * dtype.itemsize)
        return out.reshape(stop - start, *shape[1:])

