"""Embedding every pin after training: batched, resumable, into a memory-mapped ``.npy`` file.

Files beside ``<file>.npy``:

* ``<file>.npy.meta.json``: what the file was computed from: its shape, the Matryoshka ``dim``,
  the :func:`~boardgraph.training.checkpoint.weights_fingerprint` of the encoder, the
  :func:`~boardgraph.training.checkpoint.graph_fingerprint` of the graph (when the caller gives it) and
  whether every row is written (``complete``). A pass with other weights, another graph or
  another shape starts the file again instead of reusing it; :func:`load_embeddings` refuses an
  incomplete file and, given the graph's fingerprint, one computed on another graph.
* ``<file>.npy.progress/<chunk>.done``: one marker per chunk of ``batch_size`` rows, recording its
  rows and the sha256 of their bytes. An interrupted pass continues where it stopped; a marker
  whose rows no longer hash to what it records (another writer, a damaged file, an old empty
  marker) is ignored and its chunk recomputed.

A pass holds the lock of the file's folder (:func:`~boardgraph.training.checkpoint.run_lock`), so a second
process fails at once with :class:`~boardgraph.training.checkpoint.RunLockedError` instead of writing over
the first. Under torchrun rank 0 takes the lock and checks the file; every rank then embeds its
own chunks into the same file, and :func:`embed_pins` returns when every chunk is done, on every rank.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from boardgraph._io import atomic_write_text
from boardgraph.errors import BoardgraphError
from boardgraph.encoders import fuse_cached, truncate_embedding
from boardgraph.graph import PinBoardGraph
from boardgraph.schema import MEMBER
from boardgraph.training.checkpoint import GraphChangedError, run_lock, weights_fingerprint

__all__ = ["board_centroids", "encode_pins", "encode_pins_full", "iter_encoded", "content_vectors", "embed_pins",
           "load_embeddings", "embeddings_meta",
           "NonFiniteEmbeddingError", "EmbeddingsFileError"]

log = logging.getLogger(__name__)

#: Version of the ``.meta.json`` / ``.done`` records.
META_FORMAT = 1


class NonFiniteEmbeddingError(BoardgraphError, FloatingPointError):
    """The encoder gave NaN or inf for some pins; nothing of their chunk was written."""


class EmbeddingsFileError(BoardgraphError, ValueError):
    """An embeddings file is incomplete, unreadable, or not the shape its metadata says."""


def encode_pins_full(encoder, idx: Tensor, *, cache=None, builder=None, features=None,
                     device: torch.device | str = "cpu"):
    """The :class:`~boardgraph.encoders.PinEmbedding` of pins ``idx`` (fused embedding, per-modality
    embeddings, presence): from cached tower outputs (``cache``) or by running the towers on
    ``builder(features, idx)``. Runs in the encoder's current mode."""
    if cache is not None:
        outputs, present = cache.get(idx, device)
        return fuse_cached(encoder, outputs, present, idx.to(device))
    _check_inputs(cache, builder, features)
    return encoder(builder(features, idx).to(device))


def _check_inputs(cache, builder, features) -> None:
    if cache is None and (builder is None or features is None):
        raise ValueError("encoding pins needs cache= (frozen towers' FeatureCache) or builder= and features= "
                         "(towers run end to end, e.g. Trainer.builder and graph.features('pin'))")


def encode_pins(encoder, idx: Tensor, *, cache=None, builder=None, features=None,
                device: torch.device | str = "cpu") -> Tensor:
    """L2-normalised embeddings ``[len(idx), E]`` of pins ``idx`` (see :func:`encode_pins_full`).
    Runs in the encoder's current mode; wrap in ``torch.no_grad()`` for inference."""
    return encode_pins_full(encoder, idx, cache=cache, builder=builder, features=features, device=device).embedding


def iter_encoded(encoder, n: int, *, cache=None, builder=None, features=None, device: torch.device | str = "cpu",
                 batch_size: int = 1024) -> Iterator:
    """The :class:`~boardgraph.encoders.PinEmbedding` of pins ``0..n-1``, ``batch_size`` at a time
    (:func:`encode_pins_full`), in eval mode and without gradients; the encoder's mode is restored
    when the iteration ends."""
    was = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            for s in range(0, n, batch_size):
                yield encode_pins_full(encoder, torch.arange(s, min(s + batch_size, n)), cache=cache,
                                       builder=builder, features=features, device=device)
    finally:
        encoder.train(was)


def content_vectors(encoder, n: int, *, cache=None, builder=None, features=None, device: torch.device | str = "cpu",
                    batch_size: int = 1024) -> Tensor:
    """float ``[n, E]`` the content vectors of pins ``0..n-1`` before normalisation and without
    their ID embeddings (:attr:`~boardgraph.encoders.PinEmbedding.content`), in eval mode, on ``device``."""
    return torch.cat([pe.content.float() for pe in iter_encoded(encoder, n, cache=cache, builder=builder,
                                                                 features=features, device=device,
                                                                 batch_size=batch_size)])


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def _progress_dir(path: Path) -> Path:
    return path.with_name(path.name + ".progress")


