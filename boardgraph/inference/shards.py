"""Pin embeddings as one shard per rank, with a manifest: the embedding pass of a multi-machine run.

Under torchrun each rank embeds a contiguous block of pins and writes its own files into one
folder on shared storage; no rank holds, maps or writes another's rows::

    shards/
      manifest.json                 kind, dim, pins, weights and graph fingerprints, the shards (rank 0, last)
      shard-00000.npy               float32 [rows, dim], L2-normalised (written in pieces, then renamed)
      shard-00000.ids.parquet       the rows' pin ids (column "id")
      shard-00000.json              the shard's rows, dim and fingerprints: written last, so it marks a
                                    finished shard, and a pass run again with the same weights on the
                                    same graph skips it

:class:`EmbeddingShards` reads the folder back shard by shard (what ``boardgraph index
--from-shards`` needs to build an IVF-PQ index without holding every vector).

Embeddings from your own encoder: each worker calls :func:`write_shard` with its rank, the ids
of its rows and its vectors in batches, and one process calls :func:`write_manifest` when all
are done.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist

from boardgraph._io import READ_ERRORS, ArtefactKind, atomic_write_text, read_manifest, temp_sibling
from boardgraph.encoders import truncate_embedding
from boardgraph.errors import BoardgraphError
from boardgraph.graph.stream.spill import NpyWriter, read_npy_range
from boardgraph.inference.embed import NonFiniteEmbeddingError, encode_pins
from boardgraph.training.checkpoint import weights_fingerprint

__all__ = ["embed_pins_sharded", "write_shard", "write_manifest", "EmbeddingShards", "ShardsFormatError",
           "SHARDS_ARTEFACT", "shard_rows"]

SHARDS_ARTEFACT = ArtefactKind("boardgraph.embedding_shards", "manifest.json")
_FORMAT = 1


class ShardsFormatError(BoardgraphError, ValueError):
    """A shard folder is incomplete, damaged, or not a folder of embedding shards."""


def shard_rows(num_pins: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of ``rank``'s shard: ``world_size`` contiguous blocks differing by at most one row."""
    base, extra = divmod(num_pins, world_size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def _name(rank: int) -> str:
    return f"shard-{rank:05d}"


def embed_pins_sharded(encoder: torch.nn.Module, pin_ids: np.ndarray, folder: str | Path, *, rank: int = 0,
                       world_size: int = 1, cache: Any = None, builder: Any = None, features: Any = None,
                       batch_size: int = 1024, device: torch.device | str = "cpu", dim: int | None = None,
                       graph_fingerprint: str | None = None) -> Path:
    """Write this rank's shard of the L2-normalised embeddings of every pin into ``folder``
    (see the module docstring); rank 0 writes the manifest once every shard is done.

    Args:
        encoder: the trained encoder; ``cache`` or ``builder`` + ``features`` as for
            :func:`~boardgraph.inference.embed.embed_pins`.
        pin_ids: ``[N]`` the external ids of pins ``0..N-1``.
        folder: the shard folder, on storage every rank can reach.
        rank, world_size: this process's place under torchrun (a barrier precedes the manifest).
        dim: a Matryoshka prefix, renormalised.
        graph_fingerprint: recorded, and compared when a finished shard is found.

    Returns:
        ``folder`` (its manifest is complete once every rank has returned).

    Raises:
        NonFiniteEmbeddingError: the encoder gave NaN/inf for some pins (the shard is not written).
    """
    folder = Path(folder)
    n = len(pin_ids)
    key = {"dim": int(dim or encoder.config.embed_dim), "weights": weights_fingerprint(encoder),
           "graph": graph_fingerprint}
    lo, hi = shard_rows(n, rank, world_size)
    record, _ = read_manifest(folder / f"{_name(rank)}.json")
    if record != {**key, "num_pins": n, "world_size": world_size, "rows": [lo, hi]}:
        was_training = encoder.training
        encoder.eval()
        try:
            batches = (_embedded(encoder, start, min(start + batch_size, hi), cache, builder, features, device, dim)
                       for start in range(lo, hi, batch_size))
            write_shard(folder, rank, world_size, np.asarray(pin_ids)[lo:hi], batches, n, key)
        finally:
            encoder.train(was_training)
    if world_size > 1:
        dist.barrier()
    if rank == 0:
        write_manifest(folder, world_size)
    if world_size > 1:
        dist.barrier()
    return folder


def _embedded(encoder: torch.nn.Module, lo: int, hi: int, cache: Any, builder: Any, features: Any, device: Any,
              dim: int | None) -> np.ndarray:
    """float32 ``[hi - lo, E]`` embeddings of pins ``lo..hi-1``, checked finite."""
    with torch.no_grad():
        emb = encode_pins(encoder, torch.arange(lo, hi), cache=cache, builder=builder, features=features,
                          device=device)
    if dim is not None:
        emb = truncate_embedding(emb, dim)
    rows = emb.float().cpu().numpy()
    if not np.isfinite(rows).all():
        bad = (lo + np.flatnonzero(~np.isfinite(rows).all(axis=1))).tolist()
        raise NonFiniteEmbeddingError(f"the embeddings of pin(s) {bad[:5]} are not finite (NaN or inf); their "
                                      f"shard was not written. Fix: check the run's weights and these pins' "
                                      f"numeric features")
    return rows


def write_shard(folder: str | Path, rank: int, world_size: int, ids: np.ndarray, batches: Iterable[np.ndarray],
                num_pins: int, key: dict[str, Any] | None = None) -> Path:
    """Write shard ``rank`` of ``world_size``: rows :func:`shard_rows` ``(num_pins, rank, world_size)``,
    their external ``ids`` and their vectors, given as ``batches`` of ``[n, dim]`` rows (any
    encoder's: one process per shard, none holding the others). Files are written under temporary
    names and renamed, the ``.json`` record last.

    Args:
        key: recorded in the shard's record and the manifest; ``dim`` is taken from the batches
            when absent.

    Raises:
        ValueError: the batches do not hold exactly the shard's rows, or ``ids`` is not one per row.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lo, hi = shard_rows(num_pins, rank, world_size)
    if len(ids) != hi - lo:
        raise ValueError(f"shard {rank} of {world_size} holds rows {lo}..{hi - 1}: {hi - lo} ids, got {len(ids)}")
    target = folder / f"{_name(rank)}.npy"
    w = None
    try:
        for b in batches:
            w = w or NpyWriter(temp_sibling(target), np.float32, cols=int(b.shape[1]))
            w.write(b)
        if w is None or w.n != hi - lo:
            raise ValueError(f"shard {rank} of {world_size} holds {hi - lo} rows, the batches gave "
                             f"{0 if w is None else w.n}")
        w.close()
    except BaseException:
        if w is not None:
            w.discard()
        raise
    os.replace(w.path, target)
    tmp_ids = temp_sibling(folder / f"{_name(rank)}.ids.parquet")
    pd.DataFrame({"id": np.asarray(ids)}).to_parquet(tmp_ids, index=False)
    os.replace(tmp_ids, folder / f"{_name(rank)}.ids.parquet")
    record = {"dim": w.cols, **(key or {}), "num_pins": num_pins, "world_size": world_size, "rows": [lo, hi]}
    atomic_write_text(folder / f"{_name(rank)}.json", json.dumps(record))
    return target


def write_manifest(folder: str | Path, world_size: int) -> Path:
    """Write ``manifest.json`` over the ``world_size`` shards of ``folder`` once all are written.

    Raises:
        ShardsFormatError: a shard's record is missing or disagrees with the others (dim, pins,
            weights, graph).
    """
    folder = Path(folder)
    records = []
    for r in range(world_size):
        rec, why = read_manifest(folder / f"{_name(r)}.json")
        if rec is None:
            raise ShardsFormatError(f"shard {r} of {world_size} in {folder} is not finished ({why}); run its "
                                    f"process again")
        records.append(rec)
    common = {k: v for k, v in records[0].items() if k != "rows"}
    for r, rec in enumerate(records):
        if {k: v for k, v in rec.items() if k != "rows"} != common or rec["rows"] != list(
                shard_rows(common["num_pins"], r, world_size)):
            raise ShardsFormatError(f"shard {r} of {folder} was written by another pass ({rec}); run every rank's "
                                    f"embedding pass again")
    shards = [{"file": f"{_name(r)}.npy", "ids": f"{_name(r)}.ids.parquet", "rows": rec["rows"]}
              for r, rec in enumerate(records)]
    atomic_write_text(folder / "manifest.json", json.dumps(
        {"artefact": SHARDS_ARTEFACT.name, "format": _FORMAT, **common, "shards": shards}, indent=1))
    return folder / "manifest.json"


@dataclass
class EmbeddingShards:
    """A folder written by :func:`embed_pins_sharded`, read shard by shard.

    Attributes:
        folder: the folder; ``manifest``: its manifest (dim, num_pins, fingerprints, shards).
    """

    folder: Path
    manifest: dict[str, Any]

    @classmethod
    def open(cls, folder: str | Path) -> "EmbeddingShards":
        """Check the folder's manifest and that every shard it names is there at its size.

        Raises:
            ShardsFormatError: no manifest or another kind of artefact, or a shard missing or of the wrong size.
        """
        folder = Path(folder)
        m, why = read_manifest(folder / "manifest.json")
        fix = "run the embedding pass again (boardgraph train --embed-shards), on every rank"
        if m is None or m.get("artefact") != SHARDS_ARTEFACT.name:
            raise ShardsFormatError(f"{folder} is not a folder of embedding shards ({why or 'another artefact'}); "
                                    f"Fix: {fix}")
        for s in m["shards"]:
            f = folder / s["file"]
            try:
                shape = np.load(f, mmap_mode="r").shape
            except READ_ERRORS as e:
                raise ShardsFormatError(f"shard {f} is missing or unreadable ({e}); Fix: {fix}") from e
            want = (s["rows"][1] - s["rows"][0], m["dim"])
            if shape != want:
                raise ShardsFormatError(f"shard {f} has shape {shape}, the manifest says {want}; Fix: {fix}")
        return cls(folder, m)

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    def __len__(self) -> int:
        return int(self.manifest["num_pins"])

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(ids [n], vectors float32 [n, dim])`` of each shard in row order (vectors memory-mapped)."""
        for s in self.manifest["shards"]:
            ids = pd.read_parquet(self.folder / s["ids"])["id"].to_numpy()
            yield ids, np.load(self.folder / s["file"], mmap_mode="r")

    def chunks(self, rows: int = 65_536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(ids [n], vectors float32 [n, dim])`` of at most ``rows`` rows at a time, in row order,
        read from the files (not mapped, so pages already read do not stay in this process's
        resident memory)."""
        for s in self.manifest["shards"]:
            ids = pd.read_parquet(self.folder / s["ids"])["id"].to_numpy()
            for start in range(0, len(ids), rows):
                yield ids[start:start + rows], read_npy_range(self.folder / s["file"], start, start + rows)

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of global ``rows`` (float32 ``[len(rows), dim]``), read from their shards."""
        rows = np.asarray(rows, np.int64)
        out = np.empty((len(rows), self.dim), np.float32)
        for s in self.manifest["shards"]:
            lo, hi = s["rows"]
            sel = (rows >= lo) & (rows < hi)
            if sel.any():
                out[sel] = np.load(self.folder / s["file"], mmap_mode="r")[rows[sel] - lo]
        return out

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` rows drawn without replacement (all of them when there are fewer), float32 ``[n, dim]``."""
        rng = np.random.default_rng(seed)
        total = len(self)
        rows = np.sort(rng.choice(total, size=min(n, total), replace=False))
        return self.rows(rows)
