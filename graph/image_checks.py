"""Checking the image column of a node table at build time.

A cell is a file path (relative to ``image_root``) or encoded bytes; a missing cell is fine (the
image is optional). A cell is refused when its path resolves outside ``image_root`` (``../``,
absolute paths, symlinks; unless ``allow_outside_root``), when the file is missing or PIL cannot
open and verify it, or when it declares more than ``max_image_pixels`` pixels. Refused cells are
set missing and counted (``outside_root_<col>``, ``unreadable_<col>``, ``oversized_<col>``), or
raise in ``raise`` mode. Pixels are never decoded here: PIL's ``verify`` checks the structure.
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .build_report import VALUES
from .checks import Checker
from .errors import ImageReadError, ImageTooLargeError, PathOutsideRootError, one_line, show_value

__all__ = ["DEFAULT_MAX_IMAGE_PIXELS", "ImageRules", "parse_image_column"]

#: PIL's own decompression-bomb threshold (``Image.MAX_IMAGE_PIXELS``): about 0.25 GiB as RGBA.
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485


@dataclass(frozen=True)
class ImageRules:
    """How image cells are checked: the root relative paths resolve against (``None``: paths are used
    as written, with no confinement), the pixel limit (``None``: off) and whether paths may leave the root.

    Raises:
        ValueError: ``max_pixels`` is not an int >= 1 or ``None``.
    """

    root: str | None = None
    max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS
    allow_outside_root: bool = False

    def __post_init__(self) -> None:
        m = self.max_pixels
        if m is not None and (isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1):
            raise ValueError(f"max_image_pixels must be an int >= 1 or None, got {m!r}; "
                             f"the default is {DEFAULT_MAX_IMAGE_PIXELS:,} (PIL's decompression-bomb limit)")


_OK, _UNREADABLE, _OVERSIZED, _OUTSIDE = 0, 1, 2, 3


def _open_image(src: Any, max_pixels: int | None) -> tuple[int, str]:
    """(problem code, detail) of one image file or byte stream, opened and verified by PIL."""
    from PIL import Image

    try:
        with Image.open(src) as im:
            w, h = im.size
            if max_pixels is not None and w * h > max_pixels:
                return _OVERSIZED, f"{w * h:,} pixels ({w}x{h}), over max_image_pixels={max_pixels:,}"
            im.verify()  # reads the header and checks the structure without decoding pixels
    except Image.DecompressionBombError as e:
        return _OVERSIZED, one_line(e)
    except Exception as e:  # noqa: BLE001 - PIL raises OSError, SyntaxError, struct.error, ... on bad files
        return _UNREADABLE, f"{type(e).__name__}: {one_line(e)}"
    return _OK, ""


def _check_image(v: Any, rules: ImageRules, real_root: str | None) -> tuple[int, str]:
    """(problem code, detail) of one image cell; a missing cell is fine (the image is optional)."""
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return _OK, ""
    if isinstance(v, (bytes, bytearray, memoryview)):
        return _open_image(io.BytesIO(v), rules.max_pixels) if len(v) else (_UNREADABLE, "empty bytes")
    if not isinstance(v, (str, os.PathLike)):
        return _UNREADABLE, f"a {type(v).__name__} is neither a path nor encoded image bytes"
    path = os.path.join(rules.root, v) if rules.root and not os.path.isabs(v) else os.fspath(v)
    if real_root is not None and not rules.allow_outside_root:
        real = os.path.realpath(path)  # follows "..", and symlinks that point elsewhere
        try:
            inside = os.path.commonpath([real, real_root]) == real_root
        except ValueError:  # another drive
            inside = False
        if not inside:
            return _OUTSIDE, f"it resolves to {real}"
    if not os.path.isfile(path):
        return _UNREADABLE, "no such file"
    if not os.access(path, os.R_OK):
        return _UNREADABLE, "no read permission"
    return _open_image(path, rules.max_pixels)


def _check_images(refs: pd.Series, rules: ImageRules) -> tuple[np.ndarray, dict[int, str]]:
    """Problem code per cell (int8 ``[n]``) and the detail of the first cell with each problem."""
    from PIL import Image

    real_root = os.path.realpath(rules.root) if rules.root else None
    codes = np.zeros(len(refs), np.int8)
    details: dict[int, str] = {}
    seen: dict[str, tuple[int, str]] = {}
    with warnings.catch_warnings():  # images over PIL's limit are counted here, not warned about
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        for i, v in enumerate(refs.to_numpy(dtype=object)):
            key = v if isinstance(v, str) else None
            res = seen.get(key) if key is not None else None
            if res is None:
                res = _check_image(v, rules, real_root)
                if key is not None:
                    seen[key] = res
            codes[i] = res[0]
            details.setdefault(res[0], res[1])
    return codes, details


def parse_image_column(table: pd.DataFrame, c: str, checker: Checker, rules: ImageRules) -> np.ndarray:
    """The cells of image column ``c`` of ``table`` as object ``[len(table)]``: refused cells raise or are
    set missing (``None``) and counted, and relative paths are joined to ``rules.root``."""
    col = table[c]
    codes, details = _check_images(col, rules)
    root = f"image_root {rules.root}" if rules.root else "image_root"
    for code, reason, exc, what, fix in (
            (_OUTSIDE, "outside_root", PathOutsideRootError, f"is outside {root}",
             "keep image paths inside image_root (no '..', no absolute paths elsewhere, no symlinks out), "
             "or pass allow_outside_root=True (CLI --allow-outside-root) if you trust the table"),
            (_UNREADABLE, "unreadable", ImageReadError, "cannot be read",
             "check the file exists and is an image PIL can open (relative paths resolve against image_root)"),
            (_OVERSIZED, "oversized", ImageTooLargeError, "is too large",
             "downscale the image, or raise max_image_pixels (CLI --max-image-pixels) if you trust the file: "
             "decoding very large images exhausts memory")):
        bad = codes == code
        if bad.any():
            checker.check(table, bad, exc, f"column {c!r}: image {show_value(col[bad].iloc[0])} {what}", c, fix,
                          reason=f"{reason}_{c}", scope=VALUES, detail=details[code])
    if codes.any():
        col = col.where(codes == _OK, None)
    if rules.root:
        col = col.map(lambda v: os.path.join(rules.root, v) if isinstance(v, str) and not os.path.isabs(v) else v)
    return col.to_numpy(dtype=object)
