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
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from boardgraph.graph import PinBoardGraph, from_collections

from .garments import draw_garments
from .lookbook_boards import PRESETS, DrawnBoards, LookbookPreset
from .lookbook_vocab import (BRAND_FAMILIES, CATEGORIES, CATEGORY_LOG_OFFSET, COLOUR_RGB, COLOUR_WORDS, FILLERS,
                             MATERIALS, NOUNS, OPENERS, PALETTES, PATTERN_PHRASES, PATTERN_WORDS, PATTERNS, PRICE_BANDS,
                             TITLE_PREFIXES, design_styles)

__all__ = ["LookbookTables", "LookbookPreset", "PRESETS", "make_lookbook_tables", "synthetic_lookbooks",
           "PALETTES", "PATTERNS", "MATERIALS", "CATEGORIES", "BRAND_FAMILIES", "PRICE_BANDS"]

log = logging.getLogger(__name__)


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
    st = design_styles(r_design, n_styles)
    drawn_pins = _draw_pins(r_pins, st, n_pins, n_styles, noise)
    pins = _pin_table(r_pins, st, drawn_pins)
    drawn = cfg.draw_boards(r_boards, drawn_pins.style, n_boards, n_styles, board_size, purity)
    for name, values in drawn.pin_labels.items():
        pins[name] = values.astype(np.int64)
    boards, memberships = _board_tables(r_boards, st, drawn, pins["pin_id"].to_numpy(), noise)
    styles = pd.DataFrame({
        "style": np.arange(n_styles, dtype=np.int64), "palette": np.array(list(PALETTES))[st["palette"]],
        "pattern": np.array(PATTERNS)[st["pattern"]], "material": np.array(MATERIALS)[st["material"]],
        "brand_family": st["family"].astype(np.int64), "price_band": np.array(list(PRICE_BANDS))[st["band"]]})
    images = draw_garments(r_images, drawn_pins.cat, COLOUR_RGB[drawn_pins.img_colour],
                           COLOUR_RGB[drawn_pins.img_colour2], drawn_pins.img_pattern, image_size)
    tables = LookbookTables(pins=pins, boards=boards, memberships=memberships, images=images, styles=styles,
                            pin_labels=("style", *drawn.pin_labels))
    log.debug("synthetic lookbook (%s): %d pins, %d boards, %d memberships, %d unboarded pins",
              preset, n_pins, n_boards, len(memberships), tables.n_unboarded)
    return tables


@dataclass(frozen=True)
class _DrawnPins:
    """What step 2 draws, every field ``[n_pins]``: the hidden style (int64) and category (index into
    :data:`CATEGORIES`), and each modality's own, independently corrupted, copy of the attributes:
    image colours (indices into ``COLOUR_RGB``) and pattern, title colour (index into
    ``COLOUR_WORDS``) and material, description material, brand (str) and price (float64 dollars)."""

    style: np.ndarray
    cat: np.ndarray
    img_colour: np.ndarray
    img_colour2: np.ndarray
    img_pattern: np.ndarray
    title_colour: np.ndarray
    title_mat: np.ndarray
    desc_mat: np.ndarray
    brand: np.ndarray
    price: np.ndarray


def _draw_pins(rng: np.random.Generator, st: dict[str, np.ndarray], n_pins: int, n_styles: int,
               noise: float) -> _DrawnPins:
    """Pins' hidden attributes, then one independently corrupted copy per modality (step 2)."""
    n_pal, n_pat, n_mat, n_cat = len(PALETTES), len(PATTERNS), len(MATERIALS), len(CATEGORIES)
    style = rng.permutation(np.arange(n_pins) % n_styles)
    cat = (rng.random(n_pins)[:, None] > st["cat_cdf"][style]).sum(1).clip(0, n_cat - 1)
    shade = rng.integers(0, 4, n_pins)
    img_colour = _other(rng, st["palette"][style], n_pal, noise) * 4 + shade
    img_colour2 = img_colour - shade + (shade + rng.integers(1, 4, n_pins)) % 4
    img_pattern = _other(rng, st["pattern"][style], n_pat, noise)
    title_colour = _other(rng, st["palette"][style], n_pal, noise) * 4 + shade
    title_mat = _other(rng, st["material"][style], n_mat, noise)
    desc_mat = _other(rng, st["material"][style], n_mat, noise)
    brand_style = np.where(rng.random(n_pins) < noise,
                           (style + rng.integers(1, n_styles, n_pins)) % n_styles, style)
    brand = np.array(BRAND_FAMILIES)[st["family"][brand_style], rng.integers(0, 3, n_pins)]
    band = _other(rng, st["band"][style], len(PRICE_BANDS), noise)
    log_price = (np.log(np.array(list(PRICE_BANDS.values())))[band] + CATEGORY_LOG_OFFSET[cat]
                 + rng.normal(0, 0.3, n_pins))
    price = np.maximum(np.round(np.exp(log_price)), 5.0) - 0.01
    return _DrawnPins(style, cat, img_colour, img_colour2, img_pattern, title_colour, title_mat, desc_mat, brand,
                      price)


