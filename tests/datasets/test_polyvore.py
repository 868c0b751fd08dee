import json
from collections import Counter
from pathlib import Path

import pytest

from boardgraph.datasets.polyvore import (DATA_ENV_VAR, PolyvoreData, find_data_dir,
                                          load_polyvore)
from boardgraph.graph.errors import MalformedValueError


@pytest.fixture(scope="module")
def polyvore_root() -> Path:
    try:
        return find_data_dir("polyvore", required=("outfits_test.json", "outfits_valid.json",
                                                   "fitb_questions.json"))
    except FileNotFoundError as exc:
        pytest.skip(f"Polyvore data absent: {exc}")


@pytest.fixture(scope="module")
def polyvore(polyvore_root: Path) -> PolyvoreData:
    return load_polyvore(polyvore_root, build_graph=False)


# --- a hand-made folder: runs without the real data ---------------------------------------------

def _write_mini(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    test = {"10": {"upper": {"index": 1, "name": "red shirt"}, "bottom": {"index": 2, "name": ""},
                   "shoe": {"index": 4, "name": "boots"}},
            "20": {"upper": {"index": 1, "name": "red shirt"}, "bag": {"index": 3, "name": "tote"}}}
    valid = {"30": {"shoe": {"index": 2, "name": "sandals"}, "accessory": {"index": 5, "name": "ring"}},
             "40": {"upper": {"index": 1, "name": "coat"}}}
    fitb = [
        # outfit 10 in FITB has an extra item 10_3 that the outfit file dropped
        {"answers": ["10_1", "10_2", "10_3"],
         "questions": [["20_1", "10_1"],                   # context 10_2 ok, 10_3 not: partial
                       ["30_2", "40_1", "10_2"],           # same context split: partial
                       ["10_1", "20_3", "10_3"]]},         # answer 10_3 unknown: unresolved
        {"answers": ["30_2", "30_5"],
         "questions": [["10_4", "30_2"],                   # everything known: full
                       ["99_9", "30_5"]]},                 # candidate 99_9 unknown: unresolved
    ]
    (root / "outfits_test.json").write_text(json.dumps(test))
    (root / "outfits_valid.json").write_text(json.dumps(valid))
    (root / "fitb_questions.json").write_text(json.dumps(fitb))


def test_mini_tables_and_fitb_resolution(tmp_path):
    _write_mini(tmp_path / "polyvore")
    data = load_polyvore(tmp_path / "polyvore", build_graph=False)
    assert data.items["pin_id"].tolist() == ["10_1", "10_2", "10_4", "20_1", "20_3", "30_2",
                                             "30_5", "40_1"]
    assert data.items["name"].isna().tolist() == [False, True] + [False] * 6
    assert data.items["category"].astype(str).tolist()[:3] == ["upper", "bottom", "shoe"]
    assert data.items["split"].tolist() == ["test"] * 5 + ["valid"] * 3
    assert data.memberships.columns.tolist() == ["board_id", "pin_id", "split"]
    assert data.memberships["board_id"].tolist() == ["10", "10", "10", "20", "20", "30", "30", "40"]
    assert data.outfits["num_items"].tolist() == [3, 2, 2, 1]

    f = data.fitb
    assert f["status"].astype(str).tolist() == ["partial", "partial", "unresolved", "full",
                                                "unresolved"]
    assert data.fitb_counts() == {"full": 1, "partial": 2, "unresolved": 2}
    assert f["question_id"].tolist() == [0, 1, 2, 3, 4]
    assert f["record"].tolist() == [0, 0, 0, 1, 1]
    assert f["position"].tolist() == [0, 1, 2, 0, 1]
    assert f.loc[0, "context_ids"] == ("10_2", "10_3")
    assert f.loc[0, "resolved_context_ids"] == ("10_2",)
    assert f.loc[1, "candidate_ids"] == ("30_2", "40_1", "10_2")
    assert f["n_candidates"].tolist() == [2, 3, 3, 2, 2]
    assert f["n_candidates_resolved"].tolist() == [2, 3, 2, 2, 1]
    assert f["answer_resolved"].tolist() == [True, True, False, True, True]
    # outfits touched by FITB answers or candidates: 10, 20, 30, 40 (40_1 is a candidate), 99
    assert data.outfits["in_fitb"].tolist() == [True, True, True, True]
    assert data.train_outfits == []


def test_mini_train_outfits_exclude_candidate_outfits(tmp_path):
    root = tmp_path / "polyvore"
    _write_mini(root)
    fitb = [{"answers": ["10_1", "10_2"], "questions": [["20_1", "10_1"], ["10_4", "10_2"]]}]
    (root / "fitb_questions.json").write_text(json.dumps(fitb))
    data = load_polyvore(root, build_graph=False)
    assert data.train_outfits == ["30", "40"]
    assert data.train_items()["pin_id"].tolist() == ["30_2", "30_5", "40_1"]
    assert data.train_memberships()["board_id"].tolist() == ["30", "30", "40"]


def test_mini_malformed_fitb_names_the_record(tmp_path):
    root = tmp_path / "polyvore"
    _write_mini(root)
    bad = [{"answers": ["10_1"], "questions": [["20_1", "10_1"]]},
           {"answers": ["10_1"], "questions": [["20_1", "30_2"]]}]
    (root / "fitb_questions.json").write_text(json.dumps(bad))
    with pytest.raises(MalformedValueError, match="record 1.*'10_1'"):
        load_polyvore(root, build_graph=False)


def test_find_data_dir_errors_name_path_and_env_var(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nope'}.*{DATA_ENV_VAR}"):
        load_polyvore(tmp_path / "nope", build_graph=False)
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'polyvore'}.*{DATA_ENV_VAR}"):
        load_polyvore(build_graph=False)
    (tmp_path / "polyvore").mkdir()
    with pytest.raises(FileNotFoundError, match="lacks.*outfits_test.json"):
        load_polyvore(build_graph=False)
    _write_mini(tmp_path / "polyvore")
    assert load_polyvore(build_graph=False).root == tmp_path / "polyvore"


# --- the real data (skipped when ../shared/data is absent) ---------------------------------------

@pytest.mark.data
def test_outfits_and_items(polyvore):
    assert len(polyvore.outfits) == 3659
    assert polyvore.outfits["split"].value_counts().to_dict() == {"test": 2463, "valid": 1196}
    assert Counter(polyvore.outfits["num_items"]) == {3: 772, 4: 1669, 5: 1218}
    items = polyvore.items
    assert len(items) == 15082 == items["pin_id"].nunique()
    assert items["category"].value_counts().to_dict() == {
        "shoe": 3438, "bottom": 3205, "upper": 2962, "bag": 2942, "accessory": 2535}
    assert items["name"].isna().sum() == 140
    # README: "1,037 item texts are duplicates" = repeats of a (name, category) pair.
    assert items.duplicated(["name", "category"]).sum() == 1037
    assert items.duplicated(["name"]).sum() == 1067
    first = items.iloc[0]
    assert (first["pin_id"], first["name"], first["category"], first["outfit_id"], first["split"]) \
        == ("119704139_1", "dolce gabbana silk shirt", "upper", "119704139", "test")
    assert len(polyvore.memberships) == 15082
    assert polyvore.memberships["board_id"].nunique() == 3659
    assert (items["pin_id"].str.rsplit("_", n=1).str[0] == items["outfit_id"]).all()
    assert polyvore.memberships["pin_id"].tolist() == items["pin_id"].tolist()


@pytest.mark.data
def test_fitb_counts(polyvore):
    f = polyvore.fitb
    assert len(f) == 16768
    assert f["record"].nunique() == 2758
    # README: "973 questions resolve fully, 5,633 resolve with part of their context":
    # 5,633 counts every scorable question (the 973 full ones included); 4,660 are partial.
    assert polyvore.fitb_counts() == {"full": 973, "partial": 4660, "unresolved": 11135}
    assert (f["status"] != "unresolved").sum() == 5633
    # the true item is always among the candidates, listed last
    assert all(c[-1] == a for c, a in zip(f["candidate_ids"], f["answer_id"]))
    assert Counter(f["n_candidates"]) == {5: 16559, 3: 58, 2: 54, 4: 51, 1: 46}
    q0 = f.iloc[0]
    assert (q0["record"], q0["position"], q0["answer_id"], q0["n_context"],
            q0["n_context_resolved"], q0["status"]) == (0, 0, "209574442_1", 7, 3, "partial")
    assert q0["resolved_context_ids"] == ("209574442_2", "209574442_3", "209574442_4")
    scorable = f[f["status"] != "unresolved"]
    assert (scorable["n_context_resolved"] >= 1).all()
    assert (scorable["n_candidates_resolved"] == scorable["n_candidates"]).all()


@pytest.mark.data
def test_train_outfits_are_disjoint_from_fitb(polyvore):
    assert len(polyvore.train_outfits) == 1354
    assert len(polyvore.train_items()) == 5503
    assert len(polyvore.train_memberships()) == 5503
    fitb_ids = set()
    for col in ("candidate_ids", "context_ids"):
        for ids in polyvore.fitb[col]:
            fitb_ids.update(ids)
    fitb_ids.update(polyvore.fitb["answer_id"])
    assert fitb_ids.isdisjoint(set(polyvore.train_items()["pin_id"]))


@pytest.mark.data
def test_graph(polyvore_root):
    data = load_polyvore(polyvore_root)
    g = data.graph
    assert g.num_nodes("pin") == 15082
    assert g.num_nodes("board") == 3659
    assert g.num_edges(("pin", "in", "board")) == 15082
    assert g.index("pin", ["119704139_1", data.items["pin_id"].iloc[-1]]).tolist() == [0, 15081]
    table = g.features("pin").table
    assert len(table) == 15082
    assert table["name"].isna().sum() == 140
    assert sum(data.report.counts.values()) == 0
