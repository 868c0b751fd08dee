"""``boardgraph browse`` (``boardgraph.inference.browse``) without a browser: the site's files,
links, escaping, sizes, held-out marks, the CLI and the local server. The pages are rendered in
Chromium by ``test_browse_chromium.py``."""
from __future__ import annotations

import re
import threading
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from boardgraph.cli import main
from boardgraph.graph import from_collections
from boardgraph.inference.run import RunFormatError
from boardgraph.inference.browse import MARKER, BrowseOptions, SiteError, build_site, site_server
from boardgraph.inference.browse.html import PinCard, js_data
from boardgraph.inference.browse.pages import pin_page

pytestmark = pytest.mark.usefixtures("one_thread")

EVIL = "<script>alert(1)</script>"


def csv_run(base: Path) -> Path:
    """A user graph from tables (text and metadata, no images; one title is an injection attempt),
    trained briefly with 20% of the memberships held out: the run browse must handle."""
    from boardgraph.evaluation.demo import demo_config
    from boardgraph.training.trainer import Trainer

    out = base / "neighbor"
    if (out / "checkpoint.pt").exists():
        return out
    rows = [(f"wish{b}", f"item{(b * 7 + j * 3) % 90}") for b in range(24) for j in range(8)]
    items = pd.DataFrame({"pin_id": [f"item{i}" for i in range(90)],
                          "title": [EVIL if i == 0 else f"{['red', 'blue', 'green'][i % 3]} thing {i}" for i in range(90)],
                          "category": [None if i == 5 else ["shoe", "bag", "hat"][i % 3] for i in range(90)]})
    boards = pd.DataFrame({"board_id": [f"wish{b}" for b in range(24)],
                           "board_title": ['"><img src=x onerror=alert(2)>' if b == 0 else f"wishlist {b}"
                                           for b in range(24)]})
    graph, _ = from_collections(pd.DataFrame(rows, columns=["board_id", "pin_id"]).drop_duplicates(), items=items,
                                boards=boards, text=["title"], categorical=["category"], board_text=["board_title"])
    graph.save(base / "graph")
    cfg = demo_config("neighbor", base, n_pins=90, n_boards=24, steps=10, seed=0)
    cfg.data.source, cfg.data.holdout_fraction = str(base / "graph"), 0.2
    cfg.run.batch_size, cfg.run.progress, cfg.run.tensorboard = 32, "off", False
    Trainer(cfg).fit()
    return out


@pytest.fixture(scope="module")
def user_run(tmp_path_factory) -> Path:
    return csv_run(tmp_path_factory.getbasetemp() / "browse_csv_run")


