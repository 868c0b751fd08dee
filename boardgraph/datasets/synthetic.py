"""Synthetic lookbooks: the embedded default Pin-Board dataset, generated under a seed.

Pins are fashion items (a small RGB image, a title, a description, brand, category and price);
boards are collections curated around hidden *styles*. A style is a combination of attributes,
each shared with other styles, and every modality shows only part of the combination, through
noise. Board-mates share a style, so the graph carries signal that content alone does not.

Generative process (``S = n_styles``, ``noise`` = per-attribute corruption rate):

1. **Styles.** Style ``s`` is split as ``g = s // 4`` (palette group) and ``j = s % 4`` with bits
   ``a = j // 2``, ``b = j % 2``. Its attributes are: palette ``g`` (of 8), pattern
   ``(2g + a) mod 4`` (solid / stripes / dots / checks), material ``(2g + b) mod 8`` (text only),
   brand family ``s mod ceil(S / 2)`` (3 brands each) and a price band fixed by the family.
   Palettes, patterns, materials and families are permuted under the seed. So the image sees
   (palette, pattern), which pairs ``j = 0, 1`` and ``j = 2, 3``; the text sees (palette,
   material), which pairs ``j = 0, 2`` and ``j = 1, 3``; the metadata sees the brand family,
   which pairs ``s`` with ``s + ceil(S / 2)`` in another palette group (for ``S >= 8``). Each
   modality alone confuses every style with (at least) one other; any two modalities separate
   them. Each style also has its own category mix (half uniform, half Dirichlet(0.5)).
2. **Pins.** Styles are assigned in equal shares (``arange(n) % S``, shuffled). Each pin draws a
   category from its style's mix and a colour among the 4 of its palette. Then, independently
   per modality and with probability ``noise`` each, an attribute is replaced by a *different*
   value: the image palette, the image pattern, the title's colour word, the title's material
   word, the description's material word, the price band, and the brand (taken from a different
   style's family, which may share the family). Descriptions always add a misleading colour
   word ("pairs well with ...") drawn uniformly from all palettes, sometimes a second one, and
   name the pattern only 35% of the time.
3. **Images** (uint8 ``[3, size, size]``): a category silhouette (top, dress, skirt, trousers,
   shoes, bag) with a random scale and shift, filled with the image colour plus per-pin jitter
   (sd 12 per channel), a pattern overlaid in another colour of the image palette (random
   period, phase and, for stripes, orientation), a light random background, and pixel noise.
4. **Boards.** Board styles come in equal shares; sizes are uniform in ``board_size``. Each slot
   is on-style with probability ``purity`` and otherwise from a uniformly chosen other style.
   Every pin first gets one "home" slot on a board of its own style (while such slots last), so
   the graph is connected through styles and all pins are boarded whenever
   ``n_pins / S`` is below a style's on-style slots; the other slots draw pins of the slot's
   style by a log-normal(0, 1) popularity, which gives a heavy tail of pins on many boards.
   Duplicates within a board are dropped (spare slots refill them) and positions are a random
   order. Board titles combine a colour, material or pattern word of the board's style (each
   corrupted with probability ``noise``) with a filler word.

Presets (``preset=``, see :data:`PRESETS`) change only step 4; pins, images and the style
design are the same for a seed whatever the preset. ``"lookbook"`` is the process above. ``"dense"``
stands in for collaborative data (wishlists, purchase histories): each board is one user's history.

5. **Dense boards** (``preset="dense"``; defaults 2000 pins, 600 boards of 50-150 pins, purity 0.8):

   a. *Taste groups.* Each style's pins are split in equal shares into 8 hidden taste groups
      (co-consumption clusters), ``taste = 8 * style + k``. No modality sees them: they are drawn
      from the board stream after every content attribute.
   b. *Popularity.* Every pin gets a global popularity, log-normal(0, 1.75) (the lookbook's is
      log-normal(0, 1)), so a few pins are on a large share of the boards.
   c. *Users.* Board ``u`` has a primary style (equal shares, kept in ``boards.style``) and with
      probabilities 0.4 / 0.4 / 0.2 one / two / three styles, weighted by a sorted Gamma(2) draw
      (the primary the heaviest); within each of its styles it likes 1 to 3 of the 8 groups.
   d. *Histories.* A slot is drawn from a mixture: with probability ``0.9 * purity`` one of the
      user's groups (style by weight, then a group uniformly) and a pin of it by popularity; with
      ``0.1 * purity`` a pin of one of the user's styles (by weight) by popularity; with
      ``1 - purity`` any pin by global popularity. A history of ``size`` pins (uniform in
      ``board_size``) is ``size`` draws from this mixture *without replacement* (Plackett-Luce,
      through Gumbel top-k), so no pin repeats and weights renormalise as the user's groups run
      out. Every pin is first forced onto one random board of a user who likes its group (when
      one does), so pins are boarded. Positions are a random order. Board titles are drawn as in
      step 4 from the primary style.

   So item-item co-occurrence can learn the taste groups while content only reveals the coarser
   style. The groups are kept in ``pins.taste`` (dense preset only).

The hidden style is kept in ``pins.style`` and ``boards.style`` for evaluation only.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from .garments import draw_garments

if TYPE_CHECKING:
    from boardgraph.graph import PinBoardGraph

__all__ = ["LookbookTables", "LookbookPreset", "PRESETS", "make_lookbook_tables", "synthetic_lookbooks",
           "PALETTES", "PATTERNS", "MATERIALS", "CATEGORIES", "BRAND_FAMILIES", "PRICE_BANDS"]

log = logging.getLogger(__name__)

#: Palette name -> four (colour word, RGB) pairs.
PALETTES: dict[str, tuple[tuple[str, tuple[int, int, int]], ...]] = {
    "earth": (("rust", (183, 65, 14)), ("olive", (107, 112, 40)), ("camel", (193, 154, 107)),
              ("chocolate", (92, 58, 33))),
    "pastel": (("blush", (244, 194, 194)), ("lavender", (200, 180, 230)), ("mint", (170, 240, 209)),
               ("sky", (160, 200, 235))),
    "monochrome": (("black", (20, 20, 20)), ("white", (245, 245, 245)), ("grey", (128, 128, 128)),
                   ("charcoal", (60, 60, 60))),
    "nautical": (("navy", (20, 30, 90)), ("scarlet", (200, 30, 40)), ("cream", (250, 240, 200)),
                 ("cobalt", (0, 71, 171))),
    "neon": (("lime", (160, 255, 0)), ("magenta", (255, 0, 200)), ("cyan", (0, 230, 255)),
             ("tangerine", (255, 130, 0))),
    "jewel": (("emerald", (0, 120, 80)), ("sapphire", (15, 82, 186)), ("ruby", (155, 17, 30)),
              ("amethyst", (120, 60, 160))),
    "tropical": (("lemon", (245, 225, 50)), ("coral", (250, 120, 90)), ("teal", (0, 140, 140)),
                 ("turquoise", (64, 224, 208))),
    "berry": (("plum", (110, 30, 80)), ("burgundy", (128, 0, 32)), ("mauve", (190, 140, 170)),
              ("rose", (230, 100, 140))),
}
PATTERNS = ("solid", "stripes", "dots", "checks")
MATERIALS = ("cotton", "denim", "silk", "leather", "wool", "linen", "velvet", "knit")
CATEGORIES = ("top", "dress", "skirt", "trousers", "shoes", "bag")
#: Brand family -> its three brands. Up to 16 families, so ``n_styles <= 32``.
BRAND_FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("Aldermoor", "Brisk & Co", "Cobble"), ("Dunmere", "Elowen", "Fernhollow"),
    ("Gildwick", "Harrowgate", "Islay Row"), ("Juniper Lane", "Kestrel", "Larchmont"),
    ("Marlowe", "Northby", "Oakhurst"), ("Pemberly", "Quillon", "Rosedale"),
    ("Saltmarsh", "Thistle", "Umber"), ("Vantage", "Wrenfield", "Yarrow"),
    ("Zephyrine", "Ashcombe", "Bellweather"), ("Corvid", "Driftwood", "Emberly"),
    ("Foxglove", "Greyfriar", "Hollins"), ("Ivorine", "Jasperine", "Kilnworth"),
    ("Lumen", "Mossgiel", "Nettlebed"), ("Orchardine", "Pinecrest", "Quarry"),
    ("Ravensworth", "Sorrel", "Tamsin"), ("Underhill", "Valerian", "Willowby"),
)
#: Price band -> centre price in dollars (log-normal around it, sd 0.3 in log space).
PRICE_BANDS = {"budget": 25.0, "mid": 60.0, "premium": 150.0, "luxury": 400.0}

_PATTERN_PHRASES = {"solid": ("in a solid colour", "with no print"),
                    "stripes": ("with stripes", "in a striped print", "with pinstripes"),
                    "dots": ("with polka dots", "in a dotted print"),
                    "checks": ("in a check print", "with plaid checks", "in gingham")}
_PATTERN_WORDS = {"solid": ("plain", "solid"), "stripes": ("striped", "stripes"),
                  "dots": ("polka dot", "dotty"), "checks": ("plaid", "gingham")}
_NOUNS = {"top": ("top", "tee", "blouse"), "dress": ("dress", "midi dress", "sundress"),
          "skirt": ("skirt", "mini skirt", "pleated skirt"), "trousers": ("trousers", "pants", "chinos"),
          "shoes": ("sneakers", "boots", "loafers"), "bag": ("bag", "tote", "clutch")}
_CATEGORY_LOG_OFFSET = np.array([-0.2, 0.1, -0.1, 0.0, 0.2, 0.25])
_TITLE_PREFIXES = ("", "", "", "new ", "vintage ", "classic ", "oversized ", "everyday ")
_OPENERS = ("A", "This", "Our", "A relaxed", "A tailored")
_FILLERS = ("outfits", "inspo", "looks", "wardrobe", "ideas", "favourites", "wishlist", "style")
_COLOUR_WORDS = [w for cols in PALETTES.values() for w, _ in cols]
_COLOUR_RGB = np.array([rgb for cols in PALETTES.values() for _, rgb in cols], dtype=np.float32)


@dataclass
class LookbookTables:
    """The tables of a synthetic lookbook (see the module docstring for how they are drawn).

    Attributes:
        pins: one row per pin: ``pin_id`` (str), ``title``, ``description``, ``brand``,
            ``category`` (str), ``price`` (float64 dollars), ``style`` (int64, hidden truth) and,
            for the dense preset, ``taste`` (int64 taste group, hidden truth).
        boards: one row per board: ``board_id`` (str), ``board_title`` (str), ``style`` (int64;
            for the dense preset the user's primary style).
        memberships: ``board_id``, ``pin_id``, ``position`` (int64, 0-based order within the
            board); one row per (board, pin), sorted by board then position.
        images: uint8 ``[n_pins, 3, image_size, image_size]``, row ``i`` is ``pins`` row ``i``.
        styles: one row per style: ``style``, ``palette``, ``pattern``, ``material``,
            ``brand_family`` (int), ``price_band`` (the noise-free attributes).
        pin_labels: the hidden-truth columns of ``pins`` (``("style",)``, or
            ``("style", "taste")`` for the dense preset), for evaluation only.
    """

    pins: pd.DataFrame
    boards: pd.DataFrame
    memberships: pd.DataFrame
    images: torch.Tensor
    styles: pd.DataFrame
    pin_labels: tuple[str, ...] = ("style",)

    @property
    def n_unboarded(self) -> int:
        """Number of pins that are on no board."""
        return len(self.pins) - int(self.memberships["pin_id"].nunique())


def _other(rng: np.random.Generator, true: np.ndarray, n_values: int, noise: float) -> np.ndarray:
    """``true`` with each entry replaced, with probability ``noise``, by a different value."""
    flip = rng.random(true.shape) < noise
    return np.where(flip, (true + rng.integers(1, n_values, size=true.shape)) % n_values, true)


def _pick(rng: np.random.Generator, vocab: Sequence[Sequence[str]], which: np.ndarray) -> list[str]:
    """For each row, a uniform word of the word list ``vocab[which[i]]``."""
    u = rng.random(len(which))
    return [vocab[w][int(x * len(vocab[w]))] for w, x in zip(which.tolist(), u.tolist())]


def _design_styles(rng: np.random.Generator, n_styles: int) -> dict[str, np.ndarray]:
    s = np.arange(n_styles)
    g, a, b = s // 4, (s % 4) // 2, s % 2
    n_fam = math.ceil(n_styles / 2)
    pal = rng.permutation(len(PALETTES))[g]
    pat = rng.permutation(len(PATTERNS))[(2 * g + a) % len(PATTERNS)]
    mat = rng.permutation(len(MATERIALS))[(2 * g + b) % len(MATERIALS)]
    fam = rng.permutation(len(BRAND_FAMILIES))[s % n_fam]
    band_of_family = rng.permutation(np.arange(len(BRAND_FAMILIES)) % len(PRICE_BANDS))
    k = len(CATEGORIES)
    cat_p = 0.5 / k + 0.5 * rng.dirichlet(np.full(k, 0.5), size=n_styles)
    return {"palette": pal, "pattern": pat, "material": mat, "family": fam,
            "band": band_of_family[fam], "cat_cdf": np.cumsum(cat_p, axis=1)}


def _check_args(n_pins: int, n_boards: int, n_styles: int, image_size: int,
                board_size: tuple[int, int], noise: float, purity: float) -> None:
    if not 2 <= n_styles <= 2 * len(BRAND_FAMILIES):
        raise ValueError(f"n_styles must be in [2, {2 * len(BRAND_FAMILIES)}], got {n_styles}")
    if n_pins < n_styles:
        raise ValueError(f"n_pins must be at least n_styles={n_styles} (every style needs pins), got {n_pins}")
    if n_boards < 1:
        raise ValueError(f"n_boards must be >= 1, got {n_boards}")
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8 pixels, got {image_size}")
    lo, hi = board_size
    if not 1 <= lo <= hi:
        raise ValueError(f"board_size must be (min, max) with 1 <= min <= max, got {board_size}")
    if not 0.0 <= noise < 1.0:
        raise ValueError(f"noise must be in [0, 1), got {noise}")
    if not 0.0 < purity <= 1.0:
        raise ValueError(f"purity must be in (0, 1], got {purity}")


@dataclass(frozen=True)
class _Boards:
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
                          board_size: tuple[int, int], purity: float) -> _Boards:
    """Boards curated by style (module docstring, step 4)."""
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
    return _Boards(b_style, board, pin, position)


#: Dense preset (module docstring, step 5).
_GROUPS_PER_STYLE = 8
_STYLES_PER_USER = (0.4, 0.4, 0.2)  # P(a user likes 1, 2, 3 styles)
_GROUPS_PER_USER_STYLE = (1, 3)  # groups liked within each liked style, uniform
_DENSE_POPULARITY_SIGMA = 1.75
_GROUP_SHARE = 0.9  # of the on-taste share ``purity``; the rest goes to the styles at large
_KEYS_PER_BLOCK = 1 << 22  # Gumbel keys per block of users: 32 MiB of float64 whatever the size
_FORCED = 1e6  # added to the key of a pin's home slot: above any log-weight, keeps Gumbel order


def _draw_dense_boards(rng: np.random.Generator, pin_style: np.ndarray, n_boards: int, n_styles: int,
                       board_size: tuple[int, int], purity: float) -> _Boards:
    """User histories over hidden taste groups (module docstring, step 5)."""
    n, n_groups = len(pin_style), _GROUPS_PER_STYLE
    # a. taste groups: equal shares within each style
    by_style = np.lexsort((rng.random(n), pin_style))
    sorted_style = pin_style[by_style]
    taste = np.empty(n, dtype=np.int64)
    taste[by_style] = sorted_style * n_groups + (np.arange(n) - np.searchsorted(sorted_style, sorted_style)) % n_groups
    # b. global popularity
    popularity = rng.lognormal(0.0, _DENSE_POPULARITY_SIGMA, n)
    # c. users: K liked styles per row (primary first, all distinct), their weights, their groups
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
    # d. one forced home per pin, on a random user who likes its group (-1 when none does)
    holder_taste, holder_user = np.nonzero(taste_w.T > 0)  # sorted by taste
    count = np.bincount(holder_taste, minlength=taste_w.shape[1])[taste]
    start = np.searchsorted(holder_taste, taste)
    pick = np.minimum(start + (rng.random(n) * count).astype(np.int64), len(holder_user) - 1)
    home_user = np.where(count > 0, holder_user[pick], -1)
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
    order = np.lexsort((rng.random(len(board)), board))
    board, pin = board[order], pin[order]
    position = np.arange(len(board)) - np.searchsorted(board, np.arange(n_boards))[board]
    return _Boards(b_style, board, pin, position, {"taste": taste})


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
    draw_boards: Callable[[np.random.Generator, np.ndarray, int, int, tuple[int, int], float], _Boards]


#: Preset name -> :class:`LookbookPreset`. ``"lookbook"``: boards curated by style (step 4 of the
#: module docstring). ``"dense"``: user histories over hidden taste groups (step 5).
PRESETS: dict[str, LookbookPreset] = {
    "lookbook": LookbookPreset(2000, 200, (5, 30), 0.88, _draw_lookbook_boards),
    "dense": LookbookPreset(2000, 600, (50, 150), 0.8, _draw_dense_boards),
}


def _preset(name: str) -> LookbookPreset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {list(PRESETS)}")
    return PRESETS[name]


def make_lookbook_tables(n_pins: int | None = None, n_boards: int | None = None, seed: int = 0, *,
                         preset: str = "lookbook", n_styles: int = 12, image_size: int = 32,
                         board_size: tuple[int, int] | None = None, noise: float = 0.15,
                         purity: float | None = None) -> LookbookTables:
    """Draw the tables and images of a synthetic lookbook (process in the module docstring).

    Arguments left ``None`` take the preset's value (:data:`PRESETS`): ``"lookbook"`` 2000 pins,
    200 boards of 5-30 pins, purity 0.88; ``"dense"`` 2000 pins, 600 boards of 50-150 pins,
    purity 0.8 (so ``make_lookbook_tables(preset="dense")`` is the dense default).

    Args:
        n_pins: number of pins (``>= n_styles``).
        n_boards: number of boards (``>= 1``).
        seed: seed of ``numpy.random.default_rng``; equal seeds give identical tables and images.
            Tables do not depend on ``image_size``; pins and images do not depend on ``preset``.
        preset: ``"lookbook"`` (boards curated by style, step 4) or ``"dense"`` (user histories
            over hidden taste groups with a heavy popularity tail, step 5; adds ``pins.taste``).
        n_styles: number of hidden styles, 2 to 32.
        image_size: side of the square images, in pixels (``>= 8``).
        board_size: ``(min, max)`` pins per board, drawn uniformly. A lookbook board has fewer pins
            only when its style has too few distinct pins to fill it; a dense board only when
            ``max > n_pins``, or with ``purity=1`` when the user's styles have too few pins.
        noise: probability that each attribute of each modality is replaced, in ``[0, 1)``.
        purity: probability that a board slot is drawn from the board's own style (lookbook) or
            from the user's tastes rather than global popularity (dense), in ``(0, 1]``.

    Returns:
        :class:`LookbookTables`; ``images`` is uint8 ``[n_pins, 3, image_size, image_size]`` on CPU.

    Raises:
        ValueError: an unknown ``preset`` (the message lists :data:`PRESETS`), or an argument out
            of the ranges above.
    """
    cfg = _preset(preset)
    n_pins = cfg.n_pins if n_pins is None else n_pins
    n_boards = cfg.n_boards if n_boards is None else n_boards
    board_size = cfg.board_size if board_size is None else board_size
    purity = cfg.purity if purity is None else purity
    _check_args(n_pins, n_boards, n_styles, image_size, board_size, noise, purity)
    r_design, r_pins, r_boards, r_images = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4))
    st = _design_styles(r_design, n_styles)
    n_pal, n_pat, n_mat, n_cat = len(PALETTES), len(PATTERNS), len(MATERIALS), len(CATEGORIES)

    # pins: hidden attributes, then one independently corrupted copy per modality
    style = r_pins.permutation(np.arange(n_pins) % n_styles)
    cat = (r_pins.random(n_pins)[:, None] > st["cat_cdf"][style]).sum(1).clip(0, n_cat - 1)
    shade = r_pins.integers(0, 4, n_pins)
    img_colour = _other(r_pins, st["palette"][style], n_pal, noise) * 4 + shade
    img_colour2 = img_colour - shade + (shade + r_pins.integers(1, 4, n_pins)) % 4
    img_pattern = _other(r_pins, st["pattern"][style], n_pat, noise)
    title_colour = _other(r_pins, st["palette"][style], n_pal, noise) * 4 + shade
    title_mat = _other(r_pins, st["material"][style], n_mat, noise)
    desc_mat = _other(r_pins, st["material"][style], n_mat, noise)
    brand_style = np.where(r_pins.random(n_pins) < noise,
                           (style + r_pins.integers(1, n_styles, n_pins)) % n_styles, style)
    brand = np.array(BRAND_FAMILIES)[st["family"][brand_style], r_pins.integers(0, 3, n_pins)]
    band = _other(r_pins, st["band"][style], len(PRICE_BANDS), noise)
    log_price = (np.log(np.array(list(PRICE_BANDS.values())))[band] + _CATEGORY_LOG_OFFSET[cat]
                 + r_pins.normal(0, 0.3, n_pins))
    price = np.maximum(np.round(np.exp(log_price)), 5.0) - 0.01

    nouns = [_NOUNS[c] for c in CATEGORIES]
    noun = _pick(r_pins, nouns, cat)
    prefix = _pick(r_pins, [_TITLE_PREFIXES], np.zeros(n_pins, dtype=np.int64))
    titles = [f"{p}{_COLOUR_WORDS[c]} {MATERIALS[m]} {w}"
              for p, c, m, w in zip(prefix, title_colour.tolist(), title_mat.tolist(), noun)]
    opener = _pick(r_pins, [_OPENERS], np.zeros(n_pins, dtype=np.int64))
    phrase = _pick(r_pins, [_PATTERN_PHRASES[p] for p in PATTERNS], st["pattern"][style])
    show_pattern = (r_pins.random(n_pins) < 0.35).tolist()
    mislead = r_pins.integers(0, len(_COLOUR_WORDS), (2, n_pins))
    other_noun = _pick(r_pins, nouns, (cat + r_pins.integers(1, n_cat, n_pins)) % n_cat)
    also = (r_pins.random(n_pins) < 0.3).tolist()
    descriptions = [
        f"{o} {w} in {MATERIALS[m]}{', ' + ph if sp else ''}. Pairs well with {_COLOUR_WORDS[c1]} {on}."
        + (f" Also in {_COLOUR_WORDS[c2]}." if al else "")
        for o, w, m, ph, sp, c1, on, al, c2 in zip(opener, noun, desc_mat.tolist(), phrase, show_pattern,
                                                  mislead[0].tolist(), other_noun, also, mislead[1].tolist())]
    pid_width = max(6, len(str(n_pins - 1)))
    pins = pd.DataFrame({
        "pin_id": [f"p{i:0{pid_width}d}" for i in range(n_pins)], "title": titles,
        "description": descriptions, "brand": brand, "category": np.array(CATEGORIES)[cat],
        "price": price.astype(np.float64), "style": style.astype(np.int64)})

    # boards and memberships
    drawn = cfg.draw_boards(r_boards, style, n_boards, n_styles, board_size, purity)
    b_style, m_board, m_pin, m_pos = drawn.style, drawn.board, drawn.pin, drawn.position
    for name, values in drawn.pin_labels.items():
        pins[name] = values.astype(np.int64)
    bw = max(4, len(str(n_boards - 1)))
    board_ids = np.array([f"b{i:0{bw}d}" for i in range(n_boards)], dtype=object)
    t_col = _other(r_boards, st["palette"][b_style], n_pal, noise) * 4 + r_boards.integers(0, 4, n_boards)
    t_mat = _other(r_boards, st["material"][b_style], n_mat, noise)
    t_pat = _other(r_boards, st["pattern"][b_style], n_pat, noise)
    pat_word = _pick(r_boards, [_PATTERN_WORDS[p] for p in PATTERNS], t_pat)
    filler = _pick(r_boards, [_FILLERS], np.zeros(n_boards, dtype=np.int64))
    templates = ("{c} {m} {f}", "{p} {c} {f}", "{m} & {p} {f}", "{c}, {m} and {p} {f}")
    which = r_boards.integers(0, len(templates), n_boards)
    board_titles = [templates[k].format(c=_COLOUR_WORDS[c], m=MATERIALS[m], p=p, f=f)
                    for k, c, m, p, f in zip(which.tolist(), t_col.tolist(), t_mat.tolist(), pat_word, filler)]
    boards = pd.DataFrame({"board_id": board_ids, "board_title": board_titles, "style": b_style.astype(np.int64)})
    memberships = pd.DataFrame({"board_id": board_ids[m_board], "pin_id": pins["pin_id"].to_numpy()[m_pin],
                                "position": m_pos.astype(np.int64)})
    styles = pd.DataFrame({
        "style": np.arange(n_styles, dtype=np.int64), "palette": np.array(list(PALETTES))[st["palette"]],
        "pattern": np.array(PATTERNS)[st["pattern"]], "material": np.array(MATERIALS)[st["material"]],
        "brand_family": st["family"].astype(np.int64), "price_band": np.array(list(PRICE_BANDS))[st["band"]]})

    images = draw_garments(r_images, cat, _COLOUR_RGB[img_colour], _COLOUR_RGB[img_colour2], img_pattern, image_size)
    tables = LookbookTables(pins=pins, boards=boards, memberships=memberships, images=images, styles=styles,
                            pin_labels=("style", *drawn.pin_labels))
    log.debug("synthetic lookbook (%s): %d pins, %d boards, %d memberships, %d unboarded pins",
              preset, n_pins, n_boards, len(memberships), tables.n_unboarded)
    return tables


def synthetic_lookbooks(n_pins: int | None = None, n_boards: int | None = None, seed: int = 0, *,
                        preset: str = "lookbook", **kwargs: Any) -> PinBoardGraph:
    """A synthetic lookbook as a ``PinBoardGraph`` (the project's default dataset).

    Pins carry text (``title``, ``description``), categorical (``brand``, ``category``), numeric
    (``price``) and image (``image``, uint8 ``[n_pins, 3, S, S]``) features, plus the hidden
    ``style`` (and, for ``preset="dense"``, the hidden taste group ``taste``) as features of kind
    ``label``; boards carry ``board_title`` and ``style`` (label). The dense preset (user
    histories, see the module docstring) is normally built as
    ``synthetic_lookbooks(2000, 600, preset="dense")``, which is also its default size.
    Edges ``("pin", "in", "board")`` are the memberships; each membership's ``position`` is
    the int64 edge attribute ``"order"``. Pin index ``i`` is row ``i`` of the pins table (and of
    ``make_lookbook_tables(...).images``); pins on no board are kept as isolated nodes.

    Args:
        n_pins, n_boards, seed, preset: see :func:`make_lookbook_tables`.
        **kwargs: the other keyword-only options of :func:`make_lookbook_tables`.

    Returns:
        The ``PinBoardGraph``.

    Raises:
        ValueError: as :func:`make_lookbook_tables`.
    """
    from boardgraph.graph import from_collections  # lazy: the tables layer needs no graph package

    tables = make_lookbook_tables(n_pins, n_boards, seed, preset=preset, **kwargs)
    graph, report = from_collections(
        tables.memberships, collection="board_id", item="pin_id",
        items=tables.pins, boards=tables.boards,
        text=("title", "description"), categorical=("brand", "category"), numeric=("price",),
        labels=tables.pin_labels, board_text=("board_title",), board_labels=("style",),
        weight=None, timestamp=None, order="position")
    graph.features("pin").add_tensor("image", tables.images, kind="image")
    log.debug("synthetic_lookbooks build report: %s", report)
    return graph
