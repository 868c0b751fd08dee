import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from boardgraph.cli import main


def test_demo_trains_evaluates_and_writes_the_report(capsys, tmp_path):
    rc = main(["demo", "--pins", "400", "--boards", "40", "--steps", "20", "--out-dir", str(tmp_path / "demo"),
               "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "pin                 400" in out and "connected components:" in out and "style (label)" in out
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("| "))
    table = lines[first:first + next(j for j, line in enumerate(lines[first:]) if not line.startswith("| "))]
    assert table[0] == ("| model | warm recall@10 | cold among new items recall@10 | cold among all pins recall@10 "
                        "| warm mrr | warm - content |")
    assert [r.split("|")[1].strip() for r in table[2:]] == ["random", "popularity", "itemknn", "ease", "pixie", "bpr",
                                                            "content", "neighbor", "neighbor_cf"]
    assert "sanity checks:" in out and "ok: random warm Recall@10" in out
    for r in table[2:]:
        warm = float(r.split("|")[2].split()[0])
        assert 0.0 <= warm <= 1.0
    assert "style purity@10" in out and "Style precision@10 (share of a board's top 10" in out
    assert "| model | warm label_precision@10 | cold among new items label_precision@10 |" in out
    head = out[out.index("Headline (warm queries"):].splitlines()
    assert head[1].strip().startswith("neighbor_cf warm style precision@10 ") and "versus popularity +" in head[1]
    assert 0.0 <= float(head[1].split()[4].rstrip(";")) <= 1.0
    assert head[2].strip().startswith("neighbor_cf warm Recall@10 ") and "(ceiling here: " in head[2]
    report = (tmp_path / "demo" / "report.md").read_text()
    assert "| neighbor |" in report and "Bias audit by category" in report
    assert "Label precision@10: share of a board's top 10 with the board's style" in report
    for png in ("recall_at_k.png", "similarity_hist.png", "degree_distribution.png"):
        assert (tmp_path / "demo" / png).stat().st_size > 1000
    for kind in ("content", "neighbor", "neighbor_cf"):
        assert (tmp_path / "demo" / kind / "checkpoint.pt").exists()
        assert (tmp_path / "demo" / kind / "metrics.csv").exists()
    # the demo's runs are ready for the inference commands
    assert main(["search", str(tmp_path / "demo" / "neighbor_cf"), "--pin", "p000000", "--k", "3"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:] if line.strip()]
    assert [r[0] for r in rows] == ["1", "2", "3"] and "p000000" not in [r[1] for r in rows]


def test_evaluate_on_a_built_graph_writes_the_report(capsys, tmp_path):
    from boardgraph.datasets import synthetic_lookbooks

    synthetic_lookbooks(300, 30, seed=0).save(tmp_path / "g")
    rc = main(["evaluate", "--graph", str(tmp_path / "g"), "--models", "random", "popularity", "itemknn", "ease",
               "pixie", "bpr", "content", "tfidf", "content+tfidf", "--steps", "5", "--seeds", "0", "1",
               "--audit-by", "category", "--out", str(tmp_path / "rep"), "--no-progress", "--lexical-weight", "0.3",
               "--label-match", "style"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "Label precision@10 (share of a board's top 10 with the board's style):" in out
    rows = {r.split("|")[1].strip(): r for r in out[out.index("Label precision@10 ("):].splitlines()
            if r.startswith("| ") and "model" not in r}
    assert 0.0 <= float(rows["random"].split("|")[2].split()[0]) <= 0.25   # chance is about 1/12 styles
    assert "| popularity |" in out and "| content |" in out and "report:" in out
    assert all(f"| {m} |" in out for m in ("itemknn", "ease", "pixie", "bpr"))
    assert "sanity checks:" in out and "ok: random cold among all pins Recall@10" in out
    assert "| tfidf |" in out and "| content+tfidf |" in out
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "2 seed(s) [0, 1]" in md and "Bias audit by category" in md
    assert f"--graph {tmp_path / 'g'}" in md and "--lexical-weight 0.3" in md   # the command is recorded
    assert "--label-match style" in md and "## Label precision@10" in md
    assert (tmp_path / "rep" / "runs" / "seed1" / "content" / "checkpoint.pt").exists()


@pytest.mark.parametrize("argv,needle", [
    (["--graph", "/nonexistent/graph"], "neither 'synthetic' nor an existing graph directory"),
    (["--audit-by", "shoe_size"], "no feature 'shoe_size'"),
    (["--label-match", "category"], "--label-match 'category': boards have no feature 'category' to match on"),
    (["--models", "neighbor+tfidf", "neighbor"], "list 'neighbor' before it"),
    (["--models", "tfidf", "--lexical-weight", "1.5"], "--lexical-weight must be in [0, 1], got 1.5"),
])
def test_evaluate_bad_input_is_one_line_exit_2(capsys, tmp_path, argv, needle):
    assert main(["evaluate", *argv, "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err


def test_evaluate_unknown_model_is_refused_by_argparse(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "--models", "gnn9000", "--out", str(tmp_path)])
    assert e.value.code == 2 and "invalid choice: 'gnn9000'" in capsys.readouterr().err


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


# -- inference commands on a tiny trained run -----------------------------------------------------
@pytest.fixture
def run_dir(tiny_run_dir, tmp_path) -> Path:
    """A private copy of the run (checkpoint and config only): commands write into it."""
    out = tmp_path / "run"
    out.mkdir()
    for f in ("checkpoint.pt", "config.yaml"):
        shutil.copy2(tiny_run_dir / f, out / f)
    return out


def _one_line_error(capsys, prefix: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and err.startswith(prefix), err
    return err


def _rows(out: str) -> list[list[str]]:
    """Data rows of a printed results table (lines starting with a rank)."""
    return [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]


def test_embed_writes_the_run_embeddings(capsys, run_dir):
    from boardgraph.inference.embed import load_embeddings
    from boardgraph.inference.run import load_run

    assert main(["embed", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"embedded 300 pins (64-d) to {run_dir / 'embeddings.npy'}")
    emb = load_embeddings(run_dir / "embeddings.npy")
    run = load_run(run_dir)
    with torch.no_grad():
        want = run.encoder(run.builder(run.graph.features("pin"), torch.arange(300))).embedding
    torch.testing.assert_close(emb, want, atol=1e-5, rtol=0)
    assert main(["embed", str(run_dir), "--dim", "16", "--out", str(run_dir / "e16.npy")]) == 0
    assert "(16-d)" in capsys.readouterr().out
    e16 = load_embeddings(run_dir / "e16.npy")
    torch.testing.assert_close(e16, torch.nn.functional.normalize(want[:, :16], dim=1), atol=1e-5, rtol=0)


def test_embed_errors(capsys, run_dir, tmp_path):
    assert main(["embed", str(run_dir), "--dim", "999"]) == 2
    _one_line_error(capsys, "boardgraph embed: error: embedding width 999 is not in 1..64")
    assert main(["embed", str(tmp_path / "nope")]) == 2
    _one_line_error(capsys, "boardgraph embed: error: no run directory")
    (tmp_path / "untrained").mkdir()
    assert main(["embed", str(tmp_path / "untrained")]) == 2
    _one_line_error(capsys, "boardgraph embed: error: run directory")


def test_index_embeds_first_and_saves_filterable_index(capsys, run_dir):
    from boardgraph.inference.index import EmbeddingIndex

    assert not (run_dir / "embeddings.npy").exists()
    assert main(["index", str(run_dir), "--kind", "hnsw"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("hnsw index of 300 pins (64-d), filter columns ['brand', 'category', 'price'], saved to")
    assert (run_dir / "embeddings.npy").exists()
    index = EmbeddingIndex.load(run_dir / "index")
    assert index.kind == "hnsw" and len(index) == 300 and index.ids[0] == "p000000"
    assert list(index.metadata.columns) == ["brand", "category", "price"]
    assert main(["index", str(run_dir), "--kind", "flat", "--out", str(run_dir / "flat"), "--dim", "32"]) == 0
    capsys.readouterr()
    assert EmbeddingIndex.load(run_dir / "flat").dim == 32


def test_index_target_recall_tunes_and_saves_the_setting(capsys, run_dir, tmp_path):
    from boardgraph.inference.index import EmbeddingIndex

    out_dir = tmp_path / "tuned"
    assert main(["index", str(run_dir), "--kind", "ivf", "--target-recall", "0.99", "--out", str(out_dir)]) == 0
    cap = capsys.readouterr()
    out = cap.out
    assert "warning" not in cap.err
    line = next(x for x in out.splitlines() if x.startswith("nprobe = "))
    value = int(line.split()[2].rstrip(":"))
    assert "reached: target 0.99" in line and float(line.split("Recall@10 ")[1].split()[0]) >= 0.99
    assert out.splitlines()[0].split() == ["value", "recall", "queries_per_s", "speedup"]
    index = EmbeddingIndex.load(out_dir)
    assert index.config.nprobe == value and value <= index.config.nlist
    assert main(["index", str(run_dir), "--target-recall", "0.9", "--out", str(tmp_path / "flat")]) == 0
    assert "flat index: exact search, nothing to tune" in capsys.readouterr().out
    assert main(["index", str(run_dir), "--kind", "hnsw", "--target-recall", "1.5", "--out",
                 str(tmp_path / "bad")]) == 2
    _one_line_error(capsys, "boardgraph index: error: target_recall must be in (0, 1], got 1.5")
    assert not (tmp_path / "bad").exists()


def test_index_target_out_of_reach_says_so_and_names_the_fix(capsys, run_dir, tmp_path, monkeypatch):
    from boardgraph.inference.index import EmbeddingIndex

    tune = EmbeddingIndex.tune
    monkeypatch.setattr(EmbeddingIndex, "tune", lambda self, **kw: tune(self, max_value=1, **kw))  # nprobe 1 only
    assert main(["index", str(run_dir), "--kind", "ivf", "--target-recall", "1.0", "--out", str(tmp_path / "i")]) == 0
    cap = capsys.readouterr()
    assert "(NOT reached: target 1.0)" in cap.out and "saved to" in cap.out
    assert cap.err.startswith("boardgraph index: warning: no nprobe up to 1 reaches Recall@10 1.0 on held-out rows")
    assert cap.err.count("\n") == 1 and "fewer nlist cells" in cap.err
    assert EmbeddingIndex.load(tmp_path / "i").config.nprobe == 1


def test_index_errors(capsys, run_dir, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["index", str(run_dir), "--kind", "lsh"])
    assert e.value.code == 2 and "invalid choice: 'lsh'" in capsys.readouterr().err
    (tmp_path / "untrained").mkdir()
    assert main(["index", str(tmp_path / "untrained")]) == 2
    _one_line_error(capsys, "boardgraph index: error: run directory")


def test_index_never_deletes_what_is_at_out(capsys, run_dir, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("x")
    for extra in ([], ["--overwrite"]):
        assert main(["index", str(run_dir), "--out", str(precious), *extra]) == 2
        _one_line_error(capsys, "boardgraph index: error:")
        assert sorted(p.name for p in precious.iterdir()) == ["thesis.txt"]
    out = tmp_path / "idx"
    assert main(["index", str(run_dir), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["index", str(run_dir), "--out", str(out)]) == 2          # a saved index: only with --overwrite
    assert "--overwrite" in _one_line_error(capsys, "boardgraph index: error:")
    assert main(["index", str(run_dir), "--out", str(out), "--kind", "hnsw", "--overwrite"]) == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no leftovers


def test_search_by_pin_text_and_image_match_the_api(capsys, run_dir, tmp_path):
    from PIL import Image

    from boardgraph.inference.search import PinSearch

    api = PinSearch.from_run(run_dir)
    assert main(["search", str(run_dir), "--pin", "p000005", "--k", "3"]) == 0
    rows = _rows(capsys.readouterr().out)
    want = api.similar("p000005", k=3)
    assert [r[1] for r in rows] == want.pin_id.tolist() and [r[0] for r in rows] == ["1", "2", "3"]
    assert [float(r[2]) for r in rows] == pytest.approx(want.score.tolist(), abs=1e-4)
    assert main(["search", str(run_dir), "--text", "rust linen dress", "--k", "4", "--filter", "category=dress",
                 "--filter", "category=skirt"]) == 0
    out = capsys.readouterr().out
    want = api.search_by_text("rust linen dress", k=4, filter={"category": ["dress", "skirt"]})
    assert [r[1] for r in _rows(out)] == want.pin_id.tolist() and set(want.category) <= {"dress", "skirt"}
    img = api.run.graph.features("pin").tensors["image"][7]
    Image.fromarray(img.permute(1, 2, 0).numpy()).save(tmp_path / "q.png")
    assert main(["search", str(run_dir), "--image", str(tmp_path / "q.png"), "--k", "2",
                 "--filter", "price=" + str(api.run.graph.features("pin").table.price[3])]) == 0
    rows = _rows(capsys.readouterr().out)
    assert [r[1] for r in rows] == ["p000003"]  # the only pin at that price


def test_search_errors(capsys, run_dir, tmp_path):
    cases = [(["--pin", "nope"], "unknown pin id 'nope'"),
             (["--text", " "], "the text query ' ' is empty"),
             (["--image", str(tmp_path / "missing.png")], "new pin 0, column 'image': cannot read image"),
             (["--pin", "p000005", "--filter", "category"], "--filter 'category' is not COLUMN=VALUE"),
             (["--pin", "p000005", "--filter", "colour=red"], "unknown filter column 'colour'"),
             (["--pin", "p000005", "--filter", "price=cheap"], "--filter price='cheap': column 'price' is numeric"),
             (["--pin", "p000005", "--k", "0"], "k must be an int >= 1")]
    for extra, msg in cases:
        assert main(["search", str(run_dir), *extra]) == 2, extra
        _one_line_error(capsys, f"boardgraph search: error: {msg}")
    with pytest.raises(SystemExit) as e:
        main(["search", str(run_dir), "--pin", "a", "--text", "b"])
    assert e.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_place_suggests_boards_and_pins(capsys, run_dir):
    from boardgraph.inference.search import PinSearch

    assert main(["place", str(run_dir), "--text", "navy silk blouse", "--meta", "brand=Kestrel", "--meta", "price=49",
                 "--k-boards", "3", "--k-pins", "2"]) == 0
    out = capsys.readouterr().out
    boards_part, pins_part = out.split("nearest pins:")
    assert boards_part.startswith("suggested boards:")
    want = PinSearch.from_run(run_dir).place_new_pin(text="navy silk blouse",
                                                     metadata={"brand": "Kestrel", "price": 49}, k_boards=3, k_pins=2)
    assert [r[1] for r in _rows(boards_part)] == want.boards.board_id.tolist()
    assert [int(r[3]) for r in _rows(boards_part)] == want.boards["size"].tolist()
    assert [r[1] for r in _rows(pins_part)] == want.pins.pin_id.tolist()


def test_hybrid_search_and_place_match_the_api(capsys, run_dir):
    from boardgraph.inference.search import PinSearch

    api = PinSearch.from_run(run_dir, lexical_weight=0.5)
    assert main(["search", str(run_dir), "--text", "rust linen dress", "--k", "4", "--lexical-weight", "0.5"]) == 0
    rows = _rows(capsys.readouterr().out)
    want = api.search_by_text("rust linen dress", k=4)
    assert [r[1] for r in rows] == want.pin_id.tolist()
    assert [float(r[2]) for r in rows] == pytest.approx(want.score.tolist(), abs=1e-4)
    assert main(["place", str(run_dir), "--text", "navy silk blouse", "--k-boards", "2", "--k-pins", "2",
                 "--lexical-weight", "0.5"]) == 0
    boards_part, pins_part = capsys.readouterr().out.split("nearest pins:")
    want = api.place_new_pin(text="navy silk blouse", k_boards=2, k_pins=2)
    assert [r[1] for r in _rows(boards_part)] == want.boards.board_id.tolist()
    assert [r[1] for r in _rows(pins_part)] == want.pins.pin_id.tolist()
    assert main(["search", str(run_dir), "--text", "a", "--lexical-weight", "2"]) == 2
    _one_line_error(capsys, "boardgraph search: error: lexical_weight must be in [0, 1], got 2.0")
    # a saved hybrid index: RUN/index then serves search at its own weight
    assert main(["index", str(run_dir), "--lexical-weight", "0.5"]) == 0
    assert "-d), filter columns" in capsys.readouterr().out and (run_dir / "index" / "lexical.json").exists()
    assert main(["search", str(run_dir), "--text", "rust linen dress", "--k", "4"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert [r[1] for r in rows] == api.search_by_text("rust linen dress", k=4).pin_id.tolist()


def test_evaluate_model_names_come_from_the_registry(capsys):
    from boardgraph.cli.evaluate import model_choices
    from boardgraph.evaluation.harness import check_models
    from boardgraph.models import MODEL_KINDS

    choices = model_choices()
    assert choices[:len(MODEL_KINDS)] == list(MODEL_KINDS.names())
    assert {"neighbor+tfidf", "pinsage+tfidf", "minilm+tfidf"} <= set(choices)
    assert not {"tfidf+tfidf", "random+tfidf", "ease+tfidf"} & set(choices)
    assert main(["models"]) == 0
    listed = [ln.split()[0] for ln in capsys.readouterr().out.splitlines()]
    assert listed == list(MODEL_KINDS.names())
    for m in choices:
        if m.endswith("+tfidf"):
            assert check_models([m[:-len("+tfidf")], m])   # accepted by the harness
    with pytest.raises(ValueError, match="unknown model"):
        check_models(["random", "random+tfidf"])


def test_place_errors(capsys, run_dir):
    cases = [([], "give the new pin's content"),
             (["--text", ""], "new pin(s) [0] have nothing the model can use"),
             (["--text", "a", "--meta", "colour=red"], "new pins have column(s) ['colour']"),
             (["--text", "a", "--meta", "price=cheap"], "numeric column 'price' of new pin 0 holds 'cheap'"),
             (["--text", "a", "--meta", "brand"], "--meta 'brand' is not COLUMN=VALUE")]
    for extra, msg in cases:
        assert main(["place", str(run_dir), *extra]) == 2, extra
        _one_line_error(capsys, f"boardgraph place: error: {msg}")


def test_export_onnx_prints_the_parity_check(capsys, run_dir, tmp_path):
    from boardgraph.encoders import OnnxPinEncoder
    from boardgraph.inference.run import load_run

    assert main(["export-onnx", str(run_dir), str(tmp_path / "enc.onnx")]) == 0
    out = capsys.readouterr().out
    assert f"exported the image/text/metadata encoder (64-d) to {tmp_path / 'enc.onnx'}" in out
    parity = [line for line in out.splitlines() if line.startswith("parity")]
    assert len(parity) == 2 and all(line.endswith("ok (atol 0.0001)") for line in parity)
    assert all(float(line.split("= ")[1].split()[0]) <= 1e-4 for line in parity)
    run = load_run(run_dir)
    x = run.builder(run.graph.features("pin"), torch.arange(20, 25))
    with torch.no_grad():
        want = run.encoder(x).embedding
    np.testing.assert_allclose(OnnxPinEncoder(tmp_path / "enc.onnx")(x).numpy(), want.numpy(), atol=1e-4)
    assert main(["export-onnx", str(run_dir), str(tmp_path / "no" / "enc.onnx")]) == 2
    _one_line_error(capsys, "boardgraph export-onnx: error: the folder")
    assert main(["export-onnx", str(tmp_path / "nope"), str(tmp_path / "enc2.onnx")]) == 2
    _one_line_error(capsys, "boardgraph export-onnx: error: no run directory")


@pytest.mark.parametrize("command", ["embed", "index", "search", "place", "export-onnx"])
def test_inference_commands_have_help_with_examples(capsys, command):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "examples:" in out and f"boardgraph {command} " in out


def test_module_entry_point_help_of_an_inference_command():
    r = subprocess.run([sys.executable, "-m", "boardgraph", "place", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--k-boards" in r.stdout and "examples:" in r.stdout


@pytest.mark.parametrize("argv,needle", [
    (["train", "--config", "{tmp}/missing.yaml"], "does not exist"),
    (["train", "--config", "{tmp}/bad.yaml"], "unknown key(s) ['stpes']"),
    (["demo", "--steps", "0", "--out-dir", "{tmp}/d"], "run.steps >= 1"),
])
def test_train_and_demo_bad_input_is_one_line_exit_2(capsys, tmp_path, argv, needle):
    (tmp_path / "bad.yaml").write_text("run:\n  stpes: 10\n")
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err


def test_build_out_of_core_and_describe(capsys, tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"board_id": rng.integers(0, 50, 5000), "pin_id": rng.integers(0, 900, 5000)})
    (tmp_path / "shards").mkdir()
    for i in range(3):
        df.iloc[i::3].to_parquet(tmp_path / "shards" / f"p{i}.parquet", index=False)
    assert main(["build", str(tmp_path / "shards"), str(tmp_path / "g"), "--method", "out-of-core",
                 "--max-memory", "1G"]) == 0
    out = capsys.readouterr().out
    assert "built out of core: method='out-of-core', memory limit 1.0 GB" in out and "saved to" in out
    assert main(["build", str(tmp_path / "shards"), str(tmp_path / "g2"), "--max-memory", "1G"]) == 0
    assert "built in memory: estimated peak" in capsys.readouterr().out
    assert main(["describe", str(tmp_path / "g")]) == 0
    a = capsys.readouterr().out
    assert main(["describe", str(tmp_path / "g2")]) == 0
    assert a == capsys.readouterr().out and "pin" in a
    with pytest.raises(SystemExit) as e:
        main(["build", str(tmp_path / "shards"), str(tmp_path / "g3"), "--max-memory", "lots"])
    assert e.value.code == 2 and "memory size 'lots' is not a size" in capsys.readouterr().err


def test_index_takes_a_run_or_shards_not_both(capsys, tmp_path):
    assert main(["index"]) == 2
    assert "give a run directory, or --from-shards DIR" in capsys.readouterr().err
    assert main(["index", str(tmp_path), "--from-shards", str(tmp_path)]) == 2
    capsys.readouterr()
    assert main(["index", "--from-shards", str(tmp_path)]) == 2
    assert "--from-shards needs --out DIR" in capsys.readouterr().err
    assert main(["index", "--from-shards", str(tmp_path), "--out", str(tmp_path / "i")]) == 2
    assert "is not a folder of embedding shards" in capsys.readouterr().err
