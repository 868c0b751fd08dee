import json
import math
from pathlib import Path

import pandas as pd
import pytest

from boardgraph.datasets._paths import DATA_ENV_VAR, find_data_dir
from boardgraph.datasets.steam import SteamData, load_steam_bundles, parse_price, parse_prices
from boardgraph.graph.errors import MalformedValueError


@pytest.fixture(scope="module")
def steam_root() -> Path:
    try:
        return find_data_dir("steam-bundles", required=("bundles.json",))
    except FileNotFoundError as exc:
        pytest.skip(f"Steam bundle data absent: {exc}")


@pytest.fixture(scope="module")
def steam(steam_root: Path) -> SteamData:
    return load_steam_bundles(steam_root, build_graph=False)


# --- prices -------------------------------------------------------------------------------------

def test_parse_price_values():
    assert parse_price("$8.99") == 8.99
    assert parse_price(" 8.99 ") == 8.99
    assert parse_price("$1,299.00") == 1299.0
    assert parse_price("$0") == 0.0
    assert parse_price(3) == 3.0
    assert math.isnan(parse_price(None)) and math.isnan(parse_price("")) \
        and math.isnan(parse_price(float("nan")))
    for bad in ("Free", "$1,2", "8.99$", "N/A", True):
        with pytest.raises(ValueError, match="not a price"):
            parse_price(bad)


def test_parse_prices_counts_unparseable_and_keeps_index():
    s = pd.Series(["$8.99", "Free", None, "$8.99", "", "$2"], index=list("abcdef"))
    prices, bad = parse_prices(s)
    assert prices.index.tolist() == list("abcdef")
    assert prices.tolist()[0] == 8.99 and prices["d"] == 8.99 and prices["f"] == 2.0
    assert prices[["b", "c", "e"]].isna().all()
    assert bad.tolist() == [False, True, False, False, False, False]


# --- a hand-made file: runs without the real data -----------------------------------------------

def _item(item_id, name, genre="Indie", price="$1.00"):
    return {"item_id": item_id, "item_name": name, "genre": genre, "discounted_price": price,
            "item_url": ""}


def _bundle(bundle_id, items, price="$10.00", final="$9.00"):
    return {"bundle_id": bundle_id, "bundle_name": f"Bundle {bundle_id}", "bundle_price": price,
            "bundle_final_price": final, "bundle_discount": "10%", "bundle_url": "", "items": items}


def _write_mini(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    bundles = [
        _bundle("1", [_item("100", "Game A"), _item("101", "Game A OST", genre="", price="Free"),
                      _item("100", "Game A")]),                    # duplicate listing
        _bundle("2", [_item("100", "Game A", price="$2.50"), _item("", "Cash card")]),
        _bundle("3", [_item("100", "Game A"), _item("", "Other card")], final="n/a"),
        _bundle("4", [_item("102", "Game B", price="$1,000.00")]),
    ]
    (root / "bundles.json").write_text(json.dumps(bundles))


def test_mini_tables_and_counts(tmp_path):
    _write_mini(tmp_path / "steam-bundles")
    data = load_steam_bundles(tmp_path / "steam-bundles", build_graph=False)
    assert data.memberships.columns.tolist() == ["board_id", "pin_id"]
    assert data.memberships["board_id"].tolist() == ["1", "1", "1", "2", "2", "3", "3", "4"]
    assert data.memberships["pin_id"].isna().tolist() == [False, False, False, False, True, False,
                                                          True, False]
    items = data.items
    assert items["pin_id"].tolist() == ["100", "101", "102"]
    assert items["name"].tolist() == ["Game A", "Game A OST", "Game B"]
    assert items["genre"].isna().tolist() == [False, True, False]
    assert items.loc[0, "price"] == 1.0  # first listing wins over bundle 2's $2.50
    assert math.isnan(items.loc[1, "price"])
    assert items.loc[2, "price"] == 1000.0
    assert data.bundles["bundle_price"].tolist() == [10.0] * 4
    assert data.bundles["bundle_final_price"].isna().tolist() == [False, False, True, False]
    assert data.counts == {"missing_item_id": 2, "unparseable_price": 2, "missing_price": 0,
                           "conflicting_item_price": 1, "twin_bundles": 1}
    # bundles 2 and 3 differ only by items without an id: identical as boards of the graph
    assert data.twins == [("2", "3")]


def test_mini_malformed_file_names_the_bundle(tmp_path):
    root = tmp_path / "steam-bundles"
    root.mkdir()
    (root / "bundles.json").write_text(json.dumps([_bundle("1", [{"item_id": "5"}])]))
    with pytest.raises(MalformedValueError, match="item of bundle 1.*item_name"):
        load_steam_bundles(root, build_graph=False)


def test_missing_folder_names_path_and_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'steam-bundles'}.*{DATA_ENV_VAR}"):
        load_steam_bundles(build_graph=False)


