"""Collaborative-filtering baselines for board completion: item-item and EASE here, Pixie walks
(:mod:`.pixie`) and BPR-MF (:mod:`.bpr`) beside.

* ``itemknn``: :class:`ItemKNNScorer`, item-item cosine similarity of co-occurrence on boards,
  top-k sparse (Sarwar et al., WWW 2001, https://doi.org/10.1145/371920.372071).
* ``ease``: :class:`EASEScorer`, the closed-form shallow autoencoder EASE^R (Steck, WWW 2019,
  https://arxiv.org/abs/1905.03375), its L2 weight chosen on a validation split of the training
  memberships.
* ``pixie``: :class:`~.pixie.PixieScorer`, visit counts of random walks with restarts pin -> board -> pin
  from a board's pins (Eksombatchai et al., WWW 2018, https://arxiv.org/abs/1711.07601).
* ``bpr``: :class:`~.bpr.BPRScorer` / :func:`~.bpr.train_bpr`, matrix factorisation trained with Bayesian
  personalised ranking on sampled negatives (Rendle et al., UAI 2009, https://arxiv.org/abs/1205.2618).

All four are :class:`~boardgraph.evaluation.completion.Scorer` s, scored by the same protocol and splits as the
trained models. They see only ``split.train_graph`` (boards = users, pins = items; no content), fit
once per training graph (cached by its identity, like
:class:`~boardgraph.evaluation.completion.EmbeddingScorer`) and score any number of chunks of query boards.
A pin without a training membership (a cold pin) scores exactly 0 under every one of them: they
are warm-start baselines, and their cold-start numbers are a floor.

Data flow (``X``: the binary ``[N_boards, N_pins]`` training memberships, scipy CSR)::

    itemknn  X -> S = top-k(X^T X / (sqrt(d_i d_j) + shrink))   [N_pins, N_pins] sparse -> X_b S
    ease     X -> B = -P / diag(P), P = (X^T X + l2 I)^-1        [n_warm, n_warm] dense  -> X_b B
    pixie    board CSR -> walks from the board's pins -> visit counts            [Q, N_pins]
    bpr      memberships + negatives -> board factors [N_boards, D], pin factors [N_pins, D] -> u_b . v
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from boardgraph.errors import BoardgraphError
from boardgraph.evaluation.completion import board_completion
from boardgraph.evaluation.metrics import MetricInputError
from boardgraph.evaluation.splits import DataSplit, split_memberships
from boardgraph.graph import PinBoardGraph
from boardgraph.models import register_model
from boardgraph.schema import MEMBER
from boardgraph.training.config import ConfigError

__all__ = ["CatalogueTooLargeError", "membership_matrix", "board_rows", "item_similarity", "ItemKNNScorer",
           "ease_weights", "EASEScorer", "EASE_L2_GRID"]

log = logging.getLogger(__name__)
#: Default L2 grid of :class:`EASEScorer` (Steck reports optima from ~100 to ~1000 on ML-20M, MSD, Netflix).
EASE_L2_GRID: tuple[float, ...] = (10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0)


class CatalogueTooLargeError(BoardgraphError, ValueError):
    """A dense item-item baseline (EASE) was asked to fit more items than its memory limit allows."""


def membership_matrix(graph: PinBoardGraph) -> sp.csr_matrix:
    """Binary float32 ``[N_boards, N_pins]`` scipy CSR of the memberships of ``graph`` (4 bytes
    of data + 4 of index per membership); repeated memberships count once."""
    pin, board = (t.cpu().numpy() for t in graph.edges(MEMBER))
    x = sp.csr_matrix((np.ones(pin.size, dtype=np.float32), (board, pin)),
                      shape=(graph.num_nodes("board"), graph.num_nodes("pin")))
    x.sum_duplicates()
    x.data[:] = 1.0
    return x


def board_rows(boards: Tensor, n_boards: int) -> np.ndarray:
    """Query boards as int64 ``[Q]`` numpy indices, checked."""
    b = torch.as_tensor(boards).cpu()
    if b.dim() != 1 or b.dtype.is_floating_point or b.dtype == torch.bool:
        raise MetricInputError(f"boards must be a 1-D int64 tensor of board indices, got {b.dtype} {tuple(b.shape)}")
    if b.numel() and (int(b.min()) < 0 or int(b.max()) >= n_boards):
        raise MetricInputError(f"board indices must lie in [0, {n_boards}), got [{int(b.min())}, {int(b.max())}]")
    return b.long().numpy()


# ------------------------------------------------------------------------------------------ ItemKNN
def item_similarity(x: sp.csr_matrix, shrink: float = 0.0, neighbors: int | None = None,
                    chunk_size: int = 4096) -> sp.csr_matrix:
    r"""Item-item cosine similarity of co-occurrence, top-``neighbors`` per row, sparse.

    .. math::
        S_{ij} = \frac{(X^\top X)_{ij}}{\sqrt{d_i d_j} + \mathrm{shrink}}, \qquad S_{ii} = 0,

    with ``d_i`` the number of boards of pin ``i``. Row ``i`` keeps its ``neighbors`` largest
    entries (ties: smaller column first; None keeps all). Rows are computed ``chunk_size`` pins at
    a time, so memory peaks at one chunk's co-occurrences plus the kept entries; no ``N x N``
    dense matrix is made.

    Args:
        x: binary ``[N_boards, N_pins]`` CSR (:func:`membership_matrix`).

    Returns:
        float32 ``[N_pins, N_pins]`` CSR; rows and columns of pins on no board are empty.
    """
    n = x.shape[1]
    xt = x.T.tocsr()
    root = np.sqrt(np.asarray(x.sum(0), dtype=np.float64).ravel())
    parts = []
    for a in range(0, n, chunk_size):
        co = (xt[a:a + chunk_size] @ x).tocsr()          # [c, N] co-occurrence counts
        m = co.shape[0]
        rows = np.repeat(np.arange(m), np.diff(co.indptr))
        cols = co.indices.astype(np.int64)
        vals = co.data.astype(np.float64) / (root[rows + a] * root[cols] + shrink)
        off = cols != rows + a                            # zero diagonal
        rows, cols, vals = rows[off], cols[off], vals[off]
        if neighbors is not None:
            order = np.lexsort((cols, -vals, rows))       # by row, then value descending, then column
            rows, cols, vals = rows[order], cols[order], vals[order]
            counts = np.bincount(rows, minlength=m)
            first = np.concatenate([[0], np.cumsum(counts)[:-1]])
            top = np.arange(rows.size) - first[rows] < neighbors
            rows, cols, vals = rows[top], cols[top], vals[top]
        parts.append(sp.csr_matrix((vals.astype(np.float32), (rows, cols)), shape=(m, n)))
    return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, n), dtype=np.float32)


@register_model("itemknn", family="scorer",
                summary="item-item cosine of co-occurrence on boards, top-100 sparse (Sarwar et al. 2001)")
class ItemKNNScorer:
    """Item-based nearest neighbours: a board scores a pin by the summed similarity of its
    training pins to it, ``X_b S`` with ``S`` from :func:`item_similarity`.

    Args:
        shrink: added to the cosine's denominator (>= 0); damps similarities of rare pins.
        neighbors: similar pins kept per pin (None: all).
        chunk_size: pins per block of ``X^T X``.
        seed: unused (ItemKNN is deterministic).

    Shapes:
        ``score(boards [Q] int64, split) -> float32 [Q, N_pins]`` on CPU; cold pins score 0.
    """

    def __init__(self, shrink: float = 0.0, neighbors: int | None = 100, chunk_size: int = 4096, seed: int = 0) -> None:
        del seed  # deterministic; accepted so that every registered scorer is built alike
        if shrink < 0 or not math.isfinite(shrink):
            raise ConfigError(f"shrink must be a finite number >= 0, got {shrink}")
        if neighbors is not None and int(neighbors) < 1:
            raise ConfigError(f"neighbors must be >= 1 or None (keep all), got {neighbors}")
        self.shrink, self.chunk_size = float(shrink), int(chunk_size)
        self.neighbors = None if neighbors is None else int(neighbors)
        self._fit: tuple[PinBoardGraph, sp.csr_matrix, sp.csr_matrix] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shrink={self.shrink}, neighbors={self.neighbors})"

    def fit(self, graph: PinBoardGraph) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """``(X [N_boards, N_pins], S [N_pins, N_pins])`` of ``graph``, computed once per graph."""
        if self._fit is None or self._fit[0] is not graph:
            x = membership_matrix(graph)
            self._fit = (graph, x, item_similarity(x, self.shrink, self.neighbors, self.chunk_size))
        return self._fit[1], self._fit[2]

    def similarity(self, graph: PinBoardGraph) -> sp.csr_matrix:
        """float32 ``[N_pins, N_pins]`` CSR similarity of ``graph`` (zero diagonal, top-k rows)."""
        return self.fit(graph)[1]

    def score(self, boards: Tensor, split: DataSplit) -> Tensor:
        x, s = self.fit(split.train_graph)
        rows = board_rows(boards, x.shape[0])
        return torch.from_numpy(np.asarray((x[rows] @ s).toarray(), dtype=np.float32))


# --------------------------------------------------------------------------------------------- EASE
def ease_weights(gram: np.ndarray | Tensor, l2: float) -> Tensor:
    r"""EASE^R's item-item weights from the Gram matrix ``G = X^T X`` (``[n, n]``).

    .. math::
        P = (G + \lambda I)^{-1}, \qquad B_{ij} = -P_{ij} / P_{jj}, \qquad B_{jj} = 0.

    The inverse is taken in float64 through a Cholesky factorisation (``G + l2 I`` is positive
    definite for ``l2 > 0``); memory ~3 ``n x n`` float64 matrices.

    Returns:
        float64 ``[n, n]`` ``B``; a pin scores ``X_b B`` for board ``b``.
    """
    if not l2 > 0:
        raise ConfigError(f"EASE l2 must be > 0 (it makes X^T X + l2 I invertible), got {l2}")
    g = torch.as_tensor(gram, dtype=torch.float64).clone()
    g.diagonal().add_(float(l2))
    p = torch.cholesky_inverse(torch.linalg.cholesky(g))
    b = p / (-p.diagonal()).unsqueeze(0)                  # column j divided by -P_jj
    b.diagonal().zero_()
    return b


@dataclass
class _EASEFit:
    """EASE fitted on one graph, itself a scorer: ``pins`` int64 ``[n]`` (the pins with training
    memberships), ``x_warm`` ``[N_boards, n]`` CSR of their memberships, ``weights`` float32 ``[n, n]``."""

    pins: np.ndarray
    x_warm: sp.csr_matrix
    weights: np.ndarray
    n_pins: int

    def score(self, boards: Tensor, split: DataSplit | None = None) -> Tensor:
        rows = board_rows(boards, self.x_warm.shape[0])
        out = torch.zeros(rows.size, self.n_pins)
        out[:, torch.from_numpy(self.pins)] = torch.from_numpy(np.asarray(self.x_warm[rows] @ self.weights,
                                                                          dtype=np.float32))
        return out


@register_model("ease", family="scorer",
                summary="EASE^R closed-form item-item model (Steck 2019), L2 chosen on a validation split")
class EASEScorer:
    """EASE^R (see :func:`ease_weights`): a board scores ``X_b B``.

    Only the ``n`` pins with training memberships enter the inverse (the rows and columns of the
    other pins of ``B`` are 0, so cold pins score 0). With several ``l2`` values (a sequence, or
    None for :data:`EASE_L2_GRID`) the weight is chosen on a validation split of the *training*
    memberships (``split_memberships(train_graph, val_fraction, 0, seed)``) by warm Recall@10 of
    :func:`~boardgraph.evaluation.completion.board_completion` (ties: the smaller ``l2``; when every ``l2`` ties, or
    there is no validation query, the middle of the grid), then ``B`` is refit on
    the whole training graph; ``chosen_l2`` and ``validation`` (``{l2: recall@10}``) tell.

    Args:
        l2: the L2 weight, a grid, or None (the default grid).
        max_items: refuse to fit more than this many pins with training memberships (the
            ``n x n`` float64 inverse needs ``8 n^2`` bytes, ~3 times that while fitting).
        val_fraction: share of the training memberships held out to choose ``l2``.
        seed: seed of the validation split.

    Shapes:
        ``score(boards [Q] int64, split) -> float32 [Q, N_pins]`` on CPU.

    Raises:
        CatalogueTooLargeError: more than ``max_items`` pins with training memberships.
    """

    def __init__(self, l2: float | Sequence[float] | None = None, max_items: int = 20000,
                 val_fraction: float = 0.1, seed: int = 0) -> None:
        grid = EASE_L2_GRID if l2 is None else (l2,) if isinstance(l2, (int, float)) else tuple(l2)
        if not grid or any(not (float(v) > 0 and math.isfinite(float(v))) for v in grid):
            raise ConfigError(f"EASE l2 must be a finite number > 0 or a non-empty sequence of them, got {l2}")
        if not 0 < val_fraction < 1:
            raise ConfigError(f"val_fraction must lie in (0, 1), got {val_fraction}")
        self.grid = tuple(sorted({float(v) for v in grid}))
        self.max_items, self.val_fraction, self.seed = int(max_items), float(val_fraction), int(seed)
        self.chosen_l2: float | None = self.grid[0] if len(self.grid) == 1 else None
        self.validation: dict[float, float] = {}
        self._fit: tuple[PinBoardGraph, _EASEFit] | None = None

    def __repr__(self) -> str:
        l2 = self.grid[0] if len(self.grid) == 1 else list(self.grid)
        return f"{type(self).__name__}(l2={l2}, max_items={self.max_items})"

    def _warm(self, graph: PinBoardGraph) -> tuple[sp.csr_matrix, np.ndarray]:
        """``(X, pins)``: the memberships and the pins with at least one, checked against ``max_items``."""
        x = membership_matrix(graph)
        pins = np.flatnonzero(np.diff(x.tocsc().indptr) > 0)
        n = pins.size
        if n > self.max_items:
            gb = 8 * n * n / 1e9
            raise CatalogueTooLargeError(
                f"EASE would invert a dense {n} x {n} matrix for the {n} pins with training memberships "
                f"(max_items={self.max_items}): {gb:.3g} GB in float64, about {3 * gb:.3g} GB while fitting. "
                f"Use the sparse 'itemknn' (ItemKNNScorer) or the random-walk 'pixie' (PixieScorer) baseline "
                f"instead, or raise max_items if the memory allows")
        return x, pins

    @staticmethod
    def _gram(x: sp.csr_matrix, pins: np.ndarray) -> tuple[np.ndarray, sp.csr_matrix]:
        """float64 ``[n, n]`` ``X^T X`` of the warm pins and the ``[N_boards, n]`` CSR of their columns."""
        xw = x[:, pins].tocsr()
        return np.asarray((xw.T @ xw).toarray(), dtype=np.float64), xw

    def _choose(self, graph: PinBoardGraph) -> float:

        val = split_memberships(graph, holdout_fraction=self.val_fraction, cold_fraction=0.0, seed=self.seed)
        x, pins = self._warm(val.train_graph)
        gram, xw = self._gram(x, pins)
        n_pins = graph.num_nodes("pin")
        scores = {}
        for l2 in self.grid:
            fit = _EASEFit(pins, xw, ease_weights(gram, l2).float().numpy(), n_pins)
            scores[l2] = float(board_completion(fit, val, ks=(10,)).warm["recall@10"].mean)
        self.validation = scores
        valid = {k: v for k, v in scores.items() if math.isfinite(v)}
        if not valid or len(set(valid.values())) == 1:   # nothing to choose by: the middle of the grid
            best = self.grid[len(self.grid) // 2]
            why = ("no validation query (too few memberships to hold out)" if not valid else
                   f"every l2 scores {next(iter(valid.values())):.4f} on the validation queries")
            log.warning("ease: %s; using l2=%g", why, best)
            return best
        best = max(valid, key=lambda k: (valid[k], -k))
        log.info("ease: chose l2=%g (validation recall@10 %.4f; grid %s)", best, valid[best],
                 ", ".join(f"{k:g}: {v:.4f}" for k, v in scores.items()))
        return best

    def _fitted(self, graph: PinBoardGraph) -> _EASEFit:
        if self._fit is None or self._fit[0] is not graph:
            x, pins = self._warm(graph)  # refuse an oversized catalogue before any validation fit
            l2 = self.grid[0] if len(self.grid) == 1 else self._choose(graph)
            gram, xw = self._gram(x, pins)
            self._fit = (graph, _EASEFit(pins, xw, ease_weights(gram, l2).float().numpy(), graph.num_nodes("pin")))
            self.chosen_l2 = l2
        return self._fit[1]

    def fit(self, graph: PinBoardGraph) -> "EASEScorer":
        """Choose ``l2`` (with a grid) and fit ``B`` on ``graph``; :meth:`score` does it once per graph."""
        self._fitted(graph)
        return self

    def weights(self, graph: PinBoardGraph) -> tuple[Tensor, Tensor]:
        """``(pins [n] int64, B [n, n] float32)``: the pins with training memberships and their weights."""
        fit = self._fitted(graph)
        return torch.from_numpy(fit.pins), torch.from_numpy(fit.weights)

    def score(self, boards: Tensor, split: DataSplit) -> Tensor:
        return self._fitted(split.train_graph).score(boards)
