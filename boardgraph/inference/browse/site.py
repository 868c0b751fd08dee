"""Building the browse site of a trained run (``boardgraph browse RUN --out DIR``).

The site is static: it opens from disk, needs no server, no CDN and no network. Layout::

    index.html            title search (client-side, over assets/search_index.js) and the boards
    pins/p<i>.html        a pin: image or text card, title, metadata, boards, its K nearest pins
    boards/b<i>.html      a board: its pins (held-out ones marked with their rank), its completion
    map.html              a 2-D projection of the embeddings, coloured by board or an attribute
    thumbs/p<i>.jpg       96 px thumbnails, written once
    assets/               site.css, site.js, search_index.js

Pages are named by node index, never by a user string, so nothing is written outside the site
folder; every user string on a page is HTML-escaped. A large graph gets pages for a sample of
``pins`` and ``boards`` (default 300 and 100); cards of pins without a page are not links.
"""
from __future__ import annotations

import functools
import http.server
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from boardgraph._io import atomic_write_text
from boardgraph.errors import BoardgraphError
from boardgraph.evaluation.splits import load_split_ids
from boardgraph.graph import MEMBER
from boardgraph.inference.board_query import attention_scores
from boardgraph.inference.run import TrainedRun, load_run

from .assets import SITE_CSS, SITE_JS
from .html import PinCard, js_data, pin_href
from .pages import PALETTE, board_page, index_page, map_page, pin_page
from .projection import project_2d
from .thumbs import ThumbReport, write_thumbnails

__all__ = ["BrowseOptions", "SiteReport", "SiteError", "build_site", "site_server", "MARKER"]

#: A file every site folder holds: ``build_site`` refuses to write into a non-empty folder without it.
MARKER = ".boardgraph-site"


class SiteError(BoardgraphError, ValueError):
    """The site cannot be built where or how it was asked (a foreign folder, a run on another graph)."""


@dataclass
class BrowseOptions:
    """What the site holds.

    Attributes:
        pins, boards: pages for at most this many pins and boards (a seeded sample: boards with
            held-out pins first, then the pins of the sampled boards, then others).
        k: nearest pins per pin page, suggestions per board page.
        color_by: a pin feature colouring the map (None: each pin's first board).
        projection: ``pca``, ``tsne`` or ``umap`` (:data:`~.projection.PROJECTIONS`).
        map_points: most pins on the map (the pages' pins first).
        thumb_size: thumbnail side, pixels.
        seed: seed of the samples and the projection.
    """

    pins: int = 300
    boards: int = 100
    k: int = 10
    color_by: str | None = None
    projection: str = "pca"
    map_points: int = 2000
    thumb_size: int = 96
    seed: int = 0


@dataclass
class SiteReport:
    """What :func:`build_site` wrote: page counts, map points, thumbnails and the wall time."""

    out: Path
    pin_pages: int
    board_pages: int
    map_points: int
    thumbs: ThumbReport = field(default_factory=ThumbReport)
    seconds: float = 0.0

    def summary(self) -> str:
        t = self.thumbs
        return (f"site written to {self.out}: {self.pin_pages} pin pages, {self.board_pages} board pages, "
                f"{self.map_points} pins on the map; thumbnails {t.written} written, {t.reused} reused, "
                f"{t.missing} pins without an image, {len(t.unreadable)} unreadable ({self.seconds:.1f} s)")


