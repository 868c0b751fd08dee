"""How the synthetic lookbooks draw their boards: the presets (:data:`PRESETS`).

``"lookbook"``: boards curated by style (step 4 of :mod:`boardgraph.datasets.synthetic`);
``"dense"``: user histories over hidden taste groups (step 5). A drawer reads only the board
stream and the pins' hidden styles, so pins and images do not depend on the preset.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["DrawnBoards", "LookbookPreset", "PRESETS"]


@dataclass(frozen=True)
class DrawnBoards:
    """What a preset's board drawer returns: ``B`` boards and ``M`` memberships.

    ``style`` is int64 ``[B]``; ``board``, ``pin``, ``position`` are int64 ``[M]``, sorted by board
    then position; ``pin_labels`` maps extra hidden pin columns to int64 ``[N]`` arrays.
    """

    style: np.ndarray
    board: np.ndarray
    pin: np.ndarray
    position: np.ndarray
    pin_labels: dict[str, np.ndarray] = field(default_factory=dict)


def _draw_lookbook_boards(rng: np.random.Generator, pin_style: np.ndarray, n_boards: int, n_styles: int,
                          board_size: tuple[int, int], purity: float) -> DrawnBoards:
    """Boards curated by style (:mod:`boardgraph.datasets.synthetic`, step 4)."""
    n = len(pin_style)
    b_style = rng.permutation(np.arange(n_boards) % n_styles)
    size = rng.integers(board_size[0], board_size[1] + 1, n_boards)
    spare = 3 + size // 4  # refill slots lost to duplicates
    n_slots = size + spare
    board = np.repeat(np.arange(n_boards), n_slots)
    rank = np.arange(len(board)) - np.repeat(np.cumsum(n_slots) - n_slots, n_slots)
    on = rng.random(len(board)) < purity
    slot_style = np.where(on, b_style[board], (b_style[board] + rng.integers(1, n_styles, len(board))) % n_styles)
    popularity = rng.lognormal(0.0, 1.0, n)
    pin = np.empty(len(board), dtype=np.int64)
    home = np.zeros(len(board), dtype=bool)
    eligible = on & (rank < size[board])
    for t in range(n_styles):
        pool = rng.permutation(np.flatnonzero(pin_style == t))
        slots = np.flatnonzero(slot_style == t)
        homes = rng.permutation(slots[eligible[slots]])[: len(pool)]
        pin[homes], home[homes] = pool[: len(homes)], True
        rest = slots[~home[slots]]
        w = popularity[pool]
        pin[rest] = rng.choice(pool, size=len(rest), p=w / w.sum())
    order = np.lexsort((rank, ~home, board))  # home pins first, then slot order
    board, pin = board[order], pin[order]
    first = np.zeros(len(board), dtype=bool)
    first[np.unique(board * n + pin, return_index=True)[1]] = True
    board, pin = board[first], pin[first]  # still sorted by board
    starts = np.searchsorted(board, np.arange(n_boards))
    keep = (np.arange(len(board)) - starts[board]) < size[board]
    board, pin = board[keep], pin[keep]
    order = np.lexsort((rng.random(len(board)), board))
    board, pin = board[order], pin[order]
    position = np.arange(len(board)) - np.searchsorted(board, np.arange(n_boards))[board]
    return DrawnBoards(b_style, board, pin, position)


#: Dense preset (:mod:`boardgraph.datasets.synthetic`, step 5).
_GROUPS_PER_STYLE = 8
_STYLES_PER_USER = (0.4, 0.4, 0.2)  # P(a user likes 1, 2, 3 styles)
_GROUPS_PER_USER_STYLE = (1, 3)  # groups liked within each liked style, uniform
_DENSE_POPULARITY_SIGMA = 1.75
_GROUP_SHARE = 0.9  # of the on-taste share ``purity``; the rest goes to the styles at large
_KEYS_PER_BLOCK = 1 << 22  # Gumbel keys per block of users: 32 MiB of float64 whatever the size
_FORCED = 1e6  # added to the key of a pin's home slot: above any log-weight, keeps Gumbel order


def _draw_dense_boards(rng: np.random.Generator, pin_style: np.ndarray, n_boards: int, n_styles: int,
                       board_size: tuple[int, int], purity: float) -> DrawnBoards:
    """User histories over hidden taste groups (:mod:`boardgraph.datasets.synthetic`, step 5)."""
    n, n_groups = len(pin_style), _GROUPS_PER_STYLE
    # a. taste groups: equal shares within each style
    by_style = np.lexsort((rng.random(n), pin_style))
    sorted_style = pin_style[by_style]
    taste = np.empty(n, dtype=np.int64)
    taste[by_style] = sorted_style * n_groups + (np.arange(n) - np.searchsorted(sorted_style, sorted_style)) % n_groups
    # b. global popularity
    popularity = rng.lognormal(0.0, _DENSE_POPULARITY_SIGMA, n)
    b_style, style_w, taste_w = _dense_users(rng, n_boards, n_styles, n_groups)
    home_user = _home_users(rng, taste, taste_w)
    board, pin = _dense_histories(rng, pin_style, taste, popularity, style_w, taste_w, home_user, board_size, purity)
    order = np.lexsort((rng.random(len(board)), board))
    board, pin = board[order], pin[order]
    position = np.arange(len(board)) - np.searchsorted(board, np.arange(n_boards))[board]
    return DrawnBoards(b_style, board, pin, position, {"taste": taste})


def _dense_users(rng: np.random.Generator, n_boards: int, n_styles: int,
                 n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 5c: each user's K liked styles (primary first, all distinct), their weights, their groups.

    Returns:
        ``(b_style, style_w, taste_w)``: the primary style int64 ``[B]``, the weight of each style
        float64 ``[B, S]`` and of each taste group float64 ``[B, S * G]`` (rows sum to 1).
    """
    k = min(len(_STYLES_PER_USER), n_styles)
    cdf = np.cumsum(_STYLES_PER_USER[:k]) / sum(_STYLES_PER_USER[:k])
    b_style = rng.permutation(np.arange(n_boards) % n_styles)
    n_liked = np.minimum(1 + (rng.random(n_boards)[:, None] > cdf).sum(1), k)
    others = np.argsort(rng.random((n_boards, n_styles - 1)), axis=1)[:, : k - 1]
    user_style = np.concatenate([b_style[:, None], (b_style[:, None] + 1 + others) % n_styles], axis=1)  # [B, K]
    w = -np.sort(-rng.gamma(2.0, size=(n_boards, k)), axis=1) * (np.arange(k) < n_liked[:, None])
    w /= w.sum(1, keepdims=True)
    rows = np.arange(n_boards)[:, None]
    style_w = np.zeros((n_boards, n_styles))  # [B, S], rows sum to 1
    style_w[rows, user_style] = w
    lo, hi = _GROUPS_PER_USER_STYLE
    n_picked = np.minimum(rng.integers(lo, hi + 1, (n_boards, k)), n_groups)
    order = np.argsort(rng.random((n_boards, k, n_groups)), axis=2)  # a random order of each style's groups
    taste_w = np.zeros((n_boards, n_styles * n_groups))  # [B, S * G], rows sum to 1
    taste_w[rows[:, :, None], user_style[:, :, None] * n_groups + order] = (
        (w / n_picked)[:, :, None] * (np.arange(n_groups) < n_picked[:, :, None]))
    return b_style, style_w, taste_w