@pytest.fixture(scope="module")
def site(tiny_run_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build_site(tiny_run_dir, out, BrowseOptions(pins=40, boards=6, k=5, map_points=200))
    return out


def _refs(page: Path) -> list[str]:
    return re.findall(r'(?:href|src)="([^"#]+)"', page.read_text())


def test_every_link_resolves_inside_the_site_and_pages_stay_small(site):
    pages = [site / "index.html", site / "map.html", *sorted((site / "pins").glob("*.html")),
             *sorted((site / "boards").glob("*.html"))]
    assert len(list((site / "pins").glob("*.html"))) == 40 and len(list((site / "boards").glob("*.html"))) == 6
    root = site.resolve()
    for page in pages:
        for ref in _refs(page):
            target = (page.parent / ref).resolve()
            assert target.is_relative_to(root) and target.is_file(), (page, ref)
        assert page.stat().st_size < 200_000, page       # the map of 200 points is the largest page
    assert (site / MARKER).exists() and sum(f.stat().st_size for f in site.rglob("*") if f.is_file()) < 3_000_000


def test_pin_pages_list_k_neighbours_and_thumbnails_decode(site):
    page = (site / "pins" / sorted(p.name for p in (site / "pins").glob("*.html"))[0]).read_text()
    grid = page.split('id="neighbours"')[1].split("</section>")[0]
    assert grid.count('class="card"') == 5 and grid.count('class="score"') == 5
    thumbs = sorted((site / "thumbs").glob("*.jpg"))
    assert len(thumbs) >= 40
    for t in thumbs[:20]:
        with Image.open(t) as im:
            assert im.size == (96, 96) and im.format == "JPEG"
        assert t.stat().st_size < 8_000


def test_a_user_csv_graph_escapes_every_string_and_marks_held_out_pins(user_run, tmp_path):
    rep = build_site(user_run, tmp_path / "site", BrowseOptions(pins=90, boards=24, k=5, color_by="category"))
    assert rep.thumbs.missing == 90 and rep.pin_pages == 90      # no images: text cards
    text = "".join(p.read_text() for p in (tmp_path / "site").rglob("*.html"))
    text += (tmp_path / "site" / "assets" / "search_index.js").read_text()
    assert EVIL not in text and "<img src=x" not in text and "onerror=alert(2)>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "\\u003cscript\\u003e" in text
    boards = [p.read_text() for p in (tmp_path / "site" / "boards").glob("*.html")]
    marked = [b for b in boards if "held out of training (outlined)" in b]
    assert len(marked) >= 10 and all("held out: rank" in b for b in marked)
    assert sum("(found)" in b for b in boards) >= 1                  # some held-out pins are in the top 5
    assert "coloured by category" in (tmp_path / "site" / "map.html").read_text()
    page = next(p.read_text() for p in (tmp_path / "site" / "pins").glob("*.html") if "<code>item5</code>" in p.read_text())
    assert "<td>category</td><td></td>" in page and "nan" not in page.lower()      # a missing value shows empty


def test_the_script_data_cannot_close_its_element():
    assert "</script>" not in js_data("X", {"t": "</script><script>alert(1)</script>"})
    html = pin_page(PinCard(0, 'id"&', EVIL, False, False), [("brand", EVIL)], [(0, EVIL, True)], [])
    assert EVIL not in html and html.count("&lt;script&gt;") == 5    # title, heading, card, metadata, board


def test_compare_shows_both_runs_and_a_foreign_folder_is_refused(tiny_run_dir, tmp_path, user_run):
    out = tmp_path / "cmp"
    rep = build_site(tiny_run_dir, out, BrowseOptions(pins=10, boards=2, k=4), compare=tiny_run_dir)
    page = next((out / "pins").glob("*.html")).read_text()
    assert 'id="neighbours"' in page and 'id="neighbours-1"' in page and "(--compare)" in page
    again = build_site(tiny_run_dir, out, BrowseOptions(pins=10, boards=2, k=4))      # thumbnails written once
    assert again.thumbs.reused == rep.thumbs.written and again.thumbs.written == 0
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(SiteError, match="not empty and holds no boardgraph site"):
        build_site(tiny_run_dir, tmp_path / "mine")
    with pytest.raises(RunFormatError, match="trained on 90 pins but the graph has 300"):
        build_site(tiny_run_dir, tmp_path / "x", compare=user_run)
    with pytest.raises(SiteError, match="--color-by 'nope' is not a pin feature"):
        build_site(tiny_run_dir, tmp_path / "y", BrowseOptions(color_by="nope"))


def test_cli_reads_the_graph_a_run_names_or_the_one_given(user_run, tmp_path, capsys):
    graph_dir = user_run.parent / "graph"
    assert main(["browse", str(user_run), "--out", str(tmp_path / "a"), "--graph", str(graph_dir), "--pins", "5",
                 "--boards", "1"]) == 0
    assert "5 pin pages, 1 board pages" in capsys.readouterr().out
    assert main(["browse", str(user_run), "--out", str(tmp_path / "b"), "--graph", str(tmp_path / "none")]) == 2
    assert "none" in capsys.readouterr().err


def test_cli_writes_the_site_and_the_server_serves_it(tiny_run_dir, tmp_path, capsys):
    assert main(["browse", str(tiny_run_dir), "--out", str(tmp_path / "s"), "--pins", "8", "--boards", "2",
                 "--projection", "tsne", "--map-points", "60"]) == 0
    assert "8 pin pages, 2 board pages, 60 pins on the map" in capsys.readouterr().out
    assert main(["browse", str(tiny_run_dir), "--out", str(tmp_path / "s"), "--color-by", "nope"]) == 2
    assert "--color-by 'nope' is not a pin feature" in capsys.readouterr().err
    server = site_server(tmp_path / "s", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10).read().decode()
        assert "Search pins by title" in body
    finally:
        server.shutdown()
        server.server_close()


def test_thumbnails_from_image_paths_bytes_and_tensors_count_what_they_skip(tmp_path):
    import io

    import numpy as np
    import torch

    from boardgraph.graph.features import NodeFeatures
    from boardgraph.inference.browse import write_thumbnails

    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "red.png")
    buf = io.BytesIO()
    Image.new("RGB", (50, 50), (30, 30, 200)).save(buf, format="JPEG")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    f = NodeFeatures(5)
    f.add_column("photo", [str(tmp_path / "red.png"), buf.getvalue(), None, str(tmp_path / "broken.jpg"),
                           str(tmp_path / "absent.png")], "image")
    rep = write_thumbnails(f, "photo", [0, 1, 2, 3, 4], tmp_path / "thumbs", size=32)
    assert rep.have == {0, 1} and rep.written == 2 and rep.missing == 1 and sorted(rep.unreadable) == [3, 4]
    with Image.open(tmp_path / "thumbs" / "p0.jpg") as im:
        assert im.size == (32, 32) and abs(im.getpixel((16, 16))[0] - 200) < 12     # red stays red
    assert write_thumbnails(f, "photo", [0, 1], tmp_path / "thumbs", size=32).reused == 2   # written once
    t = NodeFeatures(2)
    t.add_tensor("image", torch.from_numpy(np.full((2, 3, 64, 64), 90, dtype=np.uint8)), kind="image")
    rep = write_thumbnails(t, "image", [1], tmp_path / "t2", size=16)
    assert rep.have == {1} and (tmp_path / "t2" / "p1.jpg").exists() and not (tmp_path / "t2" / "p0.jpg").exists()


def test_held_out_pins_are_marked_on_a_graph_with_integer_ids(tmp_path):
    """split.npz stores ids as text; a graph of int64 ids still gets its held-out pins marked."""
    from boardgraph.evaluation.demo import demo_config
    from boardgraph.training.trainer import Trainer

    rows = [(1000 + b, (b * 7 + j * 3) % 90) for b in range(24) for j in range(8)]
    items = pd.DataFrame({"pin_id": range(90), "title": [f"thing {i}" for i in range(90)]})
    graph, _ = from_collections(pd.DataFrame(rows, columns=["board_id", "pin_id"]).drop_duplicates(), items=items,
                                text=["title"])
    assert graph.ids("pin").dtype.kind == "i"
    graph.save(tmp_path / "graph")
    cfg = demo_config("neighbor", tmp_path, n_pins=90, n_boards=24, steps=3, seed=0)
    cfg.data.source, cfg.data.holdout_fraction = str(tmp_path / "graph"), 0.2
    cfg.run.batch_size, cfg.run.progress, cfg.run.tensorboard = 32, "off", False
    Trainer(cfg).fit()
    build_site(tmp_path / "neighbor", tmp_path / "site", BrowseOptions(pins=90, boards=24, k=5))
    marked = sum("held out: rank" in p.read_text() for p in (tmp_path / "site" / "boards").glob("*.html"))
    assert marked >= 10, marked