# --- the real data (skipped when ../shared/data is absent) ---------------------------------------

@pytest.mark.data
def test_bundles_and_memberships(steam):
    assert len(steam.bundles) == 615 == steam.bundles["board_id"].nunique()
    m = steam.memberships
    assert len(m) == 3525  # listings as in the file (README: "3,525 memberships")
    # README: "2,798 distinct items" counts the empty id as one item
    assert m["pin_id"].nunique(dropna=True) == 2797
    assert steam.counts["missing_item_id"] == 10
    assert m.loc[m["pin_id"].isna(), "board_id"].nunique() == 7
    clean = m.dropna().drop_duplicates()
    assert len(clean) == 3514  # 3,525 - 10 empty ids - 1 repeat (bundle 383, item 94620)
    assert m.dropna()[m.dropna().duplicated()].values.tolist() == [["383", "94620"]]
    per_item = clean.groupby("pin_id")["board_id"].nunique()
    assert (per_item >= 2).sum() == 571
    # README: "573 items belong to two or more bundles" counts listings, the empty id included
    raw_listings = m["pin_id"].fillna("").value_counts()
    assert (raw_listings >= 2).sum() == 573
    # about 80% of items occur in one bundle only
    assert (per_item == 1).sum() == 2226
    bundle_450 = steam.bundles.set_index("board_id").loc["450"]
    assert (bundle_450["bundle_name"], bundle_450["bundle_price"],
            bundle_450["bundle_final_price"]) == ("Dharker Studio 2015 Complete", 73.86, 66.46)


@pytest.mark.data
def test_items(steam):
    items = steam.items.set_index("pin_id")
    assert len(items) == 2797
    assert items.loc["326950", "name"] == "Sword of Asumi"
    assert items.loc["326950", "genre"] == "Adventure, Indie, RPG"
    assert items.loc["326950", "price"] == 8.99
    assert items["genre"].isna().sum() == 310
    assert items["price"].notna().all()
    assert steam.counts["unparseable_price"] == 0 and steam.counts["missing_price"] == 0
    # listed at different prices in different bundles; the first listing's price is kept
    assert steam.counts["conflicting_item_price"] == 5
    assert items.loc["353370", "price"] == 29.99  # Steam Controller: $29.99 x6, $49.99 x1
    assert items.loc["289070", "price"] == 59.99  # Civilization VI: $59.99 then $79.99


@pytest.mark.data
def test_twins(steam):
    # README: "5 bundles have identical item sets" counts the empty id as an item; without it
    # 166/264/265 (GTA V + a cash card without id) coincide, 1141 and 19 no longer do.
    assert steam.twins == [("166", "264", "265"), ("353", "354"), ("844", "845")]
    assert steam.counts["twin_bundles"] == 4


@pytest.mark.data
def test_graph(steam_root):
    data = load_steam_bundles(steam_root)
    g = data.graph
    assert g.num_nodes("pin") == 2797
    assert g.num_nodes("board") == 615
    assert g.num_edges(("pin", "in", "board")) == 3514
    assert g.index("pin", ["326950"]).tolist() == [0]
    assert data.report.counts == {"null_pin_id": 10, "duplicate_edge": 1}
    assert data.report.rows_in == 3525
    assert data.report.nodes == {"pin": 2797, "board": 615}
    table = g.features("pin").table
    assert table["price"].iloc[0] == 8.99
    assert table["genre"].isna().sum() == 310
    assert len(table) == 2797
    # bundles 1141 and 19 list only items without an id: their boards stay, with no pins
    board_deg = g.degree(("board", "has", "pin"))
    assert sorted(g.ids("board", (board_deg == 0).nonzero().flatten()).tolist()) == ["1141", "19"]
    assert g.features("board").table["bundle_name"].iloc[0] == "Dharker Studio 2015 Complete"
