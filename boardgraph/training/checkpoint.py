"""What ties a run folder together: its checkpoint, the fingerprints that say what the checkpoint
and the embeddings were computed from, and the lock that keeps two processes from writing it.

* :func:`save_checkpoint` / :func:`load_checkpoint`: an atomic ``torch.save``, read back with
  ``weights_only=True`` (no code runs from a checkpoint); a file that is not a complete
  boardgraph checkpoint gives :class:`CheckpointFormatError`, never a raw torch traceback.
* :func:`graph_fingerprint`: a stable hash of a graph's ids, edges and features. The trainer
  stores it in the checkpoint and the embeddings record it, so a graph rebuilt under a trained
  run is refused (:class:`GraphChangedError`) instead of giving wrong search results.
* :func:`weights_fingerprint`: a hash of a module's weights, so that embeddings written by other
  weights (an earlier step) are recomputed.
* :func:`run_lock`: an exclusive ``fcntl.flock`` on ``<folder>/.boardgraph.lock``; a second
  process gets :class:`RunLockedError` at once (naming the holder's pid), never a wait.
"""
from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import pandas as pd
import torch

from boardgraph.errors import BoardgraphError
from boardgraph._io import atomic_write

try:
    import fcntl
except ImportError:  # pragma: no cover - not a POSIX system: folders are not locked
    fcntl = None

__all__ = ["CheckpointMismatchError", "CheckpointFormatError", "GraphChangedError", "RunLockedError",
           "save_checkpoint", "load_checkpoint", "graph_fingerprint", "weights_fingerprint", "run_lock",
           "LOCK_NAME"]

log = logging.getLogger(__name__)

#: Name of the lock file :func:`run_lock` creates in a run folder (it is left there, empty).
LOCK_NAME = ".boardgraph.lock"


class CheckpointMismatchError(BoardgraphError, ValueError):
    """The checkpoint was written by a run whose model config differs from this one."""


class CheckpointFormatError(BoardgraphError, ValueError):
    """A file is not a complete boardgraph checkpoint: empty, truncated, another kind of file, or a
    pickle that ``weights_only`` loading refuses. The message names the path."""


class GraphChangedError(BoardgraphError, ValueError):
    """A checkpoint or an embeddings file was computed on another graph than the one given (the
    graph was rebuilt or edited since): its :func:`graph_fingerprint` differs."""


class RunLockedError(BoardgraphError, RuntimeError):
    """Another process holds the run folder's lock (:func:`run_lock`); the message names the
    folder and the holder's pid."""


# -- checkpoint files ---------------------------------------------------------------------------------
def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """``torch.save`` ``payload`` to a temporary file beside ``path``, fsync, then rename over ``path``.

    A reader sees the previous checkpoint or the new one, never a part; a failed save removes its
    temporary file, and the leftovers of saves killed earlier (``.checkpoint.pt.tmp-*`` of
    processes that are gone) are removed after the save.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: torch.save(payload, fh), fsync=True)


def load_checkpoint(path: str | Path, fingerprint: str | None = None) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``, on CPU.

    Returns:
        The payload: a dict holding at least ``"model"`` (a state dict).

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointFormatError: the file is empty, truncated or not a torch archive; it holds pickled
            Python objects that ``weights_only`` refuses; or it holds no ``"model"`` weights.
        CheckpointMismatchError: ``fingerprint`` is given and differs from the checkpoint's.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    fix = "use the checkpoint.pt that boardgraph train writes (train again if it is lost)"
    if path.is_file() and path.stat().st_size == 0:
        raise CheckpointFormatError(f"{path} is not a complete boardgraph checkpoint: the file is empty "
                                    f"(an interrupted copy?). Fix: {fix}")
    if path.is_file() and not zipfile.is_zipfile(path):
        raise CheckpointFormatError(f"{path} is not a complete boardgraph checkpoint: it is not a PyTorch archive "
                                    f"(truncated, or another kind of file). Fix: {fix}")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        needs = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f" (it needs the Python object {needs[1]})" if needs else ""
        raise CheckpointFormatError(
            f"{path} is not a boardgraph checkpoint: it holds pickled Python objects that safe loading "
            f"(weights_only) refuses{what}, so it was not loaded. boardgraph checkpoints hold only tensors and "
            f"plain values. Fix: {fix}; load a file like this one only if you trust where it came from") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointFormatError(f"{path} is not a complete boardgraph checkpoint: it cannot be read "
                                    f"({first}). Fix: {fix}") from None
    if not isinstance(ck, dict) or not isinstance(ck.get("model"), Mapping):
        raise CheckpointFormatError(f"{path} is not a boardgraph checkpoint: it holds no 'model' weights "
                                    f"(found {type(ck).__name__}). Fix: {fix}")
    if fingerprint is not None and ck.get("fingerprint") != fingerprint:
        raise CheckpointMismatchError(
            f"checkpoint {path} was written by a run with another model config (fingerprint "
            f"{ck.get('fingerprint')}, this config {fingerprint}); resume with the config saved beside it "
            f"({path.parent / 'config.yaml'}) or train into a new run.out_dir")
    return ck


# -- fingerprints ---------------------------------------------------------------------------------
def _update_tensor(h: "hashlib._Hash", t: torch.Tensor) -> None:
    """Hash a tensor's dtype, shape and raw bytes (CPU copy when it lives elsewhere)."""
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    if t.numel():
        h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))


