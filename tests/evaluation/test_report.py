import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import boardgraph.evaluation.report as report_mod
from boardgraph.evaluation.splits import DataSplit
from boardgraph.graph import from_collections
from boardgraph.evaluation.report import (ReportError, markdown_table, separation_table, similarity_samples,
                               write_report)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _table() -> pd.DataFrame:
    return pd.DataFrame({"warm_recall@10": [0.4123, 0.5561], "cold_recall@10": [0.3847, 0.4902],
                         "warm_mrr": [0.2011, 0.2675]},
                        index=pd.Index(["content-only", "neighbor"], name="model"))


def _hand_split():
    # board b0: p0, p1 (train), p2 (held out, warm), p5 (cold); board b1: p3 (train), p4 (held out)
    df = pd.DataFrame({"board_id": ["b0", "b0", "b0", "b1", "b1", "b0", "b1"],
                       "pin_id": ["p0", "p1", "p2", "p3", "p4", "p5", "p2"]})
    g, _ = from_collections(df)
    P = lambda *ids: g.index("pin", list(ids))
    B = lambda *ids: g.index("board", list(ids))
    held = (P("p2", "p4"), B("b0", "b1"))
    cold_edges = (P("p5"), B("b0"))
    eids = torch.cat([g.edge_ids("in", *held), g.edge_ids("in", *cold_edges)])
    split = DataSplit(graph=g, train_graph=g.remove_edges("in", eids=eids), heldout=held,
                      cold_pins=P("p5"), cold_edges=cold_edges)
    emb = torch.zeros(6, 2)
    emb[P("p0", "p1")] = torch.tensor([1.0, 0.0])
    emb[P("p3")] = torch.tensor([0.0, 2.0])
    emb[P("p2")] = torch.tensor([0.6, 0.8])
    emb[P("p4")] = torch.tensor([0.0, 1.0])
    emb[P("p5")] = torch.tensor([0.8, 0.6])
    return g, split, emb, P


def _full_report(out, g, title="Board completion"):
    curves = {"content-only": {"warm": {1: 0.1, 10: 0.41, 50: 0.7}, "cold": {1: 0.08, 10: 0.38, 50: 0.66}},
              "neighbor": {"warm": {1: 0.2, 10: 0.56, 50: 0.8}, "cold": {1: 0.1, 10: 0.49, 50: 0.7}}}
    rng = np.random.default_rng(0)
    sims = {"content-only": (rng.normal(0.5, 0.1, 200), rng.normal(0.1, 0.1, 300)),
            "neighbor": (torch.tensor(rng.normal(0.6, 0.1, 200)), rng.normal(0.0, 0.1, 300))}
    fitb = pd.DataFrame({"model": ["content-only", "neighbor"], "strict": [0.31, 0.35],
                         "n_strict": [973, 973]})
    return write_report(out, _table(), title=title, recall_curves=curves, similarity=sims, graph=g,
                        sections={"Fill in the blank": fitb, "Bias audit": "No slice flagged."},
                        notes="One seed, synthetic data.")


def test_report_files_table_and_figures(tmp_path):
    g, _, _, _ = _hand_split()
    path = _full_report(tmp_path / "rep", g)
    assert path == tmp_path / "rep" / "report.md"
    md = path.read_text()
    assert md.startswith("# Board completion\n\nOne seed, synthetic data.")
    for model, row in _table().iterrows():
        line = next(li for li in md.splitlines() if li.startswith(f"| {model} |"))
        for v in row:
            assert f"{v:.3f}" in line
    assert "| model | warm_recall@10 | cold_recall@10 | warm_mrr |" in md
    for name in ("recall_at_k.png", "similarity_hist.png", "degree_distribution.png"):
        assert f"]({name})" in md                                     # relative references
        f = tmp_path / "rep" / name
        assert f.read_bytes()[:8] == PNG_MAGIC
        with Image.open(f) as im:
            im.verify()
        with Image.open(f) as im:
            assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100
    assert "## Fill in the blank" in md and "| content-only | 0.310 | 973 |" in md
    assert "## Bias audit\n\nNo slice flagged." in md
    assert "6 pins, 2 boards, 7 memberships" in md
    # nothing but the report is left in the folder (the temporary folder is gone)
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == [
        "degree_distribution.png", "recall_at_k.png", "report.html", "report.md", "similarity_hist.png"]


