"""Thumbnails of the browse site: small JPEG files (``thumbs/p<index>.jpg``, 96 px by default)
written once per pin from the graph's image feature (tensors, image bytes or image paths)."""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from boardgraph._io import atomic_write
from boardgraph.graph.errors import ImageReadError
from boardgraph.graph.features import NodeFeatures, decode_image

__all__ = ["ThumbReport", "write_thumbnails"]


@dataclass
class ThumbReport:
    """What :func:`write_thumbnails` did: pins with a thumbnail file (``have``), files ``written``
    now, ``reused`` (already there), and pins without one: ``missing`` (no image value) and
    ``unreadable`` (``{pin: reason}``; their pages show a text card)."""

    have: set[int] = field(default_factory=set)
    written: int = 0
    reused: int = 0
    missing: int = 0
    unreadable: dict[int, str] = field(default_factory=dict)


def _jpeg(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def write_thumbnails(features: NodeFeatures, image_field: str | None, pins: list[int], out_dir: Path,
                     size: int = 96) -> ThumbReport:
    """Write ``out_dir/p<pin>.jpg`` (``size`` x ``size``) for each of ``pins`` that has an image in
    ``image_field`` (None: no image feature, every pin gets a text card). A file already there is
    kept (thumbnails are written once); a missing or unreadable image is counted, not fatal."""
    rep = ThumbReport()
    out_dir.mkdir(parents=True, exist_ok=True)
    if image_field is None:
        rep.missing = len(pins)
        return rep
    todo = []
    for p in pins:
        if (out_dir / f"p{p}.jpg").exists():
            rep.have.add(p)
            rep.reused += 1
        else:
            todo.append(p)
    if image_field in features.tensors:
        for start in range(0, len(todo), 256):
            chunk = todo[start:start + 256]
            imgs = features.images(image_field, torch.tensor(chunk, dtype=torch.long), size=size)
            for p, img in zip(chunk, imgs):
                _save(out_dir / f"p{p}.jpg", img, rep, p)
        return rep
    refs = features.table[image_field].to_numpy(dtype=object)
    for p in todo:
        ref = refs[p]
        if ref is None or (isinstance(ref, float) and np.isnan(ref)):
            rep.missing += 1
            continue
        try:
            img = decode_image(ref, size)
        except ImageReadError as e:
            rep.unreadable[p] = str(e)
            continue
        _save(out_dir / f"p{p}.jpg", img, rep, p)
    return rep


def _save(path: Path, img: torch.Tensor, rep: ThumbReport, pin: int) -> None:
    data = _jpeg(img.permute(1, 2, 0).contiguous().cpu().numpy())
    atomic_write(path, lambda fh: fh.write(data))
    rep.have.add(pin)
    rep.written += 1
