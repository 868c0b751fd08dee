"""Vectorised segment primitives shared by the samplers (internal).

Every function works on whole batches at once (no Python loop over seeds) and runs on the device
of its inputs. "Segments" are CSR rows ``[start, end)`` of a flat array; offsets inside a row are
``0 .. deg - 1``.

Performance notes (CPU, torch 2.x, 2 threads): ``index_select`` / ``gather`` are several times
faster than advanced indexing ``t[idx]``; ``torch.sort`` and ``torch.unique`` are kept off the hot
paths (relabelling uses a scatter into a scratch map instead); reductions over short leading
dimensions are slow, so Floyd's rounds use elementwise updates only. On batch-sized arrays (~50k
entries) torch's per-op dispatch and OpenMP fork/join cost more than the work, and int64 kernels
and ``torch.where`` are several times slower than numpy's, so the uniform neighbor path runs on
CPU in numpy (``NUMPY_CPU``; random bits from the same torch generator, the same distribution as
the torch code, which CUDA runs, and the same results wherever that runs Floyd's sequential rounds).
"""
from __future__ import annotations

import threading

import numpy as np
import torch
from torch import Tensor

from .errors import SamplingError

__all__ = ["resolve_generator", "take", "take_long", "random_bits", "scale_bits", "uniform_offsets", "floyd_subsets",
           "floyd_subsets_parallel", "floyd_subsets_np", "uniform_offsets_np", "segment_search", "find_in_segments",
           "Compactor"]

#: Use the numpy kernels (:func:`uniform_offsets_np`, :func:`take_long`, the :class:`Compactor`'s
#: numpy steps) for uniform neighbor sampling of CPU tensors: ~1 us per operation instead of torch's
#: dispatch and OpenMP fork/join, which dominate on batch-sized arrays and stall when the cores are
#: shared. They draw random bits from the same torch generator in the same layout as
#: :func:`floyd_subsets`' sequential rounds, so they return the same offsets whenever the torch code
#: runs those rounds (``n * k * k > 2**16``) and the same distribution always; the compaction is
#: identical. Tests switch it off to cover both paths; CUDA tensors always take the torch path.
NUMPY_CPU = True


def resolve_generator(generator: torch.Generator | int | None, device: torch.device) -> torch.Generator | None:
    """A generator on ``device``: an int seeds a new one, ``None`` uses torch's default generator.

    Raises:
        SamplingError: a generator on another device than the graph.
    """
    if generator is None:
        return None
    if isinstance(generator, int):
        return torch.Generator(device=device).manual_seed(generator)
    if not isinstance(generator, torch.Generator):
        raise SamplingError(f"generator must be a torch.Generator, an int seed or None, got {type(generator).__name__}")
    if torch.device(generator.device).type != torch.device(device).type:
        raise SamplingError(f"generator is on {generator.device} but the graph is on {device}; "
                            f"create it with torch.Generator(device={str(device)!r})")
    return generator


def take(src: Tensor, idx: Tensor) -> Tensor:
    """``src[idx]`` for 1-D ``src`` and any-shape integer ``idx`` (via ``index_select``, fast on CPU)."""
    return src.index_select(0, idx.reshape(-1)).view(idx.shape)


def take_long(src: Tensor, idx: Tensor) -> Tensor:
    """int64 ``src[idx]`` for 1-D integer ``src`` and 1-D ``idx``: numpy's ``take`` on CPU (with
    ``NUMPY_CPU``; a random gather that torch may split over threads for no gain), else
    :func:`take`."""
    if src.device.type == "cpu" and NUMPY_CPU:
        return torch.from_numpy(src.numpy().take(idx.numpy()).astype(np.int64, copy=False))
    return take(src, idx).long()


#: Random draws are 31-bit integers ``x``; ``(x * n) >> 31`` is uniform on ``0..n-1`` up to a
#: relative bias below ``n / 2**31`` (float32 ``floor(u * n)`` would be off by up to ``n / 2**24``).
RAND_BITS = 31


