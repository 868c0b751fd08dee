"""Embedding every pin after training: batched, resumable, into a memory-mapped ``.npy`` file.

Under torchrun each rank embeds its own chunks into the same file. Progress is recorded per chunk
(``<file>.progress/<chunk>.done``), so an interrupted pass continues where it stopped; the file is
complete when every chunk is done (:func:`embed_pins` returns only then, on every rank).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["encode_pins", "encode_pins_full", "embed_pins", "load_embeddings"]


def encode_pins_full(encoder, idx: Tensor, *, cache=None, builder=None, features=None,
                     device: torch.device | str = "cpu"):
    """The :class:`~boardgraph.encoders.PinEmbedding` of pins ``idx`` (fused embedding, per-modality
    embeddings, presence): from cached tower outputs (``cache``) or by running the towers on
    ``builder(features, idx)``. Runs in the encoder's current mode."""
    if cache is not None:
        outputs, present = cache.get(idx, device)
        return encoder.fuse(outputs, present)
    if builder is None or features is None:
        raise ValueError("encoding pins needs cache= (frozen towers' FeatureCache) or builder= and features= "
                         "(towers run end to end, e.g. Trainer.builder and graph.features('pin'))")
    return encoder(builder(features, idx).to(device))


def encode_pins(encoder, idx: Tensor, *, cache=None, builder=None, features=None,
                device: torch.device | str = "cpu") -> Tensor:
    """L2-normalised embeddings ``[len(idx), E]`` of pins ``idx`` (see :func:`encode_pins_full`).
    Runs in the encoder's current mode; wrap in ``torch.no_grad()`` for inference."""
    return encode_pins_full(encoder, idx, cache=cache, builder=builder, features=features, device=device).embedding


@torch.no_grad()
def embed_pins(encoder, num_pins: int, path: str | Path, *, cache=None, builder=None, features=None,
               batch_size: int = 1024, device: torch.device | str = "cpu", rank: int = 0, world_size: int = 1,
               dim: int | None = None) -> Path:
    """Write the L2-normalised embedding of pins ``0..num_pins-1`` to ``path`` (float32 ``[N, E]``).

    Give either ``cache`` (a :class:`~boardgraph.encoders.FeatureCache` of frozen towers) or
    ``builder`` + ``features`` (towers run end to end). ``dim`` truncates (Matryoshka) and
    renormalises. Chunks already marked done are skipped (resume).
    """
    from boardgraph.encoders import truncate_embedding

    path = Path(path)
    done_dir = path.with_name(path.name + ".progress")
    e = dim or encoder.config.embed_dim
    n_chunks = (num_pins + batch_size - 1) // batch_size
    if rank == 0:
        done_dir.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            np.lib.format.open_memmap(path, "w+", np.float32, (num_pins, e)).flush()
    if world_size > 1:
        dist.barrier()
    out = np.load(path, mmap_mode="r+")
    if out.shape != (num_pins, e):
        raise ValueError(f"{path} holds {out.shape}, expected {(num_pins, e)}; delete it (and {done_dir}) to re-embed")
    was_training = encoder.training
    encoder.eval()
    try:
        for c in range(rank, n_chunks, world_size):
            marker = done_dir / f"{c}.done"
            if marker.exists():
                continue
            idx = torch.arange(c * batch_size, min((c + 1) * batch_size, num_pins))
            emb = encode_pins(encoder, idx, cache=cache, builder=builder, features=features, device=device)
            if dim is not None:
                emb = truncate_embedding(emb, dim)
            out[idx.numpy()] = emb.float().cpu().numpy()
            out.flush()
            marker.touch()
    finally:
        encoder.train(was_training)
    if world_size > 1:
        dist.barrier()
    return path


def load_embeddings(path: str | Path) -> Tensor:
    """The embeddings written by :func:`embed_pins` (memory-mapped, copy-on-write)."""
    return torch.from_numpy(np.load(path, mmap_mode="c"))