def _home_users(rng: np.random.Generator, taste: np.ndarray, taste_w: np.ndarray) -> np.ndarray:
    """Step 5d: the user each pin is forced onto, int64 ``[N]`` (a random user who likes its group,
    -1 when none does)."""
    n = len(taste)
    holder_taste, holder_user = np.nonzero(taste_w.T > 0)  # sorted by taste
    count = np.bincount(holder_taste, minlength=taste_w.shape[1])[taste]
    start = np.searchsorted(holder_taste, taste)
    pick = np.minimum(start + (rng.random(n) * count).astype(np.int64), len(holder_user) - 1)
    return np.where(count > 0, holder_user[pick], -1)


def _dense_histories(rng: np.random.Generator, pin_style: np.ndarray, taste: np.ndarray, popularity: np.ndarray,
                     style_w: np.ndarray, taste_w: np.ndarray, home_user: np.ndarray, board_size: tuple[int, int],
                     purity: float) -> tuple[np.ndarray, np.ndarray]:
    """Step 5d: every user's history, ``(board, pin)`` int64 ``[M]`` grouped by board (in key order).

    Users are processed in blocks so the Gumbel keys ``[b, N]`` stay near 32 MiB whatever the size.
    """
    n, n_boards = len(pin_style), len(style_w)
    # d. histories: Plackett-Luce draws without replacement = the top ``size`` of log(weight) + Gumbel
    a_group, a_style, a_any = _GROUP_SHARE * purity, (1.0 - _GROUP_SHARE) * purity, 1.0 - purity
    in_group = popularity / np.bincount(taste, popularity)[taste]  # [N], sums to 1 over each group
    in_style = popularity / np.bincount(pin_style, popularity)[pin_style]
    anywhere = popularity / popularity.sum()
    size = rng.integers(board_size[0], board_size[1] + 1, n_boards)
    top_k = min(board_size[1], n)
    step = max(1, _KEYS_PER_BLOCK // n)
    parts = []
    for u0 in range(0, n_boards, step):
        users = np.arange(u0, min(u0 + step, n_boards))
        weight = (a_group * taste_w[users][:, taste] * in_group + a_style * style_w[users][:, pin_style] * in_style
                  + a_any * anywhere)  # [b, N]
        with np.errstate(divide="ignore"):
            key = np.log(weight) + rng.gumbel(size=weight.shape)
        forced = np.flatnonzero((home_user >= u0) & (home_user < users[-1] + 1))
        key[home_user[forced] - u0, forced] += _FORCED
        top = np.argpartition(-key, top_k - 1, axis=1)[:, :top_k]
        top_key = np.take_along_axis(key, top, 1)
        by_key = np.argsort(-top_key, axis=1, kind="stable")
        top, top_key = np.take_along_axis(top, by_key, 1), np.take_along_axis(top_key, by_key, 1)
        keep = (np.arange(top_k) < size[users, None]) & np.isfinite(top_key)  # weight 0 only when purity = 1
        parts.append((np.broadcast_to(users[:, None], top.shape)[keep], top[keep]))
    board = np.concatenate([b for b, _ in parts])
    pin = np.concatenate([p for _, p in parts])
    return board, pin


@dataclass(frozen=True)
class LookbookPreset:
    """A named generative preset: its defaults and how it draws boards (see :data:`PRESETS`).

    Attributes:
        n_pins, n_boards, board_size, purity: the values used when the caller leaves them ``None``.
        draw_boards: ``(rng, pin_style int64 [N], n_boards, n_styles, board_size, purity) -> boards``;
            it draws from the board stream only, so pins and images do not depend on the preset.
    """

    n_pins: int
    n_boards: int
    board_size: tuple[int, int]
    purity: float
    draw_boards: Callable[[np.random.Generator, np.ndarray, int, int, tuple[int, int], float], DrawnBoards]


#: Preset name -> :class:`LookbookPreset`. ``"lookbook"``: boards curated by style (step 4 of
#: :mod:`boardgraph.datasets.synthetic`). ``"dense"``: user histories over hidden taste groups (step 5).
PRESETS: dict[str, LookbookPreset] = {
    "lookbook": LookbookPreset(2000, 200, (5, 30), 0.88, _draw_lookbook_boards),
    "dense": LookbookPreset(2000, 600, (50, 150), 0.8, _draw_dense_boards),
}
