"""HTML building blocks of the browse site: escaping, the page skeleton, pin cards and data
embedded safely in a page.

Every user string (titles, ids, board names, metadata values) goes through :func:`esc`; data for
scripts goes through :func:`script_data`, which cannot close its ``<script>`` element. File names
never come from user strings (pages are named by node index), so no path leaves the site folder.
"""
from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any, Sequence

__all__ = ["esc", "page", "js_data", "script_data", "PinCard", "pin_card", "pin_href", "board_href", "thumb_src"]


def esc(value: Any) -> str:
    """``str(value)`` HTML-escaped, quotes included (safe in text and in attribute values)."""
    return html.escape(str(value), quote=True)


def js_data(name: str, value: Any) -> str:
    """The JavaScript statement that sets ``window[name]`` to ``value`` (JSON, ASCII): ``<``, ``>``
    and ``&`` are escaped, so no string in ``value`` can end a ``<script>`` element or inject markup."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f"window[{json.dumps(name)}] = {text};"


def script_data(name: str, value: Any) -> str:
    """:func:`js_data` in a ``<script>`` element."""
    return f"<script>{js_data(name, value)}</script>"


# Installed first, so an error anywhere on the page is recorded for the browser tests (#selftest).
_ERROR_HOOK = ("<script>window.__bgErrors=[];window.addEventListener('error',function(e){"
               "window.__bgErrors.push(String(e.message||e.type))},true);(function(){var c=console.error;"
               "console.error=function(){window.__bgErrors.push(Array.prototype.join.call(arguments,' '));"
               "return c.apply(console,arguments)}})();</script>")


def page(title: str, body: str, root: str, data: str = "", scripts: Sequence[str] = ()) -> str:
    """A whole HTML page: ``title`` (escaped here), ``body`` (already HTML), ``root`` the relative
    path to the site folder (``"."`` or ``".."``), ``data`` :func:`script_data` blocks and extra
    ``scripts`` (paths under ``root``) loaded before ``assets/site.js``."""
    extra = "".join(f'<script src="{root}/{esc(s)}"></script>' for s in scripts)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{esc(title)}</title>{_ERROR_HOOK}<link rel="stylesheet" href="{root}/assets/site.css"></head>'
            f'<body><nav><a href="{root}/index.html">Index</a> <a href="{root}/map.html">Map</a></nav>'
            f'<main>{body}</main>{data}{extra}<script src="{root}/assets/site.js"></script></body></html>')


def pin_href(pin: int, root: str) -> str:
    return f"{root}/pins/p{pin}.html"


def board_href(board: int, root: str) -> str:
    return f"{root}/boards/b{board}.html"


def thumb_src(pin: int, root: str) -> str:
    return f"{root}/thumbs/p{pin}.jpg"


@dataclass
class PinCard:
    """What a card shows of a pin: its node index, id, title, whether a thumbnail exists and whether
    it has a page of its own."""

    pin: int
    pin_id: str
    title: str
    thumb: bool
    linked: bool


def pin_card(card: PinCard, root: str, note: str = "", cls: str = "card") -> str:
    """A pin as a card: its thumbnail (or a text card without an image), title and ``note`` (HTML),
    linked to its page when it has one."""
    if card.thumb:
        visual = f'<img src="{thumb_src(card.pin, root)}" alt="{esc(card.title)}" width="96" height="96">'
    else:
        visual = f'<div class="textcard">{esc(card.title[:80])}</div>'
    inner = f'{visual}<span class="title">{esc(card.title or card.pin_id)}</span>{note}'
    if card.linked:
        inner = f'<a href="{pin_href(card.pin, root)}">{inner}</a>'
    return f'<div class="{cls}" data-pin="{esc(card.pin_id)}">{inner}</div>'
