"""Collaborative-filtering baselines for board completion: item-item, EASE, Pixie walks and BPR-MF.

* ``itemknn``: :class:`ItemKNNScorer`, item-item cosine similarity of co-occurrence on boards,
  top-k sparse (Sarwar et al., WWW 2001, https://doi.org/10.1145/371920.372071).
* ``ease``: :class:`EASEScorer`, the closed-form shallow autoencoder EASE^R (Steck, WWW 2019,
  https://arxiv.org/abs/1905.03375), its L2 weight chosen on a validation split of the training
  memberships.
* ``pixie``: :class:`PixieScorer`, visit counts of random walks with restarts pin -> board -> pin
  from a board's pins (Eksombatchai et al., WWW 2018, https://arxiv.org/abs/1711.07601).
* ``bpr``: :class:`BPRScorer` / :func:`train_bpr`, matrix factorisation trained with Bayesian
  personalised ranking on sampled negatives (Rendle et al., UAI 2009, https://arxiv.org/abs/1205.2618).

All four are :class:`~boardgraph.evaluate.Scorer` s, scored by the same protocol and splits as the
trained models. They see only ``split.train_graph`` (boards = users, pins = items; no content), fit
once per training graph (cached by its identity, like
:class:`~boardgraph.evaluate.EmbeddingScorer`) and score any number of chunks of query boards.
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
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor

from boardgraph.config import ConfigError
from boardgraph.data import DataSplit, split_memberships
from boardgraph.graph import HAS, MEMBER, BoardgraphError, PinBoardGraph
from boardgraph.metrics import MetricInputError
from boardgraph.sampling import PopularityNegativeSampler, UniformNegativeSampler

__all__ = ["CF_BASELINES", "CatalogueTooLargeError", "membership_matrix", "item_similarity", "ItemKNNScorer",
           "ease_weights", "EASEScorer", "PixieScorer", "BPRConfig", "BPRResult", "train_bpr", "BPRScorer",
           "cf_scorer"]

log = logging.getLogger(__name__)
#: The collaborative-filtering baselines :func:`cf_scorer` builds.
CF_BASELINES: tuple[str, ...] = ("itemknn", "ease", "pixie", "bpr")
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


def _board_rows(boards: Tensor, n_boards: int) -> np.ndarray:
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


class ItemKNNScorer:
    """Item-based nearest neighbours: a board scores a pin by the summed similarity of its
    training pins to it, ``X_b S`` with ``S`` from :func:`item_similarity`.

    Args:
        shrink: added to the cosine's denominator (>= 0); damps similarities of rare pins.
        neighbors: similar pins kept per pin (None: all).
        chunk_size: pins per block of ``X^T X``.

    Shapes:
        ``score(boards [Q] int64, split) -> float32 [Q, N_pins]`` on CPU; cold pins score 0.
    """

    def __init__(self, shrink: float = 0.0, neighbors: int | None = 100, chunk_size: int = 4096) -> None:
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
        rows = _board_rows(boards, x.shape[0])
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
        rows = _board_rows(boards, self.x_warm.shape[0])
        out = torch.zeros(rows.size, self.n_pins)
        out[:, torch.from_numpy(self.pins)] = torch.from_numpy(np.asarray(self.x_warm[rows] @ self.weights,
                                                                          dtype=np.float32))
        return out


class EASEScorer:
    """EASE^R (see :func:`ease_weights`): a board scores ``X_b B``.

    Only the ``n`` pins with training memberships enter the inverse (the rows and columns of the
    other pins of ``B`` are 0, so cold pins score 0). With several ``l2`` values (a sequence, or
    None for :data:`EASE_L2_GRID`) the weight is chosen on a validation split of the *training*
    memberships (``split_memberships(train_graph, val_fraction, 0, seed)``) by warm Recall@10 of
    :func:`~boardgraph.evaluate.board_completion` (ties: the smaller ``l2``; when every ``l2`` ties, or
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
        from boardgraph.evaluate import board_completion  # the harness is a later stage than the scorers

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


# -------------------------------------------------------------------------------------------- Pixie
_M32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9


def _mix32(x: Tensor) -> Tensor:
    """A bijective hash of int64 values in ``[0, 2**32)`` onto the same range (every product stays
    below ``2**59``, so nothing overflows)."""
    x = x ^ (x >> 16)
    x = (x * 0x45D9F3B) & _M32
    x = x ^ (x >> 16)
    x = (x * 0x45D9F3B) & _M32
    return x ^ (x >> 16)


class PixieScorer:
    """Pixie: a board scores every pin by its visits from random walks that start at the board's
    training pins (Eksombatchai et al. 2018).

    Each board spends ``walks_per_board`` walks. A walk starts at one of the board's pins, drawn
    with Pixie's weight ``d_q (C - log d_q)`` (``d_q``: the pin's training boards, ``C``: the largest
    pin degree) or uniformly (``allocation="uniform"``), and makes up to ``walk_length``
    pin -> board -> pin traversals, each to a uniform board of the pin, then a uniform pin of the
    board; before each traversal after the first it ends with probability ``restart_prob`` (the
    next walk restarts from a board pin). Every pin reached at the end of a traversal is a visit.
    These are the walks of :class:`~boardgraph.sampling.PinSageSampler` (a walk with restarts, cut
    into walks at the restarts). Pixie's multi-hit booster and early stopping are not used.

    The walks take their random numbers from a counter-based hash of ``(seed, board, walk, draw)``
    instead of a generator stream, so a board's visits depend only on the seed and the board, never
    on which boards are scored with it, and all walks of a chunk advance together (one vectorised
    step per traversal). That is why the walker itself is not called: ``PinSageSampler.walks``
    draws every walk of a call from one generator stream (a board's walks would change with the
    chunk, unless each board had its own call: a Python loop over the queries) and gives every seed
    pin the same number of walks (no per-board budget to share out by degree).

    Args:
        walks_per_board: walks per query board.
        walk_length: traversals per walk (>= 1).
        restart_prob: probability in ``[0, 1)`` that a walk ends before each traversal after its first.
        allocation: ``"degree"`` (Pixie) or ``"uniform"`` over the board's pins.
        seed: seed of the walks.

    Shapes:
        ``visits(boards [Q], graph)`` and ``score(boards [Q], split)``: float32 ``[Q, N_pins]`` visit
        counts on CPU; pins on no training board (and every pin, for a board without training
        pins) get 0.
    """

    def __init__(self, walks_per_board: int = 2000, walk_length: int = 2, restart_prob: float = 0.5,
                 allocation: str = "degree", seed: int = 0) -> None:
        if int(walks_per_board) < 1 or int(walk_length) < 1:
            raise ConfigError(f"walks_per_board and walk_length must be >= 1, got {walks_per_board}, {walk_length}")
        if not 0 <= restart_prob < 1:
            raise ConfigError(f"restart_prob must lie in [0, 1), got {restart_prob}")
        if allocation not in ("degree", "uniform"):
            raise ConfigError(f"allocation must be 'degree' or 'uniform', got {allocation!r}")
        self.walks_per_board, self.walk_length = int(walks_per_board), int(walk_length)
        self.restart_prob, self.allocation, self.seed = float(restart_prob), allocation, int(seed)
        self._fit: tuple[PinBoardGraph, dict[str, Tensor]] | None = None

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(walks_per_board={self.walks_per_board}, walk_length={self.walk_length}, "
                f"restart_prob={self.restart_prob}, allocation={self.allocation!r})")

    def _topology(self, graph: PinBoardGraph) -> dict[str, Tensor]:
        if self._fit is None or self._fit[0] is not graph:
            bp, bi, _ = graph.csr(HAS)
            pp, pi, _ = graph.csr(MEMBER)
            bp, bi, pp, pi = bp.cpu().long(), bi.cpu().long(), pp.cpu().long(), pi.cpu().long()
            pdeg = (pp[1:] - pp[:-1]).double()
            if self.allocation == "degree" and bi.numel():
                d = pdeg[bi]
                w = d * (pdeg.max() - torch.log(d))  # Pixie's s_q = d_q (C - log d_q) > 0
            else:
                w = torch.ones(bi.numel(), dtype=torch.float64)
            cum = torch.zeros(bi.numel() + 1, dtype=torch.float64)
            torch.cumsum(w, 0, out=cum[1:])
            self._fit = (graph, {"board_indptr": bp, "board_pins": bi, "pin_indptr": pp, "pin_boards": pi,
                                 "cum": cum})
        return self._fit[1]

    def _bits(self, keys: Tensor, draw: int) -> Tensor:
        """31-bit uniform draws (int64) for the walk keys ``[W]`` and draw number ``draw``."""
        return _mix32((keys + (draw + 1) * _GOLDEN) & _M32) >> 1

    def visits(self, boards: Tensor, graph: PinBoardGraph) -> Tensor:
        """float32 ``[Q, N_pins]`` visit counts of the walks from each board's pins in ``graph``."""
        t = self._topology(graph)
        n_pins = graph.num_nodes("pin")
        rows = torch.from_numpy(_board_rows(boards, graph.num_nodes("board")))
        out = torch.zeros(rows.numel() * n_pins)
        start, end = t["board_indptr"][rows], t["board_indptr"][rows + 1]
        q = torch.nonzero(end > start).squeeze(1)              # boards with training pins walk
        if q.numel() == 0:
            return out.view(rows.numel(), n_pins)
        nw = self.walks_per_board
        board_key = _mix32((_mix32(torch.tensor(self.seed & _M32)) + rows[q]) & _M32)           # [Q']
        keys = _mix32((board_key.unsqueeze(1) + torch.arange(nw) * _GOLDEN) & _M32).reshape(-1)  # [Q' * nw]
        walk_q = q.repeat_interleave(nw)
        cum = t["cum"]
        lo, hi = cum[start[walk_q]], cum[end[walk_q]]
        u = self._bits(keys, 0).double() / 2.0**31
        pos = torch.searchsorted(cum, lo + u * (hi - lo), right=True) - 1
        cur = t["board_pins"][torch.minimum(torch.maximum(pos, start[walk_q]), end[walk_q] - 1)]
        alive = torch.ones(cur.numel(), dtype=torch.bool)
        stay = int(self.restart_prob * 2**31)
        base = walk_q * n_pins
        pp, pb, bp, bpins = t["pin_indptr"], t["pin_boards"], t["board_indptr"], t["board_pins"]
        for step in range(self.walk_length):                 # one vectorised step per traversal
            if step > 0 and self.restart_prob > 0:
                alive &= self._bits(keys, 3 * step + 1) >= stay
            s = pp[cur]                                       # every pin reached has a board
            board = pb[s + ((self._bits(keys, 3 * step + 2) * (pp[cur + 1] - s)) >> 31)]
            s = bp[board]
            cur = bpins[s + ((self._bits(keys, 3 * step + 3) * (bp[board + 1] - s)) >> 31)]
            idx = (base + cur)[alive]
            out.index_add_(0, idx, torch.ones(idx.numel()))
        return out.view(rows.numel(), n_pins)

    def score(self, boards: Tensor, split: DataSplit) -> Tensor:
        return self.visits(boards, split.train_graph)


# ---------------------------------------------------------------------------------------------- BPR
@dataclass
class BPRConfig:
    """Hyper-parameters of BPR-MF (defaults: ~5 s on 2k pins / 60k memberships, one CPU thread).

    ``steps`` batches of ``batch_size`` memberships, drawn epoch by epoch (every training
    membership once per epoch, in random order, so a small graph gets many epochs); each
    membership ``(b, i)`` meets ``num_negatives`` negatives ``j`` from the project's
    ``negatives`` sampler (``"uniform"``: :class:`~boardgraph.sampling.UniformNegativeSampler` over
    all pins; ``"popularity"``: :class:`~boardgraph.sampling.PopularityNegativeSampler`,
    ``degree ** 0.75``); a draw that is a pin of the board is dropped. Loss per triple:
    ``-log sigmoid(u_b . v_i - u_b . v_j) + reg * (|u_b|^2 + |v_i|^2 + |v_j|^2)``, minimised by
    lazy Adam (``torch.optim.SparseAdam``) on sparse embedding gradients (a step costs
    ``O(batch_size * num_negatives * dim)``, not the size of the catalogue). The defaults were
    picked on a planted 2k-pin / 600-board / 60k-membership graph and the synthetic lookbooks
    (2k pins, 300 boards): a strong ``reg`` matters on sparse boards.
    """

    dim: int = 64
    steps: int = 1000
    batch_size: int = 1024
    lr: float = 0.003
    reg: float = 0.01
    num_negatives: int = 4
    negatives: str = "uniform"
    init_std: float = 0.1
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.negatives not in ("uniform", "popularity"):
            raise ConfigError(f"BPRConfig.negatives must be 'uniform' or 'popularity', got {self.negatives!r}")
        for name in ("dim", "steps", "batch_size", "num_negatives"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"BPRConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0 and self.reg >= 0 and self.init_std > 0):
            raise ConfigError(f"BPRConfig needs lr > 0, reg >= 0, init_std > 0; got {self.lr}, {self.reg}, "
                              f"{self.init_std}")


@dataclass
class BPRResult:
    """What :func:`train_bpr` returns.

    Attributes:
        board_factors: float32 ``[N_boards, D]`` on CPU (zero rows for boards without training pins).
        pin_factors: float32 ``[N_pins, D]`` on CPU (zero rows for cold pins).
        losses: mean loss of every epoch.
    """

    board_factors: Tensor
    pin_factors: Tensor
    losses: list[float] = field(default_factory=list)

    def score(self, boards: Tensor) -> Tensor:
        """float32 ``[Q, N_pins]``: ``u_b . v_i`` for the boards ``[Q]``."""
        return self.board_factors[torch.as_tensor(boards).cpu().long()] @ self.pin_factors.T


def train_bpr(split: DataSplit, config: BPRConfig | None = None) -> BPRResult:
    """Train BPR-MF on the memberships of ``split.train_graph`` (see :class:`BPRConfig`).

    Deterministic under ``config.seed`` for a given device and thread count.

    Raises:
        ConfigError: the training graph has no membership.
    """
    cfg = config or BPRConfig()
    g = split.train_graph
    n_pins, n_boards = g.num_nodes("pin"), g.num_nodes("board")
    pin, board = (t.cpu().long() for t in g.edges(MEMBER))
    if pin.numel() == 0:
        raise ConfigError("the training graph has no membership; BPR needs (board, pin) pairs to train on")
    dev = torch.device(cfg.device)
    gen = torch.Generator().manual_seed(cfg.seed)
    sample_gen = torch.Generator(device=g.device).manual_seed(cfg.seed + 1)
    sampler = (UniformNegativeSampler(g, "pin", anchor_type="board", edge_check=HAS) if cfg.negatives == "uniform"
               else PopularityNegativeSampler(g, "pin", relation=MEMBER, anchor_type="board", edge_check=HAS))
    users = torch.nn.Embedding(n_boards, cfg.dim, sparse=True)
    items = torch.nn.Embedding(n_pins, cfg.dim, sparse=True)
    with torch.no_grad():
        users.weight.copy_(torch.randn(n_boards, cfg.dim, generator=gen) * cfg.init_std)
        items.weight.copy_(torch.randn(n_pins, cfg.dim, generator=gen) * cfg.init_std)
    users, items = users.to(dev), items.to(dev)
    opt = torch.optim.SparseAdam([users.weight, items.weight], lr=cfg.lr)
    losses: list[float] = []
    step = 0
    while step < cfg.steps:                                   # epochs: every membership once, random order
        order = torch.randperm(pin.numel(), generator=gen)
        total, count = 0.0, 0
        for s in range(0, order.numel(), cfg.batch_size):
            if step == cfg.steps:
                break
            step += 1
            idx = order[s:s + cfg.batch_size]
            b, i = board[idx], pin[idx]
            neg = sampler.sample(b.to(g.device), cfg.num_negatives, sample_gen, positives=i.to(g.device))
            j, mask = neg.nodes.to(dev).clamp(min=0), neg.mask.to(dev).float()            # [B, M]
            u, vi, vj = users(b.to(dev)), items(i.to(dev)), items(j)                       # [B, D], [B, D], [B, M, D]
            x = (u * vi).sum(-1, keepdim=True) - (u.unsqueeze(1) * vj).sum(-1)              # [B, M]
            n_ok = mask.sum().clamp(min=1)
            rank = (F.softplus(-x) * mask).sum() / n_ok
            l2 = (u.pow(2).sum(-1, keepdim=True) + vi.pow(2).sum(-1, keepdim=True) + vj.pow(2).sum(-1)) * mask
            loss = rank + cfg.reg * l2.sum() / n_ok
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, count = total + float(loss.detach()) * idx.numel(), count + idx.numel()
        losses.append(total / count)
    with torch.no_grad():
        bf, pf = users.weight.detach().float().cpu().clone(), items.weight.detach().float().cpu().clone()
    bf[torch.bincount(board, minlength=n_boards) == 0] = 0.0
    pf[torch.bincount(pin, minlength=n_pins) == 0] = 0.0
    log.info("bpr: %d steps (%d epochs), final loss %.4f", cfg.steps, len(losses), losses[-1])
    return BPRResult(bf, pf, losses)


class BPRScorer:
    """BPR-MF (:func:`train_bpr`): a board scores a pin by ``u_b . v_i``; trained once per
    training graph, on its first :meth:`score`.

    Shapes:
        ``score(boards [Q] int64, split) -> float32 [Q, N_pins]`` on CPU; cold pins score 0.
    """

    def __init__(self, config: BPRConfig | None = None) -> None:
        self.config = config or BPRConfig()
        self._fit: tuple[PinBoardGraph, BPRResult] | None = None

    def __repr__(self) -> str:
        c = self.config
        return f"{type(self).__name__}(dim={c.dim}, steps={c.steps}, negatives={c.negatives!r}, seed={c.seed})"

    def fit(self, split: DataSplit) -> BPRResult:
        """The trained factors of ``split.train_graph`` (trained on the first call per graph)."""
        if self._fit is None or self._fit[0] is not split.train_graph:
            self._fit = (split.train_graph, train_bpr(split, self.config))
        return self._fit[1]

    def score(self, boards: Tensor, split: DataSplit) -> Tensor:
        return self.fit(split).score(torch.from_numpy(_board_rows(boards, split.train_graph.num_nodes("board"))))


# ----------------------------------------------------------------------------------------- resolver
def cf_scorer(name: str, seed: int = 0, **options) -> ItemKNNScorer | EASEScorer | PixieScorer | BPRScorer:
    """The scorer of one of :data:`CF_BASELINES`, built with ``options`` (the class's arguments;
    for ``"bpr"``, the fields of :class:`BPRConfig`) and ``seed`` (EASE's validation split, Pixie's
    walks, BPR's training; ItemKNN is deterministic and takes none).

    Raises:
        ConfigError: an unknown name or option.
    """
    classes = {"itemknn": ItemKNNScorer, "ease": EASEScorer, "pixie": PixieScorer}
    if name not in CF_BASELINES:
        raise ConfigError(f"unknown collaborative-filtering baseline {name!r}; use one of {CF_BASELINES}")
    try:
        if name == "bpr":
            return BPRScorer(BPRConfig(seed=seed, **options))
        return classes[name](**options) if name == "itemknn" else classes[name](seed=seed, **options)
    except TypeError as e:
        raise ConfigError(f"bad option for the {name!r} baseline: {e}") from e
