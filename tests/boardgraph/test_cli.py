import subprocess
import sys

import pandas as pd

from boardgraph.cli import main


def test_demo_trains_both_models_and_prints_the_table(capsys, tmp_path):
    rc = main(["demo", "--pins", "400", "--boards", "40", "--steps", "20", "--out-dir", str(tmp_path / "demo"),
               "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "pin                 400" in out and "connected components:" in out and "style (label)" in out
    assert "style purity@10" in out and "neighbor alignment / content-only:" in out
    rows = [r for r in (line.split() for line in out.splitlines()) if len(r) == 5 and r[0] in ("content", "neighbor")]
    assert [r[0] for r in rows] == ["content", "neighbor"]
    assert all(0.0 <= float(r[1]) <= 1.0 for r in rows)
    for kind in ("content", "neighbor"):
        assert (tmp_path / "demo" / kind / "embeddings.npy").exists()
        assert (tmp_path / "demo" / kind / "metrics.csv").exists()


def test_build_and_describe_from_csv(capsys, tmp_path):
    pd.DataFrame({"list": ["w1", "w1", "w2", "w2"], "sku": ["a", "b", "b", "b"]}).to_csv(tmp_path / "m.csv", index=False)
    pd.DataFrame({"sku": ["a", "b"], "name": ["hat", "scarf"], "price": ["$3", "4"]}).to_csv(tmp_path / "i.csv", index=False)
    rc = main(["build", str(tmp_path / "m.csv"), str(tmp_path / "g"), "--collection", "list", "--item", "sku",
               "--items", str(tmp_path / "i.csv"), "--text", "name", "--numeric", "price"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "duplicate_edge                        1 rows" in out and "saved to" in out
    assert main(["describe", str(tmp_path / "g")]) == 0
    assert "('pin', 'in', 'board')                          3" in capsys.readouterr().out


def test_bad_input_is_one_line_exit_2(capsys, tmp_path):
    pd.DataFrame({"board": ["w1"], "pin_id": ["a"]}).to_csv(tmp_path / "m.csv", index=False)
    assert main(["build", str(tmp_path / "m.csv"), str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("boardgraph build: error: edge table has no column 'board_id'")
    assert main(["build", str(tmp_path / "missing.csv"), str(tmp_path / "g")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["describe", str(tmp_path)]) == 2
    assert "not a saved boardgraph graph" in capsys.readouterr().err


def test_module_entry_point_help():
    r = subprocess.run([sys.executable, "-m", "boardgraph", "build", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "examples:" in r.stdout and "--on-error" in r.stdout
