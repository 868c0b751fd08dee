"""The pages of the browse site, as HTML strings: index, pin, board and map pages (each page's
data comes from :class:`~boardgraph.inference.browse.site.SiteData`)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .html import PinCard, board_href, esc, page, pin_card, pin_href, script_data, thumb_src

__all__ = ["index_page", "pin_page", "board_page", "map_page", "PALETTE"]

#: Colour-blind-safe first colours (Okabe-Ito), then more; groups past the list are grey.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
           "#882255", "#44AA99", "#999933", "#AA4499", "#332288", "#117733", "#88CCEE", "#DDCC77")


def index_page(title: str, n_pins: int, n_boards: int, boards: Sequence[tuple[int, str, int]], note: str) -> str:
    """The index: a title search (``site.js`` over ``assets/search_index.js``) and the board pages
    ``boards`` as ``(board, name, size)``."""
    links = "".join(f'<li><a href="{board_href(b, ".")}">{esc(name)}</a> <span class="score">{size} pins</span></li>'
                    for b, name, size in boards)
    body = (f"<h1>{esc(title)}</h1><p>{n_pins:,} pins on {n_boards:,} boards. {esc(note)}</p>"
            f'<h2>Search pins by title</h2><input id="search" type="search" placeholder="title or id" '
            f'aria-label="search pins"><ul id="results"></ul>'
            f'<h2>Boards</h2><ul>{links}</ul><p><a href="map.html">The map of the embedding</a></p>')
    return page(title, body, ".", scripts=["assets/search_index.js"])


def _meta_table(meta: Sequence[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in meta)
    return f'<table class="meta">{rows}</table>'


def _neighbours(cards: Sequence[tuple[PinCard, float]], root: str, section_id: str, heading: str) -> str:
    items = "".join(pin_card(c, root, f'<span class="score">{s:.3f}</span>') for c, s in cards)
    return f'<section><h2>{esc(heading)}</h2><div class="grid" id="{section_id}">{items}</div></section>'


def pin_page(card: PinCard, meta: Sequence[tuple[str, str]], boards: Sequence[tuple[int, str, bool]],
             neighbours: Sequence[tuple[str, Sequence[tuple[PinCard, float]]]]) -> str:
    """A pin: its image (or text card), title, metadata and boards (``(board, name, has page)``),
    then its nearest pins with cosine scores, one column per run (``(run name, [(card, score)])``;
    the first column's grid is ``#neighbours``)."""
    root = ".."
    visual = (f'<img src="{thumb_src(card.pin, root)}" alt="{esc(card.title)}" width="192" height="192">'
              if card.thumb else f'<div class="textcard" style="width:192px;height:192px">{esc(card.title)}</div>')
    board_items = "".join(f'<li><a href="{board_href(b, root)}">{esc(n)}</a></li>' if linked else f"<li>{esc(n)}</li>"
                          for b, n, linked in boards)
    cols = "".join(_neighbours(cards, root, "neighbours" if i == 0 else f"neighbours-{i}", f"Nearest pins: {name}")
                   for i, (name, cards) in enumerate(neighbours))
    body = (f"<h1>{esc(card.title or card.pin_id)}</h1><div class=\"cols\"><section>{visual}</section>"
            f"<section><p>id <code>{esc(card.pin_id)}</code></p>{_meta_table(meta)}"
            f"<h2>Boards</h2><ul>{board_items or '<li>none (a new pin)</li>'}</ul></section></div>"
            f'<div class="cols">{cols}</div>')
    return page(card.title or card.pin_id, body, root)


def board_page(name: str, board_id: str, members: Sequence[tuple[PinCard, str]],
               suggestions: Sequence[tuple[PinCard, float, bool]], query: str, k: int, note: str) -> str:
    """A board: its pins as a grid (``(card, status)``; status ``""``, or the HTML of a held-out
    pin's rank) and the model's completion (``(card, score, is held out)``, top ``k``)."""
    root = ".."
    grid = "".join(pin_card(c, root, status, "card heldout" if status else "card") for c, status in members)
    sugg = "".join(pin_card(c, root, f'<span class="score">{s:.3f}</span>' +
                            (' <span class="found">held out</span>' if held else ""),
                            "card heldout" if held else "card") for c, s, held in suggestions)
    body = (f"<h1>{esc(name)}</h1><p>id <code>{esc(board_id)}</code>, {len(members)} pins. {note}</p>"
            f'<h2>Pins</h2><div class="grid" id="members">{grid}</div>'
            f"<h2>Completing the look: the top {k} ({esc(query)} board query)</h2>"
            f'<div class="grid" id="neighbours">{sugg}</div>')
    return page(name, body, root)


def map_page(xy: np.ndarray, cards: Sequence[PinCard], groups: Sequence[int], legend: Sequence[str],
             how: str) -> str:
    """An SVG scatter of the 2-D projection ``xy [n, 2]`` (in ``[0, 1]``) of ``cards``, coloured by
    ``groups`` (index into ``legend``; past the palette: grey); hover shows the thumbnail and
    title, a click opens the pin's page when it has one."""
    w, h, pad = 900, 640, 10
    dots = []
    for (x, y), c, g in zip(xy, cards, groups):
        colour = PALETTE[g] if 0 <= g < len(PALETTE) else "#bbbbbb"
        cx, cy = pad + x * (w - 2 * pad), pad + (1 - y) * (h - 2 * pad)
        thumb = f' data-thumb="{thumb_src(c.pin, ".")}"' if c.thumb else ""
        dot = (f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{colour}" data-title="{esc(c.title or c.pin_id)}"'
               f"{thumb}></circle>")
        dots.append(f'<a href="{pin_href(c.pin, ".")}">{dot}</a>' if c.linked else dot)
    keys = "".join(f'<span><i style="background:{PALETTE[i]}"></i>{esc(name)}</span>'
                   for i, name in enumerate(legend[:len(PALETTE)]))
    body = (f"<h1>Map of the embedding</h1><p>{len(cards):,} pins, {esc(how)}.</p>"
            f'<div class="legend">{keys}</div>'
            f'<svg id="map" width="{w}" height="{h}" viewBox="0 0 {w} {h}" style="background:#fff">{"".join(dots)}</svg>'
            f'<div id="tip"></div>')
    return page("Map of the embedding", body, ".", data=script_data("BG_MAP_POINTS", len(cards)))