def random_bits(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """int32 uniform draws in ``[0, 2**31)`` of ``shape`` (half the cost of int64 draws on CPU)."""
    return torch.empty(shape, dtype=torch.int32, device=device).random_(generator=generator)


def scale_bits(x: Tensor, n: Tensor, nonnegative: bool = False) -> Tensor:
    """Map draws ``x`` in ``[0, 2**31)`` to ``[0, n)`` (``n < 2**31``; ``n <= 0`` gives 0). int64.

    ``nonnegative=True`` promises ``n >= 0`` and skips the clamp.
    """
    return (x * (n if nonnegative else n.clamp(min=0))) >> RAND_BITS


def uniform_offsets(deg: Tensor, k: int, generator: torch.Generator | None, *, replace: bool) -> tuple[Tensor, Tensor]:
    """Uniform offsets into rows of degree ``deg``: ``k`` per row, with or without replacement.

    Without replacement a row of degree ``d <= k`` yields all its offsets ``0..d-1`` and a row of
    degree ``d > k`` a uniformly random ``k``-subset (:func:`floyd_subsets`). With replacement
    every row with ``d > 0`` yields ``k`` independent uniform offsets.

    Args:
        deg: int64 ``[n]`` row degrees (>= 0).
        k: samples per row (>= 0).
        generator: on ``deg``'s device, or None.

    Returns:
        ``(offsets, count)``: integer ``[n, k]`` offsets (entries ``>= count`` are padding) and
        int64 ``[n]`` valid entries per row (``min(d, k)``, or ``k`` / 0 with replacement).
    """
    n, dev = deg.numel(), deg.device
    if k == 0 or n == 0:
        return torch.zeros(n, k, dtype=torch.long, device=dev), torch.zeros(n, dtype=torch.long, device=dev)
    if replace:
        off = scale_bits(random_bits((n, k), generator, dev), deg.unsqueeze(1))
        return off, torch.where(deg > 0, k, 0)
    big = deg > k
    if dev.type == "cpu":  # draw only for the rows that need it when they are few (no sync on GPUs)
        rows = torch.nonzero(big).squeeze(1)
        if rows.numel() == n:
            return floyd_subsets(deg, k, generator), torch.full_like(deg, k)
        if rows.numel() < n // 2:
            off = torch.arange(k).expand(n, k).contiguous()
            if rows.numel():
                off.index_copy_(0, rows, floyd_subsets(deg.index_select(0, rows), k, generator))
            return off, deg.clamp(max=k)
    off = floyd_subsets(deg, k, generator)
    off = torch.where(big.unsqueeze(1), off, torch.arange(k, device=dev, dtype=off.dtype))
    return off, deg.clamp(max=k)


def floyd_subsets(deg: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    """A uniform ``k``-subset of ``0..d-1`` for every row with ``d > k`` (Floyd's algorithm).

    For ``i = 0..k-1`` with ``j = d - k + i``: draw ``t`` uniform in ``0..j``; add ``t`` unless it
    was added already, else add ``j``. Each of the ``k`` rounds runs over all rows at once (the
    loop is over the fanout, never over seeds). Rows with ``d <= k`` get meaningless values.

    Returns:
        int64 ``[n, k]`` offsets, a view of a ``[k, n]`` buffer.
    """
    n, dev = deg.numel(), deg.device
    if k <= 32 and (dev.type != "cpu" or n * k * k <= 2**16):  # fewer, wider ops win on GPUs and small inputs
        return floyd_subsets_parallel(deg, k, generator)
    j = (deg - k).unsqueeze(0) + torch.arange(k, device=dev).unsqueeze(1)  # [k, n]
    c = scale_bits(random_bits((k, n), generator, dev), j + 1, nonnegative=True)  # the draws t, then the choices
    # taken[i]: t_i equals an already final choice. Once c_m is final it is compared with every
    # later draw at once, so no round needs a reduction over the earlier choices.
    taken = torch.zeros(k, n, dtype=torch.bool, device=dev)
    same = torch.empty(k, n, dtype=torch.bool, device=dev)
    for m in range(k - 1):
        if m:
            torch.where(taken[m], j[m], c[m], out=c[m])
        torch.eq(c[m + 1:], c[m], out=same[m + 1:])
        taken[m + 1:] |= same[m + 1:]
    torch.where(taken[k - 1], j[k - 1], c[k - 1], out=c[k - 1])
    return c.t()


def floyd_subsets_np(deg: np.ndarray, k: int, generator: torch.Generator | None) -> np.ndarray:
    """:func:`floyd_subsets`'s sequential rounds in numpy, for CPU: int64 ``deg`` ``[n]`` -> int32
    ``[n, k]`` (a view of a ``[k, n]`` array). Draws ``random_bits((k, n))`` from ``generator``
    exactly as :func:`floyd_subsets` does when it runs its loop (``n * k * k > 2**16``), so both
    return the same offsets then.
    """
    n = deg.shape[0]
    x = random_bits((k, n), generator, torch.device("cpu")).numpy()
    j = (deg - k)[None, :] + np.arange(k, dtype=np.int64)[:, None]  # [k, n]
    c = np.multiply(x, j + 1, dtype=np.int64)
    c >>= RAND_BITS  # the draws t, then the choices; below 2**31, so the rounds run in int32
    c, j = c.astype(np.int32), j.astype(np.int32)
    taken = np.zeros((k, n), dtype=bool)
    same = np.empty((k, n), dtype=bool)
    for m in range(k - 1):
        if m:
            np.copyto(c[m], j[m], where=taken[m])
        np.equal(c[m + 1:], c[m], out=same[m + 1:])
        taken[m + 1:] |= same[m + 1:]
    np.copyto(c[k - 1], j[k - 1], where=taken[k - 1])
    return c.T


def uniform_offsets_np(deg: np.ndarray, k: int, generator: torch.Generator | None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`uniform_offsets` without replacement in numpy (CPU): same branches, same draws.

    Args:
        deg: int64 ``[n]`` row degrees (>= 0); k: samples per row (> 0).

    Returns:
        ``(offsets, count)``: integer ``[n, k]`` (entries ``>= count`` are padding) and int64 ``[n]``.
    """
    n = deg.shape[0]
    big = deg > k
    rows = np.flatnonzero(big)
    if rows.size == n:
        return floyd_subsets_np(deg, k, generator), np.full(n, k, dtype=np.int64)
    count = np.minimum(deg, k)
    if rows.size < n // 2:  # rows with d <= k take their whole row: offsets 0..d-1
        off = np.empty((n, k), dtype=np.int64)
        off[:] = np.arange(k, dtype=np.int64)
        if rows.size:
            off[rows] = floyd_subsets_np(deg[rows], k, generator)
        return off, count
    off = floyd_subsets_np(deg, k, generator)
    np.copyto(off, np.arange(k, dtype=off.dtype), where=~big[:, None])
    return off, count


def floyd_subsets_parallel(deg: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    """:func:`floyd_subsets` without its sequential loop (fewer, wider kernels; for GPUs).

    ``t_i`` is taken already iff it equals an earlier draw ``t_m`` (a pairwise ``[n, k, k]``
    test) or it equals ``j_m`` for ``m = t_i - (d - k) < i`` where ``t_m`` was itself taken
    already. That chain of decreasing indices is resolved by pointer jumping in
    ``ceil(log2 k)`` rounds. Same distribution as the loop, different use of the random stream.
    int64 ``[n, k]``.
    """
    n, dev = deg.numel(), deg.device
    ar = torch.arange(k, device=dev)
    base = (deg - k).unsqueeze(1)
    j = base + ar  # [n, k]
    t = scale_bits(random_bits((n, k), generator, dev), j + 1, nonnegative=True)
    earlier = torch.ones(k, k, dtype=torch.bool, device=dev).tril_(-1)
    dup = ((t.unsqueeze(2) == t.unsqueeze(1)) & earlier).any(2)
    m = t - base
    ptr = torch.where((m >= 0) & (m < ar), m, ar)
    for _ in range(max(k - 1, 1).bit_length()):
        dup = dup | dup.gather(1, ptr)
        ptr = ptr.gather(1, ptr)
    return torch.where(dup, j, t)


def segment_search(cum: Tensor, start: Tensor, end: Tensor, u: Tensor, max_len: int | None = None) -> Tensor:
    """Position ``p`` in ``[start, end)`` with ``cum[p] <= u < cum[p + 1]`` (binary search per row).

    ``cum`` is a non-decreasing ``[E + 1]`` array (an exclusive prefix sum of weights); ``start``,
    ``end`` and ``u`` broadcast together. Rows must be non-empty. Runs ``ceil(log2(max_len))``
    vectorised rounds, where ``max_len`` is the longest row (computed when not given).
    """
    lo = start.expand(torch.broadcast_shapes(start.shape, end.shape, u.shape)).clone()
    hi = (end - 1).expand_as(lo).clone()
    if max_len is None:
        max_len = int((hi - lo).max()) + 1 if lo.numel() else 1
    for _ in range(max(int(max_len - 1).bit_length(), 0)):
        mid = (lo + hi + 1) >> 1
        go = take(cum, mid) <= u
        lo = torch.where(go, mid, lo)
        hi = torch.where(go, hi, mid - 1)
    return lo


def find_in_segments(indptr: Tensor, indices: Tensor, rows: Tensor, values: Tensor) -> Tensor:
    """Position of ``values[i]`` inside the sorted CSR row ``rows[i]``, or ``-1`` if absent.

    ``indices`` must be ascending within each row (the store keeps rows sorted). int64 ``[n]``.
    """
    rows, values = rows.long(), values.long()
    if rows.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=indptr.device)
    start, end = take(indptr, rows), take(indptr, rows + 1)
    lo, hi = start.clone(), end.clone()  # search the first p in [lo, hi) with indices[p] >= value
    max_len = int((end - start).max())
    for _ in range(max(max_len, 1).bit_length()):
        mid = (lo + hi) >> 1
        val = take(indices, mid.clamp(max=max(indices.numel() - 1, 0))).long()
        go = (val < values) & (mid < hi)
        lo = torch.where(go, mid + 1, lo)
        hi = torch.where(go, hi, mid)
    ok = lo < end
    found = ok & (take(indices, lo.clamp(max=max(indices.numel() - 1, 0))).long() == values)
    return torch.where(found, lo, -1)


class Compactor:
    """Relabels global node ids to compact local ids ``0..u-1`` in first-appearance order.

    Keeps a per-type scratch map of ``num_nodes`` entries on the graph's device, allocated on
    first use and never cleared between calls: every call writes keys ``(stamp << B) + (2**B - 1 -
    pos)`` with a fresh stamp and an ``amax`` scatter, so the newest call and, within it, the first
    occurrence win, and stale entries of earlier calls lose. int32 maps (``B = 20``) serve calls of
    fewer than 2**20 ids, int64 maps (``B = 32``) larger ones; a map is zeroed when its stamps run
    out. A call costs O(len(ids)), no sort. A call made while another thread holds the maps uses a
    temporary one, so an instance is thread-safe.
    """

    _MODES = {torch.int32: (20, 2**11 - 1), torch.int64: (32, 2**30)}  # dtype: (position bits, max stamp)

    def __init__(self) -> None:
        self._maps: dict[tuple, list] = {}
        self._lock = threading.Lock()

    def _scratch(self, mk: tuple, n: int, dev: torch.device, dtype: torch.dtype, shared: bool) -> tuple[Tensor, int]:
        if not shared:
            return torch.zeros(n, dtype=dtype, device=dev), 1
        entry = self._maps.get(mk)
        if entry is None:
            entry = self._maps[mk] = [torch.zeros(n, dtype=dtype, device=dev), 0]
        if entry[1] >= self._MODES[dtype][1]:
            entry[0].zero_()
            entry[1] = 0
        entry[1] += 1
        return entry[0], entry[1]

    def __call__(self, key: str, num_nodes: int, ids: Tensor, prefix: Tensor | None = None, *,
                 numpy_cpu: bool = False) -> tuple[Tensor, Tensor]:
        """``(unique, local)`` for ``ids`` (``[M]``), optionally after a distinct ``prefix``.

        ``numpy_cpu``: on CPU (and with ``NUMPY_CPU``) run the same steps in numpy, with the same
        results (the neighbor sampler's hot path).

        ``unique`` (int64) = ``prefix`` followed by the ids not in it, in first-appearance order;
        ``local`` (int64 ``[M]``) is the row of every entry of ``ids`` in ``unique``.
        """
        dev = ids.device
        ids = ids.long()
        prefix = torch.empty(0, dtype=torch.long, device=dev) if prefix is None else prefix.long()
        p, m = prefix.numel(), ids.numel()
        if m == 0:
            return prefix, torch.empty(0, dtype=torch.long, device=dev)
        dtype = torch.int32 if p + m < 2**20 else torch.int64
        bits = self._MODES[dtype][0]
        if p + m >= 2**bits:
            raise SamplingError(f"cannot compact {p + m} ids at once (limit 2**32); use smaller batches")
        owned = self._lock.acquire(blocking=False)
        try:
            buf, stamp = self._scratch((key, num_nodes, str(dev), dtype), num_nodes, dev, dtype, owned)
            c = (stamp << bits) + (2**bits - 1)  # key of position 0
            if numpy_cpu and dev.type == "cpu" and NUMPY_CPU:
                return self._compact_np(buf.numpy(), c, prefix.numpy(), ids.numpy())
            if p:
                buf.scatter_reduce_(0, prefix, torch.arange(c, c - p, -1, device=dev, dtype=dtype), "amax")
            key_x = torch.arange(c - p, c - p - m, -1, device=dev, dtype=dtype)
            buf.scatter_reduce_(0, ids, key_x, "amax")  # deterministic: the first occurrence wins
            g = buf.gather(0, ids)
        finally:
            if owned:
                self._lock.release()
        # local id of every position in (prefix, ids): prefix rows 0..p-1, then first occurrences.
        local_of = torch.empty(p + m, dtype=torch.long, device=dev)
        local_of[:p] = torch.arange(p, device=dev)
        torch.cumsum(g == key_x, 0, out=local_of[p:])
        local_of[p:] += p - 1
        local = local_of.gather(0, (c - g).long())  # c - key = position of the first occurrence
        unique = torch.empty(int(local_of[-1]) + 1, dtype=torch.long, device=dev)
        unique[:p] = prefix
        return unique.scatter_(0, local, ids), local  # duplicates write equal values

    @staticmethod
    def _compact_np(buf: np.ndarray, c: int, prefix: np.ndarray, ids: np.ndarray) -> tuple[Tensor, Tensor]:
        """:meth:`__call__`'s steps in numpy on the same scratch map (CPU; same results)."""
        p, m = prefix.shape[0], ids.shape[0]
        if p:
            np.maximum.at(buf, prefix, np.arange(c, c - p, -1, dtype=buf.dtype))
        key_x = np.arange(c - p, c - p - m, -1, dtype=buf.dtype)
        np.maximum.at(buf, ids, key_x)  # deterministic: the first occurrence wins
        g = buf.take(ids)
        local_of = np.empty(p + m, dtype=np.int64)
        local_of[:p] = np.arange(p, dtype=np.int64)
        torch.cumsum(torch.from_numpy(g == key_x), 0, out=torch.from_numpy(local_of[p:]))  # ~3x numpy's
        local_of[p:] += p - 1
        local = local_of.take(c - g)  # c - key = position of the first occurrence
        unique = np.empty(int(local_of[-1]) + 1, dtype=np.int64)
        unique[:p] = prefix
        unique[local] = ids  # duplicates write equal values, so their order does not matter
        return torch.from_numpy(unique), torch.from_numpy(local)
