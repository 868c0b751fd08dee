import numpy as np
import pandas as pd
import pytest
import torch

from boardgraph.datasets.synthetic import (BRAND_FAMILIES, CATEGORIES, MATERIALS, PALETTES, LookbookTables,
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
