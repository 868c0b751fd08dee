"""``boardgraph build`` on bad input, as a new user meets it: one line and exit 2, never a
traceback, never a deleted file, and every input row either an edge or a counted drop."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from boardgraph.cli import main


def _one_line_error(capsys, needle: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert needle in err, err
    return err


def _csv(path, rows, columns=("board_id", "pin_id")):
    pd.DataFrame(rows, columns=list(columns)).to_csv(path, index=False)
    return str(path)


def test_build_never_deletes_what_is_at_out(capsys, tmp_path):
    src = _csv(tmp_path / "m.csv", [("b0", "p0"), ("b0", "p1"), ("b1", "p1")])
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("x")
    for argv in ([src, str(precious)], [src, str(precious), "--overwrite"]):
        assert main(["build", *argv]) == 2
        _one_line_error(capsys, "is not a saved boardgraph.graph")
        assert (precious / "thesis.txt").read_text() == "x" and sorted(p.name for p in precious.iterdir()) == ["thesis.txt"]
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    assert main(["build", src, str(a_file), "--overwrite"]) == 2
    _one_line_error(capsys, "notes.txt")
    assert a_file.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["m.csv", "notes.txt",
                                                                                               "precious"]
    # a saved graph is replaced only with --overwrite
    out = tmp_path / "g"
    assert main(["build", src, str(out)]) == 0
    capsys.readouterr()
    assert main(["build", src, str(out)]) == 2
    _one_line_error(capsys, "--overwrite")
    assert main(["build", src, str(out), "--overwrite"]) == 0


def test_build_keeps_ids_as_written_and_reads_other_encodings(capsys, tmp_path):
    from boardgraph.graph import PinBoardGraph

    src = _csv(tmp_path / "m.csv", [("b0", "007"), ("b0", "7"), ("b0", "0007"), ("b1", "1e3"), ("b1", "1000"),
                                    ("b1", "NA")])
    assert main(["build", src, str(tmp_path / "g")]) == 0
    g = PinBoardGraph.load(tmp_path / "g")
    assert sorted(g.ids("pin", range(g.num_nodes("pin"))).tolist()) == ["0007", "007", "1000", "1e3", "7", "NA"]
    latin = tmp_path / "latin.csv"
    latin.write_bytes("board_id,pin_id\nb0,caf\xe9\nb0,na\xefve\n".encode("latin-1"))
    assert main(["build", str(latin), str(tmp_path / "g2")]) == 2
    _one_line_error(capsys, "--encoding")
    assert main(["build", str(latin), str(tmp_path / "g2"), "--encoding", "latin-1"]) == 0


@pytest.mark.parametrize("content,needle", [
    (b"", "empty"),                                  # 0-byte CSV
    (b"board_id,pin_id\n", "no row"),                # header only
    (b"PAR1\x00\x01garbage", "Parquet"),             # a broken Parquet file
])
def test_build_unreadable_or_empty_tables_are_one_line(capsys, tmp_path, content, needle):
    path = tmp_path / ("t.parquet" if content.startswith(b"PAR1") else "t.csv")
    path.write_bytes(content)
    assert main(["build", str(path), str(tmp_path / "g")]) == 2
    err = _one_line_error(capsys, "boardgraph build: error:")
    assert needle.lower() in err.lower() and str(path.name) in err
    assert not (tmp_path / "g").exists()


def _random_table(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Memberships with every kind of fault a real export has, at random."""
    pool_b = ["b0", "b1", "b2", "", " ", "NA", "007", "7", "1e3"]
    pool_p = ["p0", "p1", "p2", "p3", "", "NA", "null", "0007", "7", "1e400", "\u00e9t\u00e9"]
    df = pd.DataFrame({"board_id": rng.choice(pool_b, n), "pin_id": rng.choice(pool_p, n)})
    weights = np.array(["1", "0.5", "$0.5", "heavy", "inf", "-inf", "1e400", "", "nan", "2"], dtype=object)
    df["weight"] = rng.choice(weights, n)
    df["price"] = rng.choice(np.array(["3", "4.5", "inf", "abc", "", "1e400"], dtype=object), n)
    df["consent"] = rng.choice(np.array(["1", "0", "yes", "no", "maybe", ""], dtype=object), n)
    return df


