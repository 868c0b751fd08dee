"""2-D projections of embeddings for the browse site's map: PCA, t-SNE (scikit-learn) or UMAP
(when ``umap-learn`` is installed), by name."""
from __future__ import annotations

from typing import Callable

import numpy as np

from boardgraph.errors import BoardgraphError

__all__ = ["PROJECTIONS", "project_2d", "ProjectionError"]


class ProjectionError(BoardgraphError, ValueError):
    """An unknown projection, or one whose package is not installed."""


def _pca(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(x)


def _tsne(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    return TSNE(n_components=2, init="pca", random_state=seed, perplexity=min(30.0, max(2.0, (len(x) - 1) / 3)),
                metric="cosine").fit_transform(x)


def _umap(x: np.ndarray, seed: int) -> np.ndarray:
    try:
        import umap
    except ImportError:
        raise ProjectionError("projection 'umap' needs the umap-learn package, which is not installed. Fix: "
                              "pip install umap-learn, or use --projection tsne or pca") from None
    return umap.UMAP(n_components=2, random_state=seed, metric="cosine").fit_transform(x)


#: name -> ``(x [n, d], seed) -> [n, 2]``
PROJECTIONS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {"pca": _pca, "tsne": _tsne, "umap": _umap}


def project_2d(x: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """float ``[n, 2]`` coordinates of the rows of ``x [n, d]`` by ``method`` (a :data:`PROJECTIONS`
    name), scaled to ``[0, 1]`` on each axis.

    Raises:
        ProjectionError: an unknown method, or ``umap`` without umap-learn.
    """
    if method not in PROJECTIONS:
        raise ProjectionError(f"unknown projection {method!r}; choose one of {', '.join(PROJECTIONS)}")
    x = np.asarray(x, dtype=np.float32)
    if len(x) < 3:
        xy = np.zeros((len(x), 2)) if len(x) else np.zeros((0, 2))
        xy[:, 0] = np.arange(len(x))
    else:
        xy = PROJECTIONS[method](x, seed)
    lo, hi = xy.min(0) if len(xy) else 0, xy.max(0) if len(xy) else 1
    return (xy - lo) / np.where(hi - lo > 0, hi - lo, 1.0)