class _Site:
    """The graph, embeddings and samples every page reads (built once per site)."""

    def __init__(self, run: TrainedRun, options: BrowseOptions) -> None:
        g = self.graph = run.graph
        self.opt = options
        self.emb = F.normalize(torch.as_tensor(np.asarray(run.embed_pins(), dtype=np.float32)), dim=1)
        feats = g.features("pin")
        self.pin_ids = np.asarray(g.ids("pin")).astype(str)
        text = feats.names("text")
        self.titles = [str(t) for t in feats.text(text[0])] if text else [""] * len(self.pin_ids)
        self.image_field = (feats.names("image") or [None])[0]
        bfeats, self.board_ids = g.features("board"), np.asarray(g.ids("board")).astype(str)
        btext = bfeats.names("text")
        self.board_names = [str(t) or b for t, b in zip(bfeats.text(btext[0]), self.board_ids)] if btext \
            else list(self.board_ids)
        self.b_indptr, self.b_pins, _ = g.csr(("board", "has", "pin"))
        self.p_indptr, self.p_boards, _ = g.csr(MEMBER)
        self.query, self.tau = run.config.objective.query(), run.config.objective.board_query_tau
        self.heldout = self._heldout(run)
        self.pin_pages: set[int] = set()
        self.board_pages: list[int] = []
        self.thumbs: set[int] = set()

    def _heldout(self, run: TrainedRun) -> set[tuple[int, int]]:
        """``(pin, board)`` memberships the run's training held out (its ``split.npz``), or none."""
        ids = load_split_ids(run.out_dir / "split.npz")
        if ids is None or not len(ids.heldout_pins):
            return set()
        # split.npz holds ids as text: match them to the graph's ids as text (int ids included)
        p = pd.Index(self.pin_ids).get_indexer(ids.heldout_pins).tolist()
        b = pd.Index(self.board_ids).get_indexer(ids.heldout_boards).tolist()
        return {(x, y) for x, y in zip(p, b) if x >= 0 and y >= 0}

    def members(self, b: int) -> list[int]:
        return self.b_pins[self.b_indptr[b]:self.b_indptr[b + 1]].tolist()

    def boards_of(self, p: int) -> list[int]:
        return self.p_boards[self.p_indptr[p]:self.p_indptr[p + 1]].tolist()

    def card(self, p: int) -> PinCard:
        return PinCard(p, self.pin_ids[p], self.titles[p], p in self.thumbs, p in self.pin_pages)

    def sample(self) -> None:
        """Choose the board and pin pages (seeded)."""
        o, rng = self.opt, np.random.default_rng(self.opt.seed)
        sizes = (self.b_indptr[1:] - self.b_indptr[:-1]).numpy()
        order = rng.permutation(len(sizes))
        with_held = {b for _, b in self.heldout}
        order = sorted((b for b in order if sizes[b] > 0), key=lambda b: b not in with_held)   # stable
        self.board_pages = [int(b) for b in order[:o.boards]]
        pins = list(dict.fromkeys(p for b in self.board_pages for p in self.members(b)))[:o.pins]
        chosen = set(pins)
        rest = [int(p) for p in rng.permutation(len(self.pin_ids)) if int(p) not in chosen]
        self.pin_pages = chosen | set(rest[:max(0, o.pins - len(pins))])

    def nearest(self, emb: torch.Tensor, pins: list[int]) -> dict[int, list[tuple[int, float]]]:
        """The ``k`` nearest pins (cosine, itself left out) of each of ``pins`` under ``emb``."""
        out, k = {}, min(self.opt.k, len(emb) - 1)
        for s in range(0, len(pins), 128):
            chunk = torch.tensor(pins[s:s + 128])
            sims = emb[chunk] @ emb.T
            sims[torch.arange(len(chunk)), chunk] = -float("inf")
            top = sims.topk(k, dim=1)
            for i, p in enumerate(chunk.tolist()):
                out[p] = list(zip(top.indices[i].tolist(), top.values[i].tolist()))
        return out

    def completion(self, b: int) -> tuple[list[tuple[int, float]], dict[int, int]]:
        """A board's top ``k`` suggestions from its training pins (the held-out ones left out of
        the query) by the run's board query, and each held-out pin's rank among the candidates."""
        members = self.members(b)
        train = [p for p in members if (p, b) not in self.heldout]
        if not train:
            return [], {}
        if self.query == "attention":
            scores = attention_scores(torch.tensor([train]), self.emb, self.emb, self.tau)[0]
        else:
            scores = F.normalize(self.emb[train].mean(0), dim=0) @ self.emb.T
        scores[torch.tensor(train)] = -float("inf")
        top = scores.topk(min(self.opt.k, len(scores) - len(train)))
        ranks = {p: int((scores > scores[p]).sum()) + 1 for p in members if (p, b) in self.heldout}
        return list(zip(top.indices.tolist(), top.values.tolist())), ranks


def _check_out(out: Path) -> None:
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise SiteError(f"{out} is not empty and holds no boardgraph site ({MARKER} is missing); the site would mix "
                        f"with its files. Fix: choose a new or empty folder for --out")
    for sub in ("pins", "boards", "thumbs", "assets"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / MARKER, "a boardgraph browse site (boardgraph browse RUN --out DIR)\n")


def build_site(run: str | Path | TrainedRun, out: str | Path, options: BrowseOptions | None = None,
               compare: str | Path | TrainedRun | None = None) -> SiteReport:
    """Write the browse site of ``run`` (a run folder or a loaded run) into ``out`` (see the module
    docstring); with ``compare``, pin pages show both runs' nearest pins side by side.

    Raises:
        SiteError: ``out`` is a non-empty folder that is not a site, or ``compare`` was trained on
            other pins.
        ProjectionError: an unknown or uninstalled projection.
    """
    t0, opt, out = time.perf_counter(), options or BrowseOptions(), Path(out)
    run = run if isinstance(run, TrainedRun) else load_run(run)
    other = None
    if compare is not None:
        other = compare if isinstance(compare, TrainedRun) else load_run(compare, graph=run.graph)
        if not np.array_equal(np.asarray(other.graph.ids("pin")), np.asarray(run.graph.ids("pin"))):
            raise SiteError("--compare needs a run on the same pins (same graph); its pin ids differ")
    columns = run.graph.features("pin").table.columns
    if opt.color_by is not None and opt.color_by not in columns:
        raise SiteError(f"--color-by {opt.color_by!r} is not a pin feature; choose one of {', '.join(map(str, columns))}")
    _check_out(out)
    site = _Site(run, opt)
    site.sample()
    map_pins = _map_pins(site)
    wanted = sorted(site.pin_pages | set(map_pins) | {p for b in site.board_pages for p in site.members(b)})
    thumbs = write_thumbnails(run.graph.features("pin"), site.image_field, wanted, out / "thumbs", opt.thumb_size)
    site.thumbs = thumbs.have
    _write_assets(site, out)
    _write_pin_pages(site, out, other)
    _write_board_pages(site, out)
    _write_map(site, out, map_pins)
    title = f"boardgraph: {run.out_dir.name}"
    boards = [(b, site.board_names[b], len(site.members(b))) for b in site.board_pages]
    note = f"Pages for {len(site.pin_pages):,} pins and {len(boards):,} boards."
    atomic_write_text(out / "index.html", index_page(title, len(site.pin_ids), len(site.board_ids), boards, note))
    return SiteReport(out, len(site.pin_pages), len(site.board_pages), len(map_pins), thumbs,
                      time.perf_counter() - t0)