def embeddings_meta(path: str | Path) -> dict[str, Any] | None:
    """The ``.meta.json`` record of the embeddings file ``path`` (see the module docstring), or
    None when there is none or it does not parse (a file from an older boardgraph or another tool)."""
    try:
        meta = json.loads(_meta_path(Path(path)).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _sha256(rows: np.ndarray) -> str:
    return hashlib.sha256(memoryview(np.ascontiguousarray(rows))).hexdigest()


def _start_over(path: Path, key: dict[str, Any], why: str) -> None:
    """Delete ``path`` and its progress, then create a zero file and a fresh record."""
    if path.exists():
        log.info("re-embedding %s: %s", path, why)
    path.unlink(missing_ok=True)
    shutil.rmtree(_progress_dir(path), ignore_errors=True)
    _progress_dir(path).mkdir(parents=True)
    atomic_write_text(_meta_path(path), json.dumps({**key, "complete": False}))
    np.lib.format.open_memmap(path, "w+", np.float32, tuple(key["shape"])).flush()


def _why_stale(path: Path, key: dict[str, Any]) -> str | None:
    """Why the file at ``path`` cannot be continued for ``key`` (None: it can)."""
    meta = embeddings_meta(path)
    if meta is None:
        return f"it has no readable {_meta_path(path).name} (written by an older boardgraph or another tool)"
    if meta.get("weights") != key["weights"]:
        return "it was computed with other model weights (another checkpoint or training step)"
    if meta.get("graph") != key["graph"]:
        return "it was computed on another graph"
    if meta.get("format") != key["format"] or meta.get("shape") != key["shape"] or meta.get("dim") != key["dim"]:
        return f"it holds shape {meta.get('shape')} (dim {meta.get('dim')}), wanted {key['shape']} (dim {key['dim']})"
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as e:
        return f"it cannot be read ({e})"
    if arr.shape != tuple(key["shape"]) or arr.dtype != np.float32:
        return f"the file holds {arr.dtype} {arr.shape}, not float32 {tuple(key['shape'])}"
    return None


def _check_markers(path: Path, num_pins: int, batch_size: int) -> bool:
    """Remove every ``.done`` marker that does not describe its chunk's rows as they are in the
    file now (see the module docstring). Returns whether every chunk is still marked done."""
    done_dir = _progress_dir(path)
    done_dir.mkdir(parents=True, exist_ok=True)
    arr = np.load(path, mmap_mode="r")
    n_chunks = (num_pins + batch_size - 1) // batch_size
    valid, bad = set(), 0
    for marker in done_dir.glob("*.done"):
        c = int(marker.stem) if marker.stem.isdigit() else -1
        lo, hi = c * batch_size, min((c + 1) * batch_size, num_pins)
        try:
            rec = json.loads(marker.read_text())
            ok = 0 <= c < n_chunks and rec["rows"] == [lo, hi] and rec["sha256"] == _sha256(arr[lo:hi])
        except (OSError, ValueError, KeyError, TypeError):
            ok = False
        if ok:
            valid.add(c)
        else:
            marker.unlink(missing_ok=True)
            bad += 1
    if bad:
        log.warning("%s: %d chunk marker(s) did not match the rows they describe (the file was changed after they "
                    "were written, or they are from another batch size); those chunks are recomputed", path, bad)
    return len(valid) == n_chunks


@torch.no_grad()
def embed_pins(encoder, num_pins: int, path: str | Path, *, cache=None, builder=None, features=None,
               batch_size: int = 1024, device: torch.device | str = "cpu", rank: int = 0, world_size: int = 1,
               dim: int | None = None, graph_fingerprint: str | None = None, overwrite: bool = False) -> Path:
    """Write the L2-normalised embedding of pins ``0..num_pins-1`` to ``path`` (float32 ``[N, E]``).

    Give either ``cache`` (a :class:`~boardgraph.encoders.FeatureCache` of frozen towers) or
    ``builder`` + ``features`` (towers run end to end). ``dim`` truncates (Matryoshka) and
    renormalises. An existing file is continued when its record (``<path>.meta.json``) says it was
    computed with the same weights (:func:`~boardgraph.training.checkpoint.weights_fingerprint` of
    ``encoder``), on the same graph (``graph_fingerprint``, recorded as given) and at the same shape;
    chunks whose ``.done`` marker matches their rows are skipped (resume). Otherwise, or with
    ``overwrite``, the file is computed again from scratch.

    Returns:
        ``path``, complete.

    Raises:
        RunLockedError: another process is writing into ``path``'s folder (nothing is changed).
        NonFiniteEmbeddingError: the encoder gave NaN/inf for some pins (their chunk is not written
            or marked; the file stays incomplete).
        ValueError: neither ``cache`` nor ``builder`` + ``features`` is given.
    """
    _check_inputs(cache, builder, features)
    path = Path(path)
    e = dim or encoder.config.embed_dim
    key = {"format": META_FORMAT, "shape": [int(num_pins), int(e)], "dim": dim,
           "weights": weights_fingerprint(encoder), "graph": graph_fingerprint}
    done_dir = _progress_dir(path)
    n_chunks = (num_pins + batch_size - 1) // batch_size
    # rank 0 holds the folder's lock for the whole pass; the other ranks write only their own chunks
    with run_lock(path.parent, f"embedding {path.name}") if rank == 0 else nullcontext():
        if rank == 0:
            why = "overwrite was asked for" if overwrite else \
                "there is no file yet" if not path.exists() else _why_stale(path, key)
            if why is not None:
                _start_over(path, key, why)
            elif not _check_markers(path, num_pins, batch_size):
                atomic_write_text(_meta_path(path), json.dumps({**key, "complete": False}))
        if world_size > 1:
            dist.barrier()
        out = np.load(path, mmap_mode="r+")
        was_training = encoder.training
        encoder.eval()
        try:
            for c in range(rank, n_chunks, world_size):
                marker = done_dir / f"{c}.done"
                if marker.exists():
                    continue
                lo, hi = c * batch_size, min((c + 1) * batch_size, num_pins)
                idx = torch.arange(lo, hi)
                emb = encode_pins(encoder, idx, cache=cache, builder=builder, features=features, device=device)
                if dim is not None:
                    emb = truncate_embedding(emb, dim)
                rows = np.ascontiguousarray(emb.float().cpu().numpy())
                finite = np.isfinite(rows).all(axis=1)
                if not finite.all():
                    bad = (lo + np.flatnonzero(~finite)).tolist()
                    raise NonFiniteEmbeddingError(
                        f"the embeddings of pin(s) {bad[:5]}{' and more' if len(bad) > 5 else ''} are not finite "
                        f"(NaN or inf); rows {lo}..{hi - 1} of {path} were not written. Fix: the model's weights "
                        f"or these pins' features hold NaN/inf: check the run's checkpoint and the pins' numeric "
                        f"features")
                out[lo:hi] = rows
                out.flush()
                marker.write_text(json.dumps({"rows": [lo, hi], "sha256": _sha256(rows)}))
        finally:
            encoder.train(was_training)
            del out
        if world_size > 1:
            dist.barrier()
        if rank == 0:
            atomic_write_text(_meta_path(path), json.dumps({**key, "complete": True}))
    return path


def load_embeddings(path: str | Path, graph_fingerprint: str | None = None) -> Tensor:
    """The embeddings written by :func:`embed_pins`, float32 ``[N, E]`` (memory-mapped, copy-on-write).

    Args:
        path: the ``.npy`` file.
        graph_fingerprint: the :func:`~boardgraph.training.checkpoint.graph_fingerprint` of the graph the
            rows are meant for; when given, a file recorded as computed on another graph is refused.

    Raises:
        FileNotFoundError: no file at ``path``.
        EmbeddingsFileError: the record says the file is incomplete (an interrupted or running
            pass), or the file cannot be read or is not the recorded shape.
        GraphChangedError: the file was computed on another graph than ``graph_fingerprint``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no embeddings at {path}")
    meta = embeddings_meta(path)
    fix = "embed again (boardgraph embed RUN_DIR, or run.embed_pins())"
    if meta is not None and not meta.get("complete"):
        raise EmbeddingsFileError(f"{path} is incomplete: an embedding pass was interrupted or is still running. "
                                  f"Fix: {fix} to finish it")
    if meta is not None and graph_fingerprint is not None and meta.get("graph") != graph_fingerprint:
        if meta.get("graph") is None:
            log.warning("%s does not record the graph it was computed on; it is trusted to be this one", path)
        else:
            raise GraphChangedError(f"{path} was computed on another graph (fingerprint {meta['graph']}) than this one "
                                    f"({graph_fingerprint}): the graph changed since. Fix: re-embed "
                                    f"(boardgraph embed RUN_DIR --overwrite)")
    try:
        arr = np.load(path, mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise EmbeddingsFileError(f"{path} cannot be read as an embeddings .npy file ({e}). Fix: {fix}") from None
    if meta is not None and list(arr.shape) != meta.get("shape"):
        raise EmbeddingsFileError(f"{path} holds {arr.shape} but its record says {meta.get('shape')}. Fix: {fix}")
    return torch.from_numpy(arr)


def board_centroids(emb: Tensor, graph: PinBoardGraph, chunk_edges: int = 1 << 20) -> Tensor:
    """``[N_boards, E]``: the L2-normalised mean of the L2-normalised embeddings ``emb [N_pins, E]``
    of each board's pins in ``graph`` (zero rows for boards without pins), on ``emb``'s device.
    Memberships are summed ``chunk_edges`` at a time, so memory stays near ``chunk_edges * E``."""
    en = F.normalize(emb.float(), dim=1)
    pin, board = (t.to(en.device).long() for t in graph.edges(MEMBER))
    acc = torch.zeros(graph.num_nodes("board"), en.shape[1], device=en.device)
    for s in range(0, pin.numel(), chunk_edges):
        acc.index_add_(0, board[s:s + chunk_edges], en[pin[s:s + chunk_edges]])
    return F.normalize(acc, dim=1)