def test_fuzz_build_exits_0_or_2_and_accounts_for_every_row(capsys, tmp_path):
    """A few hundred random malformed tables: every build exits 0 or 2 with no traceback, and on
    success the report's edges plus its counted drops equal the rows read."""
    rng = np.random.default_rng(0)
    n_ok = n_refused = 0
    for t in range(200):
        n = int(rng.integers(0, 12))
        df = _random_table(rng, n)
        cols = ["board_id", "pin_id"] + [c for c in ("weight", "price", "consent") if rng.random() < 0.5]
        path = tmp_path / f"t{t}.csv"
        df[cols].to_csv(path, index=False)
        argv = ["build", str(path), str(tmp_path / f"g{t}"), "--on-error", str(rng.choice(["raise", "skip"]))]
        if "weight" in cols:
            argv += ["--weight", "weight"]
        if "price" in cols:
            argv += ["--numeric", "price"]
        if "consent" in cols:
            argv += ["--consent", "consent"]
        rc = main(argv)
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err, (t, err)
        assert rc in (0, 2), (t, rc, err)
        if rc == 2:
            n_refused += 1
            assert err.count("\n") == 1 and err.startswith("boardgraph build: error:"), (t, err)
            continue
        n_ok += 1
        m = re.search(r"([\d,]+) edges \+ ([\d,]+) dropped = ([\d,]+) rows read", out)
        assert m, out
        edges, dropped, rows = (int(x.replace(",", "")) for x in m.groups())
        assert edges + dropped == rows == n, (t, out)
    assert n_ok > 20 and n_refused > 20   # both paths are exercised


def _saved_graph(tmp_path):
    src = _csv(tmp_path / "m.csv", [("b0", "p0"), ("b0", "p1"), ("b1", "p1"), ("b1", "p2")])
    assert main(["build", src, str(tmp_path / "g")]) == 0
    return tmp_path / "g"


@pytest.mark.parametrize("damage,needle", [
    (lambda g: (g / "manifest.json").write_text("{not json"), "manifest.json"),
    (lambda g: (g / "manifest.json").write_text("{}"), "manifest.json"),
    (lambda g: next(g.rglob("*.parquet")).unlink(), ".parquet is missing"),
    (lambda g: (lambda f: f.write_bytes(f.read_bytes()[:20]))(next(g.rglob("*.npy"))), ".npy"),
])
def test_a_corrupt_saved_graph_is_one_line(capsys, tmp_path, damage, needle):
    g = _saved_graph(tmp_path)
    capsys.readouterr()
    damage(g)
    assert main(["describe", str(g)]) == 2
    _one_line_error(capsys, needle)


@pytest.mark.parametrize("text,needle", [
    ("run:\n  steps: abc\n", "run.steps must be an integer"),
    ("run:\n  batch_size: [1, 2]\n", "run.batch_size"),
])
def test_a_config_of_the_wrong_type_is_one_line(capsys, tmp_path, text, needle):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(text)
    assert main(["train", "--config", str(cfg)]) == 2
    _one_line_error(capsys, needle)


def test_a_huge_query_image_is_one_line(capsys, tiny_run_dir, tmp_path):
    """A 20000 x 20000 PNG (a decompression bomb for PIL) as a query: refused, not decoded."""
    import shutil
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = tmp_path / "huge.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
                    + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run)
    assert main(["search", str(run), "--image", str(png), "--k", "3"]) == 2
    _one_line_error(capsys, "too large")


def test_evaluate_on_a_graph_too_small_to_hold_out_is_one_line(capsys, tmp_path):
    """A 1-row table builds (with a warning), but evaluating it is refused, not an empty table."""
    src = _csv(tmp_path / "one.csv", [("b0", "p0")])
    assert main(["build", src, str(tmp_path / "g")]) == 0
    assert "WARNING" in capsys.readouterr().out
    g = tmp_path / "g"
    assert main(["evaluate", "--graph", str(g), "--models", "random", "popularity", "--out", str(tmp_path / "r")]) == 2
    _one_line_error(capsys, "no board has a held-out pin")


def test_demo_never_deletes_a_folder_it_did_not_write(capsys, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("x")
    assert main(["demo", "--out-dir", str(precious), "--pins", "100", "--boards", "10", "--steps", "2",
                 "--no-progress"]) == 2
    _one_line_error(capsys, "is not the output of an earlier demo")
    assert (precious / "thesis.txt").read_text() == "x"
    # the folder of a demo interrupted before its report carries the demo's marker: it is replaced
    interrupted = tmp_path / "demo"
    (interrupted / "content").mkdir(parents=True)
    (interrupted / ".boardgraph-demo").write_text("")
    assert main(["demo", "--out-dir", str(interrupted), "--pins", "100", "--boards", "10", "--steps", "2",
                 "--no-progress"]) == 0
    assert (interrupted / "report.md").exists() and (interrupted / ".boardgraph-demo").exists()
