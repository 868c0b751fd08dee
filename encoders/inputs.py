"""Encoder inputs: :class:`PinInputs` and the builder that reads them from a feature store.

Glue from the sampler's ``MiniBatch`` (``input_nodes["pin"]`` = the batch's distinct pins,
``seed_local`` / ``mates_local`` = rows into them, ``-1`` padding)::

    x = builder(g.features("pin"), mb.input_nodes["pin"])     # PinInputs, one row per input pin
    z = encoder(x).embedding                                  # [N_in, E]
    mates, mask = gather_mates(z, mb.mates_local)             # [B, K, E], [B, K]
    fused = board_mate_attention(z[mb.seed_local], mates, mask)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from boardgraph.graph.errors import ImageReadError

from .errors import EncoderConfigError
from .metadata import MetadataSchema
from .registry import MODALITIES

__all__ = ["PinInputs", "PinInputBuilder"]


@dataclass
class PinInputs:
    """One batch of pins, every modality as tensors (``B`` pins).

    Attributes:
        present: bool ``[B, 3]``: which of image, text, metadata (:data:`MODALITIES` order) each
            pin has. A missing modality is masked out by the fusion, whatever its tensors hold.
        images: uint8 ``[B, 3, H, W]`` (zeros where absent), or None when no image is used at all.
        input_ids, attention_mask: int64 ``[B, L]`` from the text tower's ``tokenize``, or None.
        categorical: int64 ``[B, C]`` ids from :class:`MetadataSchema`, or None.
        numeric: float32 ``[B, F]`` raw values (0.0 where missing), or None.
        numeric_missing: bool ``[B, F]``, or None.
        index: int64 ``[B]`` node indices of the pins (for caches and debugging), or None.
    """

    present: Tensor
    images: Tensor | None = None
    input_ids: Tensor | None = None
    attention_mask: Tensor | None = None
    categorical: Tensor | None = None
    numeric: Tensor | None = None
    numeric_missing: Tensor | None = None
    index: Tensor | None = None

    def __post_init__(self) -> None:
        if self.present.dtype != torch.bool or self.present.dim() != 2 or self.present.shape[1] != len(MODALITIES):
            raise ValueError(f"present must be bool [B, {len(MODALITIES)}], got {self.present.dtype} "
                             f"{tuple(self.present.shape)}; columns are {MODALITIES}")

    @property
    def batch_size(self) -> int:
        return int(self.present.shape[0])

    def to(self, device: torch.device | str) -> "PinInputs":
        """All tensors on ``device``."""
        return PinInputs(**{f.name: (v.to(device) if isinstance(v, Tensor) else v)
                            for f in dataclasses.fields(self) for v in [getattr(self, f.name)]})

    def without(self, *modalities: str) -> "PinInputs":
        """A copy where ``modalities`` are marked absent for every pin (tensors are shared)."""
        present = self.present.clone()
        for m in modalities:
            if m not in MODALITIES:
                raise ValueError(f"unknown modality {m!r}; use one of {MODALITIES}")
            present[:, MODALITIES.index(m)] = False
        return dataclasses.replace(self, present=present)

    def select(self, rows: Tensor) -> "PinInputs":
        """The pins ``rows`` (int64 ``[R]`` positions in this batch)."""
        return PinInputs(**{f.name: (v[rows] if isinstance(v, Tensor) else v)
                            for f in dataclasses.fields(self) for v in [getattr(self, f.name)]})


@dataclass
class PinInputBuilder:
    """Reads :class:`PinInputs` for node indices from a feature store (``graph.features("pin")``).

    Attributes:
        tokenize: the text tower's ``tokenize`` (None: no text); the first text field is the first
            segment, the others are joined with spaces as the second.
        schema: metadata schema (None: no metadata).
        text_fields: text features to read (missing/empty everywhere -> text absent for that pin).
        image_field: image feature (None: no images); unreadable images count as absent.
        image_size: resize images to this square size when read (needed for path/bytes columns
            of mixed sizes).
        max_length: token length; sequences are padded to exactly this length so that batches and
            caches have fixed shapes.
    """

    tokenize: Callable[..., tuple[Tensor, Tensor]] | None = None
    schema: MetadataSchema | None = None
    text_fields: Sequence[str] = ("title", "description")
    image_field: str | None = "image"
    image_size: int | None = None
    max_length: int = 32

    def __call__(self, features: Any, idx: Tensor | Sequence[int]) -> PinInputs:
        """Inputs for pins ``idx`` (int64 ``[B]``), on CPU.

        Raises:
            EncoderConfigError: a named field is absent or is a label (ground truth).
        """
        idx = torch.as_tensor(idx, dtype=torch.int64).cpu()
        b = len(idx)
        present = torch.zeros(b, len(MODALITIES), dtype=torch.bool)
        out: dict[str, Any] = {"index": idx}
        if self.image_field is not None:
            self._check(features, self.image_field, "image")
            out["images"], present[:, 0] = self._images(features, idx)
        if self.tokenize is not None and self.text_fields:
            for name in self.text_fields:
                self._check(features, name, "text")
            cols = [features.text(name, idx) for name in self.text_fields]
            first = [str(t).strip() for t in cols[0]]
            rest = [" ".join(str(c[i]).strip() for c in cols[1:]).strip() for i in range(b)] if len(cols) > 1 else None
            present[:, 1] = torch.tensor([bool(first[i] or (rest and rest[i])) for i in range(b)], dtype=torch.bool)
            out["input_ids"], out["attention_mask"] = self.tokenize(first, rest, max_length=self.max_length,
                                                                    pad_to_max=True)
        if self.schema is not None:
            cat, num, missing = self.schema.encode(features, idx)
            out.update(categorical=cat, numeric=num, numeric_missing=missing)
            present[:, 2] = (cat > 0).any(1) | (~missing).any(1)
        return PinInputs(present=present, **out)

    @staticmethod
    def _check(features: Any, name: str, kind: str) -> None:
        if name in features.names("label"):
            raise EncoderConfigError(f"feature {name!r} is a label (ground truth)",
                                     fix="labels are for evaluation only and are never fed to encoders")
        if name not in features.names(kind):
            raise EncoderConfigError(f"no {kind} feature {name!r} (have {features.names(kind)})",
                                     fix=f"set the builder's {kind} field(s) to existing features")

    def _images(self, features: Any, idx: Tensor) -> tuple[Tensor, Tensor]:
        try:
            return features.images(self.image_field, idx, self.image_size), torch.ones(len(idx), dtype=torch.bool)
        except ImageReadError:
            pass  # some images are missing/unreadable: read one by one
        imgs: list[Tensor | None] = []
        for i in idx.tolist():
            try:
                imgs.append(features.images(self.image_field, torch.tensor([i]), self.image_size)[0])
            except ImageReadError:
                imgs.append(None)
        ok = torch.tensor([im is not None for im in imgs], dtype=torch.bool)
        if not ok.any():
            size = self.image_size or 32
            return torch.zeros(len(idx), 3, size, size, dtype=torch.uint8), ok
        like = next(im for im in imgs if im is not None)
        return torch.stack([im if im is not None else torch.zeros_like(like) for im in imgs]), ok
