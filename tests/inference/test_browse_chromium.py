"""The browse site rendered in a real browser: headless Chromium (the Debian package ``chromium``;
``.ci/run`` installs it). Each page is opened from disk at ``#selftest``: ``site.js`` then reports
page errors, every image's decoded width, the neighbour count and a search round trip into the
DOM, which ``--dump-dom`` returns. Screenshots must not be blank. Skipped when Chromium is absent."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from boardgraph.inference.browse import BrowseOptions, build_site

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium (Debian package 'chromium'; "
                                                          "apt-get install -y chromium)"),
              pytest.mark.usefixtures("one_thread")]
K = 6


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           f"--user-data-dir={tmp / 'profile'}", "--virtual-time-budget=5000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _selftest(tmp: Path, page: Path) -> dict:
    r = _chromium(tmp, "--dump-dom", page.resolve().as_uri() + "#selftest")
    m = re.search(r'<pre id="bg-selftest">(.*?)</pre>', r.stdout, re.S)
    assert m, (r.returncode, r.stderr[-2000:])
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))


@pytest.fixture(scope="module")
def site(tiny_run_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("chromium_site")
    build_site(tiny_run_dir, out, BrowseOptions(pins=30, boards=4, k=K, map_points=300))
    return out


def test_index_loads_without_errors_and_the_search_box_filters(site, tmp_path):
    got = _selftest(tmp_path, site / "index.html")
    assert got["errors"] == []
    s = got["search"]
    assert s["all"] == 30 and 1 <= s["hits"] < s["all"], s      # the full list shows all 30; one title narrows it


def test_pin_and_board_pages_load_their_thumbnails_and_k_neighbours(site, tmp_path):
    pin = sorted((site / "pins").glob("*.html"))[0]
    board = sorted((site / "boards").glob("*.html"))[0]
    for page in (pin, board):
        got = _selftest(tmp_path, page)
        assert got["errors"] == [], (page, got["errors"])
        assert got["images"] and all(w > 0 for w in got["images"]), (page, got["images"])   # every thumbnail decodes
        assert got["neighbours"] == K, page


def test_screenshots_are_not_blank(site, tmp_path):
    for name in ("map.html", f"pins/{sorted(p.name for p in (site / 'pins').glob('*.html'))[0]}"):
        shot = tmp_path / (name.replace("/", "_") + ".png")
        _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1000,800", (site / name).resolve().as_uri())
        with Image.open(shot) as im:
            colours = len(im.convert("RGB").getcolors(maxcolors=1 << 24))
        assert colours > 100, (name, colours)


def test_the_selftest_sees_a_broken_image_and_a_script_error(site, tmp_path):
    """The checks above can fail: a missing thumbnail decodes to width 0, a throwing script is caught."""
    broken = tmp_path / "broken"
    shutil.copytree(site, broken)
    page = sorted((broken / "pins").glob("*.html"))[0]
    pin = page.stem[1:]
    (broken / "thumbs" / f"p{pin}.jpg").unlink()
    html = page.read_text().replace("</main>", "</main><script>undefinedFunction()</script>")
    page.write_text(html)
    got = _selftest(tmp_path, page)
    assert 0 in got["images"] and any("undefinedFunction" in e for e in got["errors"]), got
