"""Frozen-tower feature cache: run the towers once over all pins, train fusion + projections from disk.

Towers are by far the most expensive part of the encoder; with them frozen, their outputs are a
pure function of the pin, so they are computed once and stored memory-mapped, one row per pin
index. A training step then reads rows (``cache.get(idx)``) and runs only
:meth:`PinEncoder.fuse`, which gives the same outputs as running the towers (in eval mode).

Directory layout (NumPy ``.npy`` files, opened with ``mmap_mode="r"``)::

    meta.json              format version, pin count, per-modality shapes, dtype, tower fingerprint
    present.npy            bool  [N, 3]
    <m>.tokens.npy         [N, N_m, token_dim]     (float32, or float16 when built so)
    <m>.mask.npy           bool  [N, N_m]
    <m>.pooled.npy         [N, pooled_dim]

The directory is written under a temporary name and renamed into place, so a crash never leaves
a half-written cache at ``path``. The fingerprint (a hash of the towers' weights) lets
:meth:`FeatureCache.check` refuse a cache built by other towers.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from boardgraph._io import ArtefactKind, atomic_replace_dir, check_output, temp_sibling

from .errors import FeatureCacheError
from .inputs import PinInputBuilder
from .registry import MODALITIES, TowerOutput

__all__ = ["FeatureCache", "tower_fingerprint", "CACHE_ARTEFACT"]

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
# What marks a folder as a built cache (see boardgraph._io.check_output); older caches have no
# "artefact" field in meta.json and are recognised by its keys and their .npy files.
CACHE_ARTEFACT = ArtefactKind("boardgraph.feature_cache", "meta.json",
                              legacy_keys=("version", "num_pins", "modalities", "fingerprint"),
                              legacy_entries=("meta.json", "*.npy"))
_DTYPES = {torch.float32: "float32", torch.float16: "float16"}


def tower_fingerprint(encoder: Any) -> str:
    """SHA-256 over the towers' modality names, parameter/buffer names, shapes and values."""
    h = hashlib.sha256()
    for m, tower in sorted(encoder.towers.items()):
        h.update(f"{m}:{type(tower).__name__}".encode())
        for name, t in sorted(tower.state_dict().items()):
            t = t.detach().cpu().contiguous().reshape(-1)
            h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class FeatureCache:
    """A built cache, memory-mapped read-only (open with ``FeatureCache(path)``).

    Raises:
        FeatureCacheError: the directory is missing, incomplete or of another format version.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        meta_file = self.path / "meta.json"
        if not meta_file.is_file():
            raise FeatureCacheError(f"no feature cache at {str(self.path)!r} (meta.json missing)",
                                    fix="build it with FeatureCache.build(path, encoder, features, builder)")
        self.meta: dict[str, Any] = json.loads(meta_file.read_text())
        if self.meta.get("version") != FORMAT_VERSION:
            raise FeatureCacheError(f"cache {str(self.path)!r} has format version {self.meta.get('version')}, "
                                    f"expected {FORMAT_VERSION}", fix="rebuild it with FeatureCache.build(..., overwrite=True)")
        self.num_pins = int(self.meta["num_pins"])
        self.modalities = tuple(self.meta["modalities"])
        self.fingerprint = str(self.meta["fingerprint"])
        self._arrays: dict[str, np.ndarray] = {}
        names = ["present"] + [f"{m}.{part}" for m in self.modalities for part in ("tokens", "mask", "pooled")]
        for name in names:
            f = self.path / f"{name}.npy"
            try:
                arr = np.load(f, mmap_mode="r")
            except (OSError, ValueError) as e:
                raise FeatureCacheError(f"cache file {str(f)!r} is missing or unreadable: {e}",
                                        fix="rebuild the cache with overwrite=True") from e
            if arr.shape[0] != self.num_pins:
                raise FeatureCacheError(f"cache file {str(f)!r} has {arr.shape[0]} rows, meta.json says {self.num_pins}",
                                        fix="rebuild the cache with overwrite=True")
            self._arrays[name] = arr

    def __len__(self) -> int:
        return self.num_pins

    # memmaps would pickle as full copies: DataLoader workers reopen the files instead
    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])

    def __repr__(self) -> str:
        shapes = {m: self.meta["shapes"][m] for m in self.modalities}
        return f"FeatureCache({str(self.path)!r}, num_pins={self.num_pins}, shapes={shapes}, dtype={self.meta['dtype']})"

    def check(self, encoder: Any) -> None:
        """Raise :class:`FeatureCacheError` unless ``encoder``'s towers are the ones that built the cache."""
        if tuple(m for m in MODALITIES if m in encoder.towers) != self.modalities:
            raise FeatureCacheError(f"cache holds modalities {self.modalities}, encoder has {tuple(encoder.towers)}",
                                    fix="rebuild the cache for this encoder")
        if tower_fingerprint(encoder) != self.fingerprint:
            raise FeatureCacheError(f"cache {str(self.path)!r} was built by towers with other weights",
                                    fix="rebuild it with FeatureCache.build(..., overwrite=True)")

    def get(self, idx: Tensor, device: torch.device | str | None = None) -> tuple[dict[str, TowerOutput], Tensor]:
        """Tower outputs and presence of pins ``idx`` (int64 ``[B]``) -> ``({m: TowerOutput}, bool [B, 3])``.

        Values are returned as float32 on ``device`` (default CPU), ready for :meth:`PinEncoder.fuse`.

        Raises:
            IndexError: an index is outside ``0..num_pins-1``.
        """
        i = torch.as_tensor(idx, dtype=torch.int64).cpu().numpy()
        if i.size and (i.min() < 0 or i.max() >= self.num_pins):
            raise IndexError(f"pin index {int(i.min()) if i.min() < 0 else int(i.max())} is outside the cache "
                             f"(0..{self.num_pins - 1}); the cache rows are the pins it was built over")

        def take(name: str) -> Tensor:
            return torch.from_numpy(np.ascontiguousarray(self._arrays[name][i])).to(device)

        outs = {m: TowerOutput(tokens=take(f"{m}.tokens").float(), mask=take(f"{m}.mask"),
                               pooled=take(f"{m}.pooled").float()) for m in self.modalities}
        return outs, take("present")

    @classmethod
    def build(cls, path: str | os.PathLike, encoder: Any, features: Any, builder: PinInputBuilder,
              batch_size: int = 256, dtype: torch.dtype = torch.float32, overwrite: bool = False,
              device: torch.device | str | None = None) -> "FeatureCache":
        """Run ``encoder``'s towers (eval mode, no grad) over every pin of ``features`` and store them.

        Args:
            path: cache directory (created; its parent must exist).
            encoder: a :class:`~boardgraph.encoders.PinEncoder`.
            features: the pins' feature store (``graph.features("pin")``); row ``i`` = pin ``i``.
            builder: reads the inputs (``encoder.input_builder(...)``); pads text to fixed length.
            batch_size: pins per tower call.
            dtype: storage dtype of tokens/pooled (float16 halves the size; outputs then differ
                from the live towers by float16 rounding).
            overwrite: replace a cache built at ``path`` (nothing else is ever replaced).
            device: where the towers run (default: where the encoder is).

        Raises:
            FeatureCacheError: ``path`` exists and ``overwrite`` is False; unsupported ``dtype``.
            OutputExistsError: ``path`` is a file or a folder that is not a cache holding only what
                boardgraph wrote (see :func:`boardgraph._io.check_output`).
        """
        path = Path(path)
        if dtype not in _DTYPES:
            raise FeatureCacheError(f"dtype {dtype} is not supported", fix="use torch.float32 or torch.float16")
        if path.exists() and not overwrite:
            raise FeatureCacheError(f"{str(path)!r} already exists", fix="pass overwrite=True or pick another path")
        check_output(path, CACHE_ARTEFACT, overwrite)  # a folder that is not a cache is never replaced
        device = device or next(encoder.parameters()).device
        n = int(features.num_nodes)
        tmp = temp_sibling(path)
        tmp.mkdir()
        was_training = encoder.training
        encoder.eval()
        try:
            arrays: dict[str, np.ndarray] = {}
            shapes: dict[str, dict[str, int]] = {}
            np_dtype = _DTYPES[dtype]
            with torch.inference_mode():
                for start in range(0, n, batch_size):
                    idx = torch.arange(start, min(start + batch_size, n))
                    x = builder(features, idx).to(device)
                    outs = encoder.encode_towers(x)
                    if not arrays:
                        arrays["present"] = np.lib.format.open_memmap(tmp / "present.npy", "w+", np.bool_, (n, 3))
                        for m, o in outs.items():
                            shapes[m] = dict(num_tokens=o.tokens.shape[1], token_dim=o.tokens.shape[2],
                                             pooled_dim=o.pooled.shape[1])
                            for part, t, dt in (("tokens", o.tokens, np_dtype), ("mask", o.mask, np.bool_),
                                                ("pooled", o.pooled, np_dtype)):
                                arrays[f"{m}.{part}"] = np.lib.format.open_memmap(
                                    tmp / f"{m}.{part}.npy", "w+", dt, (n, *t.shape[1:]))
                    rows = slice(start, start + len(idx))
                    arrays["present"][rows] = (x.present & encoder.has_tower).cpu().numpy()
                    for m, o in outs.items():
                        if o.tokens.shape[1] != shapes[m]["num_tokens"]:
                            raise FeatureCacheError(f"{m} tower returned {o.tokens.shape[1]} tokens for pins "
                                                    f"{start}.., earlier {shapes[m]['num_tokens']}",
                                                    fix="use a builder that pads text to a fixed max_length")
                        arrays[f"{m}.tokens"][rows] = o.tokens.to(dtype).cpu().numpy()
                        arrays[f"{m}.mask"][rows] = o.mask.cpu().numpy()
                        arrays[f"{m}.pooled"][rows] = o.pooled.to(dtype).cpu().numpy()
            for arr in arrays.values():
                arr.flush()
            del arrays
            meta = dict(**CACHE_ARTEFACT.stamp(tmp), version=FORMAT_VERSION, num_pins=n,
                        modalities=list(encoder.modalities), shapes=shapes, dtype=np_dtype,
                        fingerprint=tower_fingerprint(encoder))
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            atomic_replace_dir(tmp, path, CACHE_ARTEFACT, overwrite=overwrite)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            encoder.train(was_training)
        log.info("feature cache of %d pins written to %s", n, path)
        return cls(path)
