"""Procedural garment images for the synthetic lookbooks: silhouette by category, fill colour,
pattern overlay, background and pixel noise, all drawn with numpy masks (no per-pixel loops)."""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["draw_garments"]


def _silhouettes(cat: int, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Boolean garment mask from normalised coordinates (X ``[m, 1, W]``, Y ``[m, H, 1]``)."""
    ax = np.abs(X)
    if cat == 0:  # top: body, sleeves, neckline
        body = (ax < 0.45) & (Y > -0.55) & (Y < 0.75)
        sleeves = (ax < 0.85) & (Y > -0.55) & (Y < -0.15 - 0.4 * (ax - 0.45))
        return (body | sleeves) & ~(X ** 2 + (Y + 0.6) ** 2 < 0.05)
    if cat == 1:  # dress: A-line from the shoulders to the hem
        return (Y > -0.8) & (Y < 0.85) & (ax < 0.2 + 0.4 * (Y + 0.8)) & ~(X ** 2 + (Y + 0.8) ** 2 < 0.03)
    if cat == 2:  # skirt: short trapezoid
        return (Y > -0.45) & (Y < 0.6) & (ax < 0.3 + 0.4 * (Y + 0.45))
    if cat == 3:  # trousers: waistband and two legs
        waist = (ax < 0.45) & (Y > -0.85) & (Y < -0.45)
        legs = (Y >= -0.45) & (Y < 0.9) & (ax < 0.45 + 0.05 * (Y + 0.45)) & ((ax > 0.06) | (Y < -0.3))
        return waist | legs
    if cat == 4:  # shoe: toe/sole ellipse and ankle shaft
        toe = ((X - 0.1) / 0.8) ** 2 + ((Y - 0.45) / 0.22) ** 2 < 1
        return toe | ((X > -0.7) & (X < -0.15) & (Y > -0.25) & (Y < 0.5))
    r2 = X ** 2 + (Y + 0.15) ** 2  # bag: body and a handle ring
    return ((ax < 0.65) & (Y > -0.15) & (Y < 0.7)) | ((r2 > 0.09) & (r2 < 0.18) & (Y < -0.15))


def _patterns(kind: int, px: np.ndarray, py: np.ndarray, period: np.ndarray, phase: np.ndarray,
              orient: np.ndarray) -> np.ndarray:
    """Boolean overlay mask ``[m, H, W]``; ``px [1, 1, W]``, ``py [1, H, 1]``, per-pin ``[m, 1, 1]``."""
    if kind == 0:
        return np.zeros(np.broadcast_shapes(px.shape, py.shape, period.shape), dtype=bool)
    x, y = px + phase, py + phase
    if kind == 1:
        t = np.where(orient == 0, y, np.where(orient == 1, x, x + y))
        return (t % period) < period / 2
    if kind == 2:
        dx, dy = x % period - period / 2 + 0.5, y % period - period / 2 + 0.5
        return dx ** 2 + dy ** 2 < (0.3 * period) ** 2
    half = np.maximum(period // 2, 1)
    return ((x // half + y // half) % 2) == 0


def draw_garments(rng: np.random.Generator, cat: np.ndarray, colour: np.ndarray, colour2: np.ndarray,
                  pattern: np.ndarray, size: int, chunk: int = 4096) -> torch.Tensor:
    """Draw garment images, vectorised in chunks of ``chunk`` images.

    Args:
        rng: the generator (jitter, placement, pattern period/phase, pixel noise).
        cat: int ``[n]`` category (0 top, 1 dress, 2 skirt, 3 trousers, 4 shoe, 5 bag).
        colour, colour2: float32 ``[n, 3]`` RGB (0-255) of the fill and of the pattern overlay.
        pattern: int ``[n]`` (0 solid, 1 stripes, 2 dots, 3 checks).
        size: image side in pixels.

    Returns:
        uint8 ``[n, 3, size, size]``.
    """
    n = len(cat)
    scale = rng.uniform(0.8, 1.0, n).astype(np.float32)[:, None, None]
    shift = rng.uniform(-0.1, 0.1, (2, n)).astype(np.float32)[:, :, None, None]
    unit = max(size / 32.0, 0.25)
    period = np.round(rng.integers(4, 9, n) * unit).clip(2, None).astype(np.float32)[:, None, None]
    phase = np.floor(rng.random(n) * period[:, 0, 0]).astype(np.float32)[:, None, None]
    orient = rng.integers(0, 3, n)[:, None, None]
    fill = colour + rng.normal(0, 12, (n, 3)).astype(np.float32)
    second = colour2 + rng.normal(0, 12, (n, 3)).astype(np.float32)
    bg = rng.uniform(195, 245, (n, 1)).astype(np.float32) + rng.normal(0, 4, (n, 3)).astype(np.float32)
    lin = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1)
    pix = np.arange(size, dtype=np.float32)
    out = np.empty((n, 3, size, size), dtype=np.uint8)
    for lo in range(0, n, chunk):
        sl = slice(lo, min(lo + chunk, n))
        m = sl.stop - sl.start
        X = (lin[None, None, :] - shift[0, sl]) / scale[sl]
        Y = (lin[None, :, None] - shift[1, sl]) / scale[sl]
        garment = np.zeros((m, size, size), dtype=bool)
        overlay = np.zeros((m, size, size), dtype=bool)
        for c in np.unique(cat[sl]):
            rows = np.flatnonzero(cat[sl] == c)
            garment[rows] = _silhouettes(int(c), X[rows], Y[rows])
        for p in np.unique(pattern[sl]):
            rows = np.flatnonzero(pattern[sl] == p)
            r = rows + lo
            overlay[rows] = _patterns(int(p), pix[None, None, :], pix[None, :, None],
                                      period[r], phase[r], orient[r])
        fg = np.where(overlay[:, None], second[sl, :, None, None], fill[sl, :, None, None])
        img = np.where(garment[:, None], fg, bg[sl, :, None, None])
        img += rng.normal(0, 6, (m, 1, size, size)).astype(np.float32)
        out[sl] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return torch.from_numpy(out)
