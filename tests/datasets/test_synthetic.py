import hashlib

import numpy as np
import pandas as pd
import pytest
import torch

from boardgraph.datasets.synthetic import (BRAND_FAMILIES, CATEGORIES, MATERIALS, PALETTES, PRESETS, LookbookTables,
                                           make_lookbook_tables, synthetic_lookbooks)

COLOUR_PALETTE = {word: name for name, colours in PALETTES.items() for word, _ in colours}
BRAND_FAMILY = {brand: f for f, brands in enumerate(BRAND_FAMILIES) for brand in brands}


@pytest.fixture(scope="module")
def tables() -> LookbookTables:
    return make_lookbook_tables(2000, 200, seed=0)


def _assert_tables_equal(a: LookbookTables, b: LookbookTables) -> None:
    for name in ("pins", "boards", "memberships", "styles"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))


def _title_palette(titles: pd.Series) -> np.ndarray:
    return np.array([next(COLOUR_PALETTE[w] for w in t.split() if w in COLOUR_PALETTE) for t in titles])


def _majority_accuracy(key: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of predicting ``y`` by the most common ``y`` of each ``key`` value (in-sample)."""
    counts = pd.crosstab(pd.Series(key, name="key"), pd.Series(y, name="y"))
    return float(counts.max(axis=1).sum() / len(y))


# --- determinism ---------------------------------------------------------------------------------

def test_same_seed_gives_identical_tables_and_images():
    a = make_lookbook_tables(600, 60, seed=7)
    b = make_lookbook_tables(600, 60, seed=7)
    _assert_tables_equal(a, b)
    assert torch.equal(a.images, b.images)


def test_different_seed_differs():
    a = make_lookbook_tables(600, 60, seed=7)
    b = make_lookbook_tables(600, 60, seed=8)
    assert not a.pins["title"].equals(b.pins["title"])
    assert not a.memberships.equals(b.memberships)
    assert not torch.equal(a.images, b.images)


def test_tables_do_not_depend_on_image_size():
    a = make_lookbook_tables(300, 30, seed=3, image_size=16)
    b = make_lookbook_tables(300, 30, seed=3, image_size=40)
    _assert_tables_equal(a, b)
    assert a.images.shape == (300, 3, 16, 16) and b.images.shape == (300, 3, 40, 40)


# --- shapes, dtypes, ranges ----------------------------------------------------------------------

def test_pins_table_schema_and_ranges(tables: LookbookTables):
    pins = tables.pins
    assert list(pins.columns) == ["pin_id", "title", "description", "brand", "category", "price", "style"]
    assert len(pins) == 2000 and pins["pin_id"].is_unique
    assert pins["pin_id"].iloc[123] == "p000123"
    assert pins["price"].dtype == np.float64 and pins["style"].dtype == np.int64
    assert (pins["price"] >= 4.99).all() and (pins["price"] < 10_000).all()
    assert set(pins["category"]) == set(CATEGORIES)
    assert set(pins["brand"]) <= set(BRAND_FAMILY)
    assert (pins["title"].str.len() > 0).all() and pins["description"].str.contains("Pairs well with").all()
    # styles come in equal shares: 2000 = 12 * 166 + 8
    counts = pins["style"].value_counts()
    assert sorted(counts.index) == list(range(12)) and set(counts) == {166, 167}


def test_boards_and_memberships_schema(tables: LookbookTables):
    boards, mem = tables.boards, tables.memberships
    assert list(boards.columns) == ["board_id", "board_title", "style"]
    assert boards["board_id"].iloc[42] == "b0042" and boards["board_id"].is_unique
    assert boards["style"].between(0, 11).all() and set(boards["style"].value_counts()) == {16, 17}
    assert list(mem.columns) == ["board_id", "pin_id", "position"] and mem["position"].dtype == np.int64
    assert not mem.duplicated(["board_id", "pin_id"]).any()
    assert mem["board_id"].isin(boards["board_id"]).all() and mem["pin_id"].isin(tables.pins["pin_id"]).all()
    sizes = mem.groupby("board_id").size()
    assert len(sizes) == 200 and sizes.between(5, 30).all()
    # positions are 0..size-1 within each board, rows sorted by board then position
    expected = mem.groupby("board_id").cumcount()
    assert (mem["position"].to_numpy() == expected.to_numpy()).all()


def test_images_shape_dtype_and_alignment(tables: LookbookTables):
    img = tables.images
    assert img.shape == (2000, 3, 32, 32) and img.dtype == torch.uint8 and img.device.type == "cpu"
    assert img.float().std() > 30  # not blank
    # the image of pin i differs from that of pin i+1 (no accidental repeats)
    assert not any(torch.equal(img[i], img[i + 1]) for i in range(50))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="n_styles"):
        make_lookbook_tables(100, 10, n_styles=40)
    with pytest.raises(ValueError, match="n_pins"):
        make_lookbook_tables(5, 10, n_styles=12)
    with pytest.raises(ValueError, match="board_size"):
        make_lookbook_tables(100, 10, board_size=(10, 5))
    with pytest.raises(ValueError, match="noise"):
        make_lookbook_tables(100, 10, noise=1.0)


# --- graph structure -----------------------------------------------------------------------------

def test_every_pin_is_boarded_with_a_heavy_tail(tables: LookbookTables):
    assert tables.n_unboarded == 0
    degree = tables.memberships["pin_id"].value_counts()
    # home slots give every pin one board; popularity (log-normal) slots give the tail
    assert 0.4 < (degree == 1).mean() < 0.7
    assert degree.max() >= 8


def test_unboarded_pins_are_counted_when_slots_are_scarce():
    t = make_lookbook_tables(500, 5, seed=1, board_size=(5, 5))
    assert len(t.memberships) == 25
    assert t.n_unboarded == 500 - t.memberships["pin_id"].nunique() >= 475


def test_board_purity_is_in_band(tables: LookbookTables):
    mem = tables.memberships.merge(tables.pins[["pin_id", "style"]], on="pin_id")
    mem = mem.merge(tables.boards[["board_id", "style"]], on="board_id", suffixes=("_pin", "_board"))
    purity = (mem["style_pin"] == mem["style_board"]).mean()
    assert 0.84 < purity < 0.92  # purity=0.88, ~3700 memberships: sd ~0.005

    pure = make_lookbook_tables(600, 60, seed=2, purity=1.0)
    mem = pure.memberships.merge(pure.pins[["pin_id", "style"]], on="pin_id").merge(
        pure.boards[["board_id", "style"]], on="board_id", suffixes=("_pin", "_board"))
    assert (mem["style_pin"] == mem["style_board"]).all()


# --- each modality is only partially informative ------------------------------------------------

def test_style_design_needs_two_modalities(tables: LookbookTables):
    st = tables.styles
    image_key = st["palette"] + "/" + st["pattern"]
    text_key = st["palette"] + "/" + st["material"]
    meta_key = st["brand_family"].astype(str)
    for key in (image_key, text_key, meta_key):
        assert set(key.value_counts()) == {2}  # every style shares each single-modality key with one other
    for a, b in ((image_key, text_key), (image_key, meta_key), (text_key, meta_key)):
        assert (a + "|" + b).is_unique  # any two modalities together identify the style
    # every palette is shared by four styles
    assert set(st["palette"].value_counts()) == {4}


def test_title_colour_word_matches_style_palette_in_band(tables: LookbookTables):
    style_palette = tables.styles["palette"].to_numpy()[tables.pins["style"].to_numpy()]
    match = (_title_palette(tables.pins["title"]) == style_palette).mean()
    assert 0.81 < match < 0.89  # noise=0.15 replaces the palette by another one: expected 0.85

    clean = make_lookbook_tables(300, 30, seed=0, noise=0.0)
    style_palette = clean.styles["palette"].to_numpy()[clean.pins["style"].to_numpy()]
    assert (_title_palette(clean.pins["title"]) == style_palette).all()


def test_title_text_alone_predicts_style_imperfectly(tables: LookbookTables):
    words = tables.pins["title"].str.split()
    material = np.array([next(w for w in t if w in MATERIALS) for t in words])
    key = np.char.add(_title_palette(tables.pins["title"]).astype(str), material)
    acc = _majority_accuracy(key, tables.pins["style"].to_numpy())
    assert 0.40 < acc < 0.55  # (palette, material) is shared by two styles: at most ~0.5


def test_description_has_misleading_colour_words(tables: LookbookTables):
    mislead = tables.pins["description"].str.extract(r"Pairs well with (\w+)")[0]
    style_palette = tables.styles["palette"].to_numpy()[tables.pins["style"].to_numpy()]
    in_palette = (mislead.map(COLOUR_PALETTE).to_numpy() == style_palette).mean()
    assert 0.09 < in_palette < 0.16  # uniform over 8 palettes: expected 1/8


def test_brand_predicts_style_imperfectly(tables: LookbookTables):
    style = tables.pins["style"].to_numpy()
    brand_family = tables.pins["brand"].map(BRAND_FAMILY).to_numpy()
    family_match = (brand_family == tables.styles["brand_family"].to_numpy()[style]).mean()
    assert 0.83 < family_match < 0.90  # 0.85 + 0.15 / 11 (the other style of the family) ~ 0.864
    acc = _majority_accuracy(tables.pins["brand"].to_numpy(), style)
    assert 0.40 < acc < 0.52  # a family serves two styles: ~0.46


# --- images --------------------------------------------------------------------------------------

def test_image_colour_follows_palette(tables: LookbookTables):
    pins = tables.pins
    palette = tables.styles["palette"].to_numpy()[pins["style"].to_numpy()]
    # a central patch is inside the garment for these categories (whatever the scale and shift)
    compact = pins["category"].isin(["top", "dress", "skirt", "bag"]).to_numpy()
    centre = tables.images[:, :, 14:18, 14:18].float().mean((2, 3)).numpy()
    means = {p: centre[compact & (palette == p)].mean(0) for p in np.unique(palette)}
    names = sorted(means)
    assert len(names) == 3
    gaps = [np.linalg.norm(means[a] - means[b]) for i, a in enumerate(names) for b in names[i + 1:]]
    assert min(gaps) > 12  # RGB units; the closest palettes (monochrome, nautical) are 24 apart


def test_image_pixels_show_the_style_palette_for_most_pins(tables: LookbookTables):
    names = list(PALETTES)
    rgb = torch.tensor([c for cols in PALETTES.values() for _, c in cols], dtype=torch.float32)  # [32, 3]
    palette_of_colour = torch.arange(len(names)).repeat_interleave(4)
    style_palette = torch.tensor([names.index(p) for p in tables.styles["palette"]])[
        torch.tensor(tables.pins["style"].to_numpy())]
    compact = torch.tensor(tables.pins["category"].isin(["top", "dress", "skirt", "bag"]).to_numpy())
    pixels = tables.images[:, :, 15:17, 15:17].float().flatten(2).transpose(1, 2)  # [N, 4, 3]
    nearest = palette_of_colour[torch.cdist(pixels, rgb[None]).argmin(-1)]  # [N, 4]
    hit = (nearest == style_palette[:, None]).any(1)[compact].float().mean().item()
    assert 0.75 < hit < 0.93  # the image palette is replaced for 15% of pins; seeds 0-11 give 0.83-0.87


def test_image_silhouette_follows_category(tables: LookbookTables):
    img = tables.images.float()
    corner = img[:, :, :3, :3].mean((2, 3), keepdim=True)
    foreground = ((img - corner).abs().sum(1) > 40).float()  # [N, H, W]
    cat = tables.pins["category"].to_numpy()
    train = np.arange(len(cat)) % 2 == 0
    centroids = torch.stack([foreground[train & (cat == c)].mean(0) for c in CATEGORIES])
    dist = ((foreground[~train, None] - centroids[None]) ** 2).sum((2, 3))
    pred = np.array(CATEGORIES)[dist.argmin(1).numpy()]
    assert (pred == cat[~train]).mean() > 0.9  # nearest mask centroid; chance is ~1/6


# --- the graph wrapper ---------------------------------------------------------------------------

def test_synthetic_lookbooks_builds_the_graph():
    pytest.importorskip("boardgraph.graph.builders")
    t = make_lookbook_tables(400, 40, seed=5)
    g = synthetic_lookbooks(400, 40, seed=5)
    assert g.num_nodes("pin") == 400 and g.num_nodes("board") == 40
    etype = ("pin", "in", "board")
    assert g.num_edges(etype) == len(t.memberships)
    assert list(g.ids("pin")) == t.pins["pin_id"].tolist()  # pin index i is pins row i
    pin_feats = g.features("pin")
    assert pin_feats.kinds["style"] == "label"
    assert (pin_feats["style"].to_numpy() == t.pins["style"].to_numpy()).all()
    assert torch.equal(pin_feats["image"], t.images) and pin_feats.kinds["image"] == "image"
    assert g.features("board").kinds["style"] == "label"
    # every membership and its position round-trips through the edges (the builder names the
    # ``order=`` column's attribute "order")
    src, dst = g.edges(etype)
    edges = pd.DataFrame({"board_id": g.ids("board", dst), "pin_id": g.ids("pin", src),
                          "position": g.edge_attr(etype, "order").numpy()})
    edges = edges.sort_values(["board_id", "position"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(edges, t.memberships.reset_index(drop=True), check_dtype=False)


# --- presets -------------------------------------------------------------------------------------

#: sha256 of ``to_csv(index=False)`` of each table of ``make_lookbook_tables(2000, 200, seed=0)``,
#: recorded before presets existed: the lookbook preset must not change (published numbers).
LOOKBOOK_SEED0_SHA256 = {
    "pins": "390d31d0da00000729a155dc041ff89d006cf53c1290cfdf8cec3fd39d6551a1",
    "boards": "f4fb59730916d39fad37232eb683bef4718410135121ac10609b3174d63bc39c",
    "memberships": "2aa3d81dfe225ce5cef4c855d42fdf8963bda4637fe3f226e0a7f14c2e0bcb7e",
    "styles": "b84beb31523be62665e84dbb49088ca610307307a75a86ae1edfb8c48a0e59f7",
}


@pytest.fixture(scope="module")
def dense() -> LookbookTables:
    return make_lookbook_tables(preset="dense", seed=0)


def _incidence(t: LookbookTables) -> np.ndarray:
    """float32 ``[n_boards, n_pins]`` 0/1 matrix of the memberships."""
    board = t.boards.reset_index().set_index("board_id")["index"][t.memberships["board_id"]].to_numpy()
    pin = t.pins.reset_index().set_index("pin_id")["index"][t.memberships["pin_id"]].to_numpy()
    x = np.zeros((len(t.boards), len(t.pins)), dtype=np.float32)
    x[board, pin] = 1.0
    return x


def _top_percent_share(t: LookbookTables) -> tuple[float, float]:
    """(share of memberships held by the top 1% of pins, mean share of boards each of them is on)."""
    degree = np.sort(t.memberships["pin_id"].value_counts().to_numpy())[::-1]
    top = degree[: len(t.pins) // 100]
    return top.sum() / len(t.memberships), top.mean() / len(t.boards)


def test_lookbook_preset_is_unchanged(tables: LookbookTables):
    digests = {name: hashlib.sha256(getattr(tables, name).to_csv(index=False).encode()).hexdigest()
               for name in LOOKBOOK_SEED0_SHA256}
    assert digests == LOOKBOOK_SEED0_SHA256
    assert len(tables.memberships) == 3706 and tables.pin_labels == ("style",)
    assert tables.memberships.head(3).values.tolist() == [["b0000", "p000899", 0], ["b0000", "p001543", 1],
                                                          ["b0000", "p000160", 2]]
    assert tables.pins["title"].iloc[0] == "scarlet cotton midi dress"
    explicit = make_lookbook_tables(2000, 200, seed=0, preset="lookbook", board_size=(5, 30), purity=0.88)
    _assert_tables_equal(explicit, tables)
    _assert_tables_equal(make_lookbook_tables(seed=0), tables)  # None takes the preset's defaults


def test_unknown_preset_raises_naming_the_presets():
    assert list(PRESETS) == ["lookbook", "dense"]
    with pytest.raises(ValueError, match=r"unknown preset 'sparse'.*\['lookbook', 'dense'\]"):
        make_lookbook_tables(100, 10, preset="sparse")
    with pytest.raises(ValueError, match="'lookbook', 'dense'"):
        synthetic_lookbooks(100, 10, preset="Dense")


def test_dense_defaults_and_schema(dense: LookbookTables):
    pins, mem = dense.pins, dense.memberships
    assert len(pins) == 2000 and len(dense.boards) == 600 and dense.images.shape == (2000, 3, 32, 32)
    assert list(pins.columns) == ["pin_id", "title", "description", "brand", "category", "price", "style", "taste"]
    assert pins["taste"].dtype == np.int64 and dense.pin_labels == ("style", "taste")
    # taste groups nest in styles: 8 per style, equal shares (166 or 167 pins per style -> 20 or 21)
    assert (pins["taste"] // 8 == pins["style"]).all()
    assert pins["taste"].nunique() == 96 and set(pins["taste"].value_counts()) == {20, 21}
    assert set(dense.boards["style"].value_counts()) == {50}  # primary styles in equal shares
    assert not mem.duplicated(["board_id", "pin_id"]).any()
    assert (mem["position"].to_numpy() == mem.groupby("board_id").cumcount().to_numpy()).all()
    assert dense.n_unboarded == 0  # every pin has a home board of a user who likes its group


def test_dense_board_sizes(dense: LookbookTables):
    sizes = dense.memberships.groupby("board_id").size()
    assert len(sizes) == 600 and sizes.min() == 50 and sizes.max() == 150
    assert abs(sizes.mean() - 100) < 5  # uniform 50..150: sd 29, standard error 1.2 over 600 boards
    assert sizes.mean() == pytest.approx(100.957, abs=1e-3)
    small = make_lookbook_tables(300, 40, seed=1, preset="dense", board_size=(10, 20))
    assert small.memberships.groupby("board_id").size().between(10, 20).all()


def test_dense_has_a_heavy_popularity_tail(dense: LookbookTables, tables: LookbookTables):
    share, on_boards = _top_percent_share(dense)
    lookbook_share, lookbook_on_boards = _top_percent_share(tables)
    assert share == pytest.approx(0.1131, abs=1e-3) and lookbook_share == pytest.approx(0.0521, abs=1e-3)
    assert share > 0.09 and share > 1.8 * lookbook_share  # seeds 0-9 give 0.099-0.124
    assert on_boards > 0.4 and lookbook_on_boards < 0.1  # the top 1% are each on about half the boards


def test_dense_same_seed_identical_different_seed_differs():
    a = make_lookbook_tables(600, 100, seed=7, preset="dense", image_size=8)
    b = make_lookbook_tables(600, 100, seed=7, preset="dense", image_size=8)
    c = make_lookbook_tables(600, 100, seed=8, preset="dense", image_size=8)
    _assert_tables_equal(a, b)
    assert not a.memberships.equals(c.memberships) and not a.pins["taste"].equals(c.pins["taste"])


def test_dense_content_is_the_lookbook_content():
    # pins and images come from their own streams: the preset changes the boards only, so no
    # modality can carry the taste group (drawn afterwards from the board stream)
    look = make_lookbook_tables(400, 40, seed=4, image_size=16)
    dense = make_lookbook_tables(400, 40, seed=4, image_size=16, preset="dense")
    pd.testing.assert_frame_equal(dense.pins.drop(columns="taste"), look.pins)
    pd.testing.assert_frame_equal(dense.styles, look.styles)
    assert torch.equal(dense.images, look.images)


def test_dense_taste_groups_carry_signal_beyond_style(dense: LookbookTables):
    x = _incidence(dense)
    co = x.T @ x  # [N, N] boards shared by each pair of pins
    np.fill_diagonal(co, 0)
    degree = x.sum(0)
    expected = np.outer(degree, degree) / x.shape[0]  # under independence, given the degrees
    style, taste = dense.pins["style"].to_numpy(), dense.pins["taste"].to_numpy()
    same_style, same_taste = style[:, None] == style[None], taste[:, None] == taste[None]
    pairs = {"group": same_taste & ~np.eye(len(style), dtype=bool), "style": same_style & ~same_taste,
             "other": ~same_style}
    rate = {k: co[m].mean() for k, m in pairs.items()}  # mean boards shared per pair
    lift = {k: co[m].sum() / expected[m].sum() for k, m in pairs.items()}
    # seed 0: rates 7.71 / 3.56 / 1.43, lifts 5.24 / 2.33 / 0.93 (seeds 0-9: rate ratio 2.09-2.18)
    assert rate["group"] > 1.9 * rate["style"] and rate["style"] > 2 * rate["other"]
    assert lift["group"] > 4.5 and 1.9 < lift["style"] < 2.7 and lift["other"] < 1.0
    # item-item cosine (ItemKNN) recovers the groups: of each pin's 10 nearest pins, ~75% share its
    # group (chance 1%) and ~10% only its style (chance 7%); seeds 0-9 give 0.74-0.77 and 0.09-0.12
    cosine = co / np.sqrt(np.outer(degree, degree))
    np.fill_diagonal(cosine, -1)
    nearest = np.argpartition(-cosine, 10, axis=1)[:, :10]
    assert (taste[nearest] == taste[:, None]).mean() > 0.65
    assert ((style[nearest] == style[:, None]) & (taste[nearest] != taste[:, None])).mean() < 0.2


def test_synthetic_lookbooks_dense_has_the_taste_label():
    pytest.importorskip("boardgraph.graph.builders")
    t = make_lookbook_tables(300, 40, seed=5, preset="dense")
    g = synthetic_lookbooks(300, 40, seed=5, preset="dense")
    assert g.num_edges(("pin", "in", "board")) == len(t.memberships)
    pin_feats = g.features("pin")
    assert pin_feats.kinds["style"] == "label" and pin_feats.kinds["taste"] == "label"
    assert (pin_feats["taste"].to_numpy() == t.pins["taste"].to_numpy()).all()
    assert "taste" not in synthetic_lookbooks(300, 40, seed=5).features("pin").kinds
