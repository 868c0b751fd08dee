"""Smoke test of ``benchmarks/browse.py`` at a tiny size: it prints a first build and a rebuild
(checked for their fields and for what holds at any speed: the rebuild writes no thumbnail)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def test_browse_benchmark_builds_twice_and_reuses_the_thumbnails():
    out = subprocess.run([sys.executable, "browse.py", "--pins", "300", "--steps", "2", "--threads", "1"], cwd=BENCH,
                         capture_output=True, text=True, timeout=600, check=True).stdout
    recs = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert [r["build"] for r in recs] == ["first", "again"]
    first, again = recs
    assert first["pin_pages"] == 300 and first["board_pages"] == 30 and first["thumbs_written"] == 300
    assert again["thumbs_written"] == 0 and first["seconds"] > 0 and again["site_mb"] == first["site_mb"]