def _update_values(h: "hashlib._Hash", values: Any) -> None:
    """Hash a column or an id list by value, one uint64 per row (pandas' vectorised row hash).
    The storage (object or string dtype, categorical codes) does not change the hash; the values
    do, and ``7`` (a number) differs from ``"7"`` (a string)."""
    s = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values), copy=False)
    if not pd.api.types.is_numeric_dtype(s.dtype):  # one form for text: object cells, None when missing
        s = s.astype(object).where(s.notna(), None)
    try:
        rows = pd.util.hash_pandas_object(s, index=False, categorize=False).to_numpy()
    except (TypeError, ValueError):  # cells pandas cannot hash (lists, dicts): hash their text
        rows = pd.util.hash_pandas_object(s.map(str), index=False).to_numpy()
    h.update(str(len(s)).encode())
    h.update(memoryview(np.ascontiguousarray(rows)))


def graph_fingerprint(graph: Any) -> str:
    """A stable hash (16 hex characters) of what a model trained on ``graph`` depends on.

    Covered, for every node type in name order: the external ids in index order (a renamed,
    added, dropped or reordered pin or board changes it); every relation's CSR tensors and edge
    attributes (``out_indptr``, ``out_indices``, ``in_*``, ``attr.*``: any changed edge); and every
    feature's name, kind and values (table columns by value, tensor features such as images byte
    for byte, with their dtype and shape). Not covered: the device the tensors live on and how a
    column is stored (object or string dtype), so a save/load round trip keeps the fingerprint.

    Cost: one pass over the graph's bytes (about a second per GB on one core; ids and table
    columns go through pandas' vectorised row hash), so it stays cheap for millions of pins.
    """
    h = hashlib.sha256(b"boardgraph-graph-v1")
    for t in sorted(graph.node_types):
        h.update(f"|nodes {t} {graph.num_nodes(t)}".encode())
        _update_values(h, graph.id_map(t).pandas_index.to_numpy())
    for etype in sorted(graph.canonical_edge_types):
        rel = graph.relation(etype)
        h.update(f"|rel {etype} {graph.reverse_of(etype)} {rel.num_src} {rel.num_dst}".encode())
        for name, ten in sorted(rel.tensors().items()):
            h.update(f"|{name}".encode())
            _update_tensor(h, ten)
    for t in sorted(graph.node_types):
        f = graph.features(t)
        for name in sorted(f.kinds):
            h.update(f"|feature {t} {name} {f.kinds[name]}".encode())
            if name in f.tensors:
                _update_tensor(h, f.tensors[name])
            if name in f.table.columns:
                _update_values(h, f.table[name])
    return h.hexdigest()[:16]


def weights_fingerprint(module: torch.nn.Module | Mapping[str, torch.Tensor]) -> str:
    """A hash (16 hex characters) of every entry of a module's state dict (or of a state dict):
    names, dtypes, shapes and values. Equal weights on any device give the same hash."""
    state = module.state_dict() if isinstance(module, torch.nn.Module) else module
    h = hashlib.sha256(b"boardgraph-weights-v1")
    for name in sorted(state):
        h.update(f"|{name}".encode())
        _update_tensor(h, state[name])
    return h.hexdigest()[:16]


# -- the run folder lock ------------------------------------------------------------------------------
@contextmanager
def run_lock(folder: str | Path, what: str = "") -> Iterator[Path]:
    """Hold the exclusive lock of run folder ``folder`` for the ``with`` block.

    The lock is an ``fcntl.flock`` on ``<folder>/.boardgraph.lock`` (the folder is created if
    needed), which records the holder's pid and ``what`` it is doing. The operating system ends
    the lock with its process, so a killed holder never leaves the folder locked. The lock is per
    open file, so a second ``run_lock`` on the same folder fails even within one process: take it
    once, around the whole write. On a system without ``fcntl``, or a file system that cannot lock,
    the block runs unlocked (with a warning).

    Yields:
        The lock file's path.

    Raises:
        RunLockedError: another process (or another ``run_lock`` here) holds the lock; raised at
            once, naming the folder and the holder's pid.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    if fcntl is None:  # pragma: no cover
        yield path
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        locked = True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "pid unknown"
            raise RunLockedError(f"{folder} is in use by another boardgraph process ({holder}). Fix: wait until it "
                                 f"has finished, or write to another folder") from None
        except OSError as e:  # e.g. ENOLCK on a network file system
            log.warning("cannot lock %s (%s): going on without a lock; do not write to it from two processes",
                        folder, e.strerror)
            locked = False
        if locked:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}{': ' + what if what else ''}\n".encode(), 0)
        try:
            yield path
        finally:
            if locked:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