def _map_pins(site: _Site) -> list[int]:
    rest = np.random.default_rng(site.opt.seed + 1).permutation(len(site.pin_ids))
    pins = sorted(site.pin_pages) + [int(p) for p in rest if int(p) not in site.pin_pages]
    return pins[:site.opt.map_points]


def _write_assets(site: _Site, out: Path) -> None:
    atomic_write_text(out / "assets" / "site.css", SITE_CSS)
    atomic_write_text(out / "assets" / "site.js", SITE_JS)
    entries = [{"i": site.pin_ids[p], "t": site.titles[p], "h": pin_href(p, ".")} for p in sorted(site.pin_pages)]
    atomic_write_text(out / "assets" / "search_index.js", js_data("BG_INDEX", entries))


def _metadata(site: _Site, p: int) -> list[tuple[str, str]]:
    feats = site.graph.features("pin")
    skip = set(feats.names("image"))
    row = feats.table.iloc[p] if len(feats.table.columns) else {}
    return [(c, "" if pd.isna(row[c]) else str(row[c])[:200]) for c in feats.table.columns if c not in skip]


def _write_pin_pages(site: _Site, out: Path, other: TrainedRun | None) -> None:
    pins = sorted(site.pin_pages)
    runs = [("this run", site.nearest(site.emb, pins))]
    if other is not None:
        o_emb = F.normalize(torch.as_tensor(np.asarray(other.embed_pins(), dtype=np.float32)), dim=1)
        runs.append((f"{other.out_dir.name} (--compare)", site.nearest(o_emb, pins)))
    board_set = set(site.board_pages)
    for p in pins:
        boards = [(b, site.board_names[b], b in board_set) for b in site.boards_of(p)]
        cols = [(name, [(site.card(q), s) for q, s in nn[p]]) for name, nn in runs]
        atomic_write_text(out / "pins" / f"p{p}.html", pin_page(site.card(p), _metadata(site, p), boards, cols))


def _write_board_pages(site: _Site, out: Path) -> None:
    k = site.opt.k
    for b in site.board_pages:
        top, ranks = site.completion(b)
        held = {p for p in site.members(b) if (p, b) in site.heldout}
        members = [(site.card(p), _rank_note(ranks.get(p), k) if p in held else "") for p in site.members(b)]
        note = (f"{len(held)} held out of training (outlined): would the model have found them?" if held
                else "No pin of this board was held out of training.")
        sugg = [(site.card(q), s, q in held) for q, s in top]
        atomic_write_text(out / "boards" / f"b{b}.html", board_page(site.board_names[b], site.board_ids[b], members,
                                                                    sugg, site.query, k, note))


def _rank_note(rank: int | None, k: int) -> str:
    if rank is None:
        return ' <span class="missed">held out</span>'
    found = rank <= k
    return f' <span class="{"found" if found else "missed"}">held out: rank {rank}{" (found)" if found else ""}</span>'


def _write_map(site: _Site, out: Path, pins: list[int]) -> None:
    opt = site.opt
    xy = project_2d(site.emb[pins].numpy(), opt.projection, opt.seed)
    if opt.color_by is not None:
        labels = [str(v) for v in site.graph.features("pin").table[opt.color_by].to_numpy()[pins]]
        how = f"coloured by {opt.color_by}"
    else:
        labels = [site.board_names[bs[0]] if (bs := site.boards_of(p)) else "(no board)" for p in pins]
        how = "coloured by each pin's first board"
    values, counts = np.unique(labels, return_counts=True)
    legend = [str(v) for v in values[np.argsort(-counts, kind="stable")][:len(PALETTE)]]
    colour = {v: i for i, v in enumerate(legend)}
    groups = [colour.get(v, -1) for v in labels]
    how += f", {opt.projection.upper()} projection; the {len(legend)} largest groups in colour, the rest grey"
    atomic_write_text(out / "map.html", map_page(xy, [site.card(p) for p in pins], groups, legend, how))


def site_server(out: str | Path, port: int = 8000) -> http.server.ThreadingHTTPServer:
    """A local HTTP server of the site folder ``out`` on ``127.0.0.1:port`` (0: any free port);
    call ``serve_forever()`` on it (``boardgraph browse --serve PORT`` does)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
