"""``report.html``: the evaluation report as one self-contained page (tables, text and the PNG
plots embedded), rendered from the Markdown that :func:`~boardgraph.evaluation.report.write_report`
writes. The converter reads that Markdown subset (headings, pipe tables, lists, code blocks,
images, paragraphs, ``code`` and **bold**); every piece of text is HTML-escaped first."""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

__all__ = ["markdown_to_html", "report_page"]

_IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)]+)\)\s*$")
_BULLET = re.compile(r"^\s*[-*] ")
_CSS = ("body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}"
        "table{border-collapse:collapse;margin:8px 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;"
        "text-align:left}th{background:#eef2f6}img{max-width:100%}code{background:#f2f2f2;padding:0 3px}"
        "pre{background:#f6f6f6;padding:8px;overflow:auto}")


def _inline(text: str) -> str:
    out = html.escape(text, quote=True)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(lines: list[str]) -> str:
    head, body = _cells(lines[0]), [_cells(x) for x in lines[1:] if not re.fullmatch(r"[\s|:-]+", x)]
    rows = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in body)
    return "<table><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + f"</tr>{rows}</table>"


def _image(alt: str, src: str, base: Path | None) -> str:
    path = (base / src) if base is not None else None
    if path is not None and path.suffix.lower() == ".png" and path.is_file() and path.resolve().parent == base.resolve():
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>'
    return f'<p>[figure: {html.escape(alt)} ({html.escape(src)})]</p>'


def markdown_to_html(md: str, base: Path | None = None) -> str:
    """HTML of the Markdown ``md``; images are embedded from ``base`` (a PNG in that folder only,
    never a path outside it), else named in text."""
    out: list[str] = []
    lines, i = md.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            j = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
            out.append("<pre>" + html.escape("\n".join(lines[i + 1:j])) + "</pre>")
            i = j + 1
        elif m := re.match(r"^(#{1,4}) (.*)$", line):
            n = len(m.group(1))
            out.append(f"<h{n}>{_inline(m.group(2))}</h{n}>")
            i += 1
        elif line.startswith("|"):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            out.append(_table(lines[i:j]))
            i = j
        elif m := _IMAGE.match(line):
            out.append(_image(m.group(1), m.group(2), base))
            i += 1
        elif _BULLET.match(line):
            j = i
            while j < len(lines) and _BULLET.match(lines[j]):
                j += 1
            items = [_inline(_BULLET.sub("", x)) for x in lines[i:j]]
            out.append("<ul>" + "".join(f"<li>{x}</li>" for x in items) + "</ul>")
            i = j
        elif line.strip():
            j = i
            while j < len(lines) and lines[j].strip() and not re.match(r"^(#|\||```|\s*[-*] |!\[)", lines[j]):
                j += 1
            out.append("<p>" + _inline(" ".join(lines[i:max(j, i + 1)])) + "</p>")
            i = max(j, i + 1)
        else:
            i += 1
    return "\n".join(out)


def report_page(md: str, base: Path | None = None) -> str:
    """A whole HTML page of the report Markdown ``md`` (its first heading is the title)."""
    title = next((x.lstrip("# ").strip() for x in md.splitlines() if x.startswith("# ")), "boardgraph report")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head><body>{markdown_to_html(md, base)}</body></html>")