def test_report_replaces_atomically(tmp_path, monkeypatch):
    g, _, _, _ = _hand_split()
    out = tmp_path / "rep"
    write_report(out, _table(), title="First", graph=g,
                 recall_curves={"m": {"warm": {1: 0.2, 10: 0.5}, "cold": {1: 0.1, 10: 0.4}}})
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def boom(*_args, **_kwargs):
        raise RuntimeError("plotting failed")

    monkeypatch.setattr(report_mod, "_plot_degrees", boom)   # the last figure fails
    with pytest.raises(RuntimeError, match="plotting failed"):
        _full_report(out, g, title="Second")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before   # untouched, no temp left
    monkeypatch.undo()
    # a successful rewrite replaces report.md; figures it no longer draws are removed
    write_report(out, _table(), title="Third")
    assert (out / "report.md").read_text().startswith("# Third\n")
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.md"]


def test_report_rejects_bad_inputs_before_writing(tmp_path):
    with pytest.raises(ReportError, match="positive int k"):
        write_report(tmp_path / "r", _table(), title="t", recall_curves={"m": {"warm": {0: 0.1}}})
    with pytest.raises(ReportError, match="non-empty finite"):
        write_report(tmp_path / "r", _table(), title="t", similarity={"m": (np.array([]), np.ones(3))})
    with pytest.raises(TypeError, match="DataFrame"):
        write_report(tmp_path / "r", {"m": 1.0}, title="t")  # type: ignore[arg-type]
    assert not (tmp_path / "r").exists()


def test_markdown_table_and_separation():
    df = pd.DataFrame({("warm", "r@10"): [0.5, float("nan")], ("cold", "n"): [3, 4],
                       ("x", "note"): ["a|b", None]}, index=["m1", "m2"])
    md = markdown_table(df, ".2f").splitlines()
    assert md[0] == "| model | warm / r@10 | cold / n | x / note |"
    assert md[2] == "| m1 | 0.50 | 3 | a\\|b |" and md[3] == "| m2 | – | 4 | – |"
    plain = markdown_table(pd.DataFrame({"a": [1.0]}))
    assert plain.splitlines()[0] == "| a |" and plain.splitlines()[2] == "| 1.000 |"
    sep = separation_table({"m": (np.array([0.9, 0.5]), np.array([0.5, 0.1]))})
    # pairs: 0.9 beats both, 0.5 ties 0.5 and beats 0.1 -> (2 + 1.5) / 4
    assert sep.loc["m", "auc"] == pytest.approx(0.875)
    assert (sep.loc["m", "n_pos"], sep.loc["m", "mean_neg"]) == (2, pytest.approx(0.3))


def test_similarity_samples_hand_example():
    g, split, emb, _ = _hand_split()
    pos, neg = similarity_samples(emb, split, n_neg=40, seed=0)
    # b0's training pins p0, p1 lie on x; b1's are p3 (y) and p2 (0.6, 0.8): centroid (0.6, 1.8)/n
    n1 = np.sqrt(0.6 ** 2 + 1.8 ** 2)
    # held-out p2 vs b0: 0.6; p4 (y) vs b1: 1.8 / n1; cold p5 (0.8, 0.6) vs b0: 0.8
    assert pos.dtype == np.float64 and pos == pytest.approx([0.6, 1.8 / n1, 0.8], abs=1e-6)
    assert neg.shape == (40,)
    # non-members of b0: p3, p4 (y) -> 0; of b1: p0, p1 (x) -> 0.6 / n1, p5 -> (0.48 + 1.08) / n1
    possible = np.array([0.0, 0.6 / n1, 1.56 / n1])
    assert np.abs(neg[:, None] - possible[None, :]).min(axis=1).max() < 1e-6
    assert len(set(np.round(neg, 5))) == 3                      # every kind of pair was drawn
    _, neg2 = similarity_samples(emb, split, n_neg=40, seed=0)
    assert np.array_equal(neg, neg2)
    assert similarity_samples(emb, split, seed=1)[1].shape == (3,)   # default: as many as positives
    with pytest.raises(ReportError, match="N_pins"):
        similarity_samples(emb[:-1], split)
    empty = torch.zeros(0, dtype=torch.long)
    bare = DataSplit(graph=g, train_graph=g, heldout=(empty, empty), cold_pins=empty,
                     cold_edges=(empty, empty))
    with pytest.raises(ReportError, match="no held-out membership"):
        similarity_samples(emb, bare)