def _pin_table(rng: np.random.Generator, st: dict[str, np.ndarray], p: _DrawnPins) -> pd.DataFrame:
    """The pins table (see :class:`LookbookTables`): titles and descriptions drawn from ``p`` (step 2)."""
    n_pins, n_cat = len(p.style), len(CATEGORIES)
    nouns = [NOUNS[c] for c in CATEGORIES]
    noun = _pick(rng, nouns, p.cat)
    prefix = _pick(rng, [TITLE_PREFIXES], np.zeros(n_pins, dtype=np.int64))
    titles = [f"{pre}{COLOUR_WORDS[c]} {MATERIALS[m]} {w}"
              for pre, c, m, w in zip(prefix, p.title_colour.tolist(), p.title_mat.tolist(), noun)]
    opener = _pick(rng, [OPENERS], np.zeros(n_pins, dtype=np.int64))
    phrase = _pick(rng, [PATTERN_PHRASES[pat] for pat in PATTERNS], st["pattern"][p.style])
    show_pattern = (rng.random(n_pins) < 0.35).tolist()
    mislead = rng.integers(0, len(COLOUR_WORDS), (2, n_pins))
    other_noun = _pick(rng, nouns, (p.cat + rng.integers(1, n_cat, n_pins)) % n_cat)
    also = (rng.random(n_pins) < 0.3).tolist()
    descriptions = [
        f"{o} {w} in {MATERIALS[m]}{', ' + ph if sp else ''}. Pairs well with {COLOUR_WORDS[c1]} {on}."
        + (f" Also in {COLOUR_WORDS[c2]}." if al else "")
        for o, w, m, ph, sp, c1, on, al, c2 in zip(opener, noun, p.desc_mat.tolist(), phrase, show_pattern,
                                                  mislead[0].tolist(), other_noun, also, mislead[1].tolist())]
    pid_width = max(6, len(str(n_pins - 1)))
    return pd.DataFrame({
        "pin_id": [f"p{i:0{pid_width}d}" for i in range(n_pins)], "title": titles,
        "description": descriptions, "brand": p.brand, "category": np.array(CATEGORIES)[p.cat],
        "price": p.price.astype(np.float64), "style": p.style.astype(np.int64)})


def _board_tables(rng: np.random.Generator, st: dict[str, np.ndarray], drawn: DrawnBoards, pin_ids: np.ndarray,
                  noise: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The boards table, with titles drawn from each board's style (step 4), and the memberships
    (see :class:`LookbookTables`); ``pin_ids`` are the pins' ids in index order."""
    b_style, n_boards = drawn.style, len(drawn.style)
    n_pal, n_pat, n_mat = len(PALETTES), len(PATTERNS), len(MATERIALS)
    bw = max(4, len(str(n_boards - 1)))
    board_ids = np.array([f"b{i:0{bw}d}" for i in range(n_boards)], dtype=object)
    t_col = _other(rng, st["palette"][b_style], n_pal, noise) * 4 + rng.integers(0, 4, n_boards)
    t_mat = _other(rng, st["material"][b_style], n_mat, noise)
    t_pat = _other(rng, st["pattern"][b_style], n_pat, noise)
    pat_word = _pick(rng, [PATTERN_WORDS[p] for p in PATTERNS], t_pat)
    filler = _pick(rng, [FILLERS], np.zeros(n_boards, dtype=np.int64))
    templates = ("{c} {m} {f}", "{p} {c} {f}", "{m} & {p} {f}", "{c}, {m} and {p} {f}")
    which = rng.integers(0, len(templates), n_boards)
    board_titles = [templates[k].format(c=COLOUR_WORDS[c], m=MATERIALS[m], p=p, f=f)
                    for k, c, m, p, f in zip(which.tolist(), t_col.tolist(), t_mat.tolist(), pat_word, filler)]
    boards = pd.DataFrame({"board_id": board_ids, "board_title": board_titles, "style": b_style.astype(np.int64)})
    memberships = pd.DataFrame({"board_id": board_ids[drawn.board], "pin_id": pin_ids[drawn.pin],
                                "position": drawn.position.astype(np.int64)})
    return boards, memberships


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
