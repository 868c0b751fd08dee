"""PinSearch: similar pins, text / image search, content matching with filters, cold-start
placement and board completion, on a tiny run over synthetic lookbooks with planted probe pins:

* ``dup``: an exact copy of ``p000005``'s content (on board ``b0000``);
* ``txt``: a pin with only a title (on board ``b0001``);
* ``img``: a pin with only ``p000007``'s image (on board ``b0002``).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from boardgraph.inference.search import PinSearch, Placement, catalogue_index, filter_columns
from boardgraph.datasets.synthetic import make_lookbook_tables
from boardgraph.graph import from_collections
from boardgraph.graph.errors import ImageReadError, SchemaError, UnknownIdError
from boardgraph.inference.index import EmbeddingIndex, IndexFormatError, UnknownFilterColumnError
from boardgraph.inference.run import InferenceInputError, NoContentError

pytest.importorskip("faiss", reason="faiss-cpu is a dependency; skip only where it is absent")

N_PINS, N_BOARDS, STEPS = 300, 30, 20
TXT_TITLE = "zigzag tartan poncho"


def _png(img: torch.Tensor) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img.permute(1, 2, 0).numpy()).save(buf, format="PNG")
    return buf.getvalue()


def probe_graph():
    """The synthetic lookbook with the three probe pins; images as PNG bytes (None = no image)."""
    t = make_lookbook_tables(N_PINS, N_BOARDS, seed=0)
    pins = t.pins.assign(image=[_png(im) for im in t.images])
    probes = pd.DataFrame({"pin_id": ["dup", "txt", "img"], "title": [pins.title[5], TXT_TITLE, None],
                           "description": [pins.description[5], None, None], "brand": [pins.brand[5], None, None],
                           "category": [pins.category[5], None, None], "price": [pins.price[5], np.nan, np.nan],
                           "style": [pins["style"][5], 0, pins["style"][7]],
                           "image": [pins.image[5], None, pins.image[7]]})
    pins = pd.concat([pins, probes], ignore_index=True)
    extra = pd.DataFrame({"board_id": ["b0000", "b0001", "b0002"], "pin_id": ["dup", "txt", "img"], "position": 999})
    graph, _ = from_collections(
        pd.concat([t.memberships, extra], ignore_index=True), collection="board_id", item="pin_id", items=pins,
        boards=t.boards, text=("title", "description"), categorical=("brand", "category"), numeric=("price",),
        image="image", labels=("style",), board_text=("board_title",), board_labels=("style",), order="position")
    return graph, t


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    from boardgraph.evaluation.demo import demo_config
    from boardgraph.training.trainer import Trainer

    base = tmp_path_factory.getbasetemp() / "tiny_probe_run"
    out = base / "neighbor"
    if not (out / "checkpoint.pt").exists():
        graph, _ = probe_graph()
        graph.save(base / "graph")
        cfg = demo_config("neighbor", base, n_pins=N_PINS, n_boards=N_BOARDS, steps=STEPS, seed=0)
        cfg.data.source = str(base / "graph")
        cfg.run.batch_size, cfg.run.progress, cfg.run.tensorboard = 128, "off", False
        Trainer(cfg).fit()
    return out


@pytest.fixture(scope="module")
def search(run_dir) -> PinSearch:
    return PinSearch.from_run(run_dir)


@pytest.fixture(scope="module")
def tables():
    return probe_graph()[1]


def test_from_run_indexes_every_pin_with_filter_metadata(search):
    g = search.catalogue
    assert len(search.index) == g.num_nodes("pin") == N_PINS + 3 and search.dim == 64
    assert list(search.index.ids) == list(g.ids("pin"))
    assert list(search.index.metadata.columns) == ["brand", "category", "price"] == filter_columns(g)
    assert search.columns == ["title", "brand", "category", "price"]


def test_similar_returns_the_exact_duplicate_first(search):
    dup = search.similar("dup", k=5)
    assert list(dup.columns) == ["rank", "pin_id", "score", "title", "brand", "category", "price"]
    assert dup.pin_id[0] == "p000005" and dup.score[0] == pytest.approx(1.0, abs=1e-5)
    assert dup["rank"].tolist() == [1, 2, 3, 4, 5] and "dup" not in dup.pin_id.tolist()
    assert (np.diff(dup.score) <= 1e-7).all() and dup.score[1] < 0.9999
    orig = search.similar("p000005", k=3)
    assert orig.pin_id[0] == "dup" and orig.score[0] == pytest.approx(1.0, abs=1e-5)
    # the shown columns are the pin's own features
    row = search.catalogue.index("pin", ["p000005"])[0]
    table = search.catalogue.features("pin").table
    assert orig.title[0] == table.title[int(row)] and orig.price[0] == table.price[int(row)]
    # scores are the cosine of the stored embeddings
    e = search.embeddings
    i = search.catalogue.index("pin", orig.pin_id.tolist())
    want = (e[i] @ e[int(row)]).numpy()
    np.testing.assert_allclose(orig.score.to_numpy(), want, atol=1e-5)


def test_similar_with_a_filter_keeps_only_allowed_pins(search):
    res = search.similar("p000005", k=8, filter={"category": ["bag", "shoes"]})
    assert len(res) == 8 and set(res.category) <= {"bag", "shoes"}
    exact = search.similar("p000005", k=search.catalogue.num_nodes("pin"))
    allowed = exact[exact.category.isin(["bag", "shoes"])].head(8)
    assert res.pin_id.tolist() == allowed.pin_id.tolist()


def test_search_by_text_finds_the_text_only_pin(search):
    res = search.search_by_text(TXT_TITLE, k=3)
    assert res.pin_id[0] == "txt" and res.score[0] == pytest.approx(1.0, abs=1e-5)
    assert res.title[0] == TXT_TITLE
    only_dresses = search.search_by_text(TXT_TITLE, k=4, filter={"category": "dress"})
    assert len(only_dresses) == 4 and (only_dresses.category == "dress").all()


@pytest.mark.parametrize("form", ["path", "bytes", "array_chw", "array_hwc", "pil"])
def test_search_by_image_finds_the_image_only_pin_from_every_form(search, tables, tmp_path, form):
    from PIL import Image

    img = tables.images[7]
    image = {"path": lambda: _write(tmp_path / "q.png", _png(img)), "bytes": lambda: _png(img),
             "array_chw": lambda: img.numpy(), "array_hwc": lambda: img.permute(1, 2, 0).numpy(),
             "pil": lambda: Image.fromarray(img.permute(1, 2, 0).numpy())}[form]()
    res = search.search_by_image(image, k=3)
    assert res.pin_id[0] == "img" and res.score[0] == pytest.approx(1.0, abs=1e-5)


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_match_content_restricts_the_catalogue(search, tables):
    photo = tables.images[7]
    res = search.match_content(photo, k=6, filter={"category": "bag", "price": [float(p) for p in tables.pins.price]})
    bags = tables.pins[tables.pins.category == "bag"]
    assert len(res) == 6 and (res.category == "bag").all() and "img" not in res.pin_id.tolist()
    # the best allowed pins, in order: brute force over the allowed rows
    q = search.run.embed_new([{"image": photo}])[0]
    idx = search.catalogue.index("pin", bags.pin_id.tolist())
    s = search.embeddings[idx] @ q
    order = torch.argsort(s, descending=True)[:6]
    assert res.pin_id.tolist() == bags.pin_id.to_numpy()[order.numpy()].tolist()
    np.testing.assert_allclose(res.score.to_numpy(), s[order].numpy(), atol=1e-5)
    # a filter that allows a few pins gives only those
    few = search.match_content(photo, k=10, filter={"brand": "Cobble", "category": "bag"})
    n_allowed = int(((tables.pins.brand == "Cobble") & (tables.pins.category == "bag")).sum())
    assert len(few) == min(10, n_allowed) and (few.brand == "Cobble").all()


def test_place_new_pin_suggests_the_board_of_a_pin_from_its_text_and_metadata(search):
    """A new pin described like a board's pin (its title, brand, category and price) gets that board
    among the 5 suggestions far above chance (5 / 30 boards ~ 0.17): about 0.6 for this tiny model;
    0.4 is more than 3 binomial standard deviations (0.063 at n = 60) below it."""
    g = search.catalogue
    table = g.features("pin").table
    pin, board = g.edges(("pin", "in", "board"))
    hits = []
    for b in range(N_BOARDS):
        for p in pin[board == b][:2].tolist():
            r = table.iloc[p]
            placed = search.place_new_pin(text=r.title, metadata={"brand": r.brand, "category": r.category,
                                                                  "price": r.price}, k_boards=5, k_pins=1)
            assert len(placed.boards) == 5 and (np.diff(placed.boards.score) <= 1e-7).all()
            hits.append(g.ids("board", [b])[0] in placed.boards.board_id.tolist())
    assert np.mean(hits) >= 0.4


def test_place_new_pin_scores_boards_by_their_mean_pin_embedding(search, tables):
    img = tables.images[5]
    placed = search.place_new_pin(image=img, text=tables.pins.title[5], k_boards=4, k_pins=3)
    assert isinstance(placed, Placement) and placed.embedding.shape == (64,)
    assert list(placed.boards.columns) == ["rank", "board_id", "score", "size", "board_title"]
    g = search.catalogue
    pin, board = g.edges(("pin", "in", "board"))
    cent = F.normalize(torch.zeros(N_BOARDS, 64).index_add_(0, board, search.embeddings[pin].float()), dim=1)
    want = cent @ placed.embedding
    top = want.topk(4)
    assert placed.boards.board_id.tolist() == g.ids("board", top.indices).tolist()
    np.testing.assert_allclose(placed.boards.score.to_numpy(), top.values.numpy(), atol=1e-5)
    sizes = torch.bincount(board, minlength=N_BOARDS)
    assert placed.boards["size"].tolist() == sizes[top.indices].tolist()
    assert placed.boards.board_title.tolist() == tables.boards.set_index("board_id").board_title[
        placed.boards.board_id].tolist()
    assert len(placed.pins) == 3 and placed.pins["rank"].tolist() == [1, 2, 3]
    # the embedding is the encoder's, from content only
    want_emb = search.run.embed_new([{"image": img, "title": tables.pins.title[5]}])[0]
    torch.testing.assert_close(placed.embedding, want_emb, atol=1e-6, rtol=0)


def test_complete_the_look_excludes_the_board_and_ranks_by_the_board(search):
    g = search.catalogue
    res = search.complete_the_look("b0004", k=10)
    b = int(g.index("board", ["b0004"])[0])
    pin, board = g.edges(("pin", "in", "board"))
    members = set(g.ids("pin", pin[board == b]).tolist())
    assert len(res) == 10 and not members & set(res.pin_id)
    cent = F.normalize(search.embeddings[pin[board == b]].float().mean(0), dim=0)
    s = search.embeddings.float() @ cent
    s[pin[board == b]] = -2
    top = s.topk(10)
    assert res.pin_id.tolist() == g.ids("pin", top.indices).tolist()
    np.testing.assert_allclose(res.score.to_numpy(), top.values.numpy(), atol=1e-5)
    shoes = search.complete_the_look("b0004", k=5, filter={"category": "shoes"})
    assert (shoes.category == "shoes").all() and not members & set(shoes.pin_id)


def test_attention_board_queries_in_complete_the_look_and_place_new_pin(run_dir, tables):
    """A run that serves attention board queries (``objective.board_query: attention``, the
    default of ``neighbor_cf``): both applications score boards by the soft maximum over their
    pins (``boardgraph.inference.board_query``), checked against brute force."""
    from boardgraph.inference.board_query import attention_scores

    att = PinSearch.from_run(run_dir)
    att.board_query = "attention"           # as a neighbor_cf run's config sets it
    assert PinSearch.from_run(run_dir).board_query == "centroid"      # this run is a neighbor one
    g, en = att.catalogue, F.normalize(att.embeddings.float(), dim=1)
    pin, board = g.edges(("pin", "in", "board"))
    b = int(g.index("board", ["b0004"])[0])
    members = pin[board == b]
    res = att.complete_the_look("b0004", k=10)
    want = attention_scores(members[None], en, en, att.tau)[0]
    want[members] = -2
    top = want.topk(10)
    assert res.pin_id.tolist() == g.ids("pin", top.indices).tolist()
    np.testing.assert_allclose(res.score.to_numpy(), top.values.numpy(), atol=1e-5)
    shoes = att.complete_the_look("b0004", k=5, filter={"category": "shoes"})
    assert len(shoes) == 5 and (shoes.category == "shoes").all()
    placed = att.place_new_pin(text=tables.pins.title[5], k_boards=3)
    q = F.normalize(placed.embedding, dim=0)
    per_board = torch.stack([attention_scores(pin[board == i][None], en, q[None], att.tau)[0, 0]
                             for i in range(N_BOARDS)])
    top = per_board.topk(3)
    assert placed.boards.board_id.tolist() == g.ids("board", top.indices).tolist()
    np.testing.assert_allclose(placed.boards.score.to_numpy(), top.values.numpy(), atol=1e-5)


def test_errors_name_the_bad_value(search, tmp_path):
    with pytest.raises(UnknownIdError, match=r"unknown pin id 'P000005 ' \(did you mean 'p000005'\)"):
        search.similar("P000005 ")
    with pytest.raises(UnknownIdError, match=r"unknown pin id 'p00005' \(did you mean .*'p000105'"):
        search.similar("p00005")
    with pytest.raises(UnknownIdError, match="unknown board id 'nope'"):
        search.complete_the_look("nope")
    with pytest.raises(NoContentError, match="text query '  ' is empty"):
        search.search_by_text("  ")
    with pytest.raises(NoContentError, match="nothing was given"):
        search.place_new_pin()
    with pytest.raises(NoContentError, match="nothing the model can use"):
        search.place_new_pin(text="")
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ImageReadError, match=f"cannot read image '{bad}'"):
        search.search_by_image(str(bad))
    with pytest.raises(ImageReadError, match="cannot read image"):
        search.place_new_pin(image=str(tmp_path / "missing.png"), text="a dress")
    with pytest.raises(SchemaError, match="colour"):
        search.place_new_pin(text="a dress", metadata={"colour": "red"})
    with pytest.raises(UnknownFilterColumnError, match="unknown filter column 'colour'"):
        search.similar("p000005", filter={"colour": "red"})
    with pytest.raises(InferenceInputError, match="k_boards and k_pins must be >= 1"):
        search.place_new_pin(text="a dress", k_boards=0)


def test_saved_index_round_trips_and_a_stale_index_is_refused(search, run_dir, tmp_path):
    run = search.run
    index = catalogue_index(run.graph, search.embeddings, kind="hnsw")
    index.save(tmp_path / "idx")
    again = PinSearch.from_run(run, index_dir=tmp_path / "idx")
    assert again.index.kind == "hnsw"
    pd.testing.assert_frame_equal(again.similar("dup", k=5), search.similar("dup", k=5))
    # a 16-d Matryoshka index: the run's 16-d prefix embeddings are used for queries
    e16 = run.embed_pins(dim=16)
    catalogue_index(run.graph, e16).save(tmp_path / "idx16")
    small = PinSearch.from_run(run, index_dir=tmp_path / "idx16")
    assert small.dim == 16 and small.search_by_text(TXT_TITLE, k=1).pin_id[0] == "txt"
    # an index over other vectors (e.g. before retraining) is refused
    other = torch.randn(len(search.index), 64, generator=torch.Generator().manual_seed(0))
    stale = catalogue_index(run.graph, other)
    with pytest.raises(IndexFormatError, match="stale"):
        PinSearch(run, search.embeddings, stale)
    with pytest.raises(IndexFormatError, match="ids are not the catalogue's pin ids"):
        PinSearch(run, search.embeddings, EmbeddingIndex.build(search.embeddings, [f"x{i}" for i in range(len(other))]))


@pytest.fixture(scope="module")
def hybrid(search) -> PinSearch:
    return PinSearch.from_run(search.run, lexical_weight=0.4, lexical_dim=4096)


def test_hybrid_scores_mix_learned_and_tfidf_cosines(search, hybrid):
    from boardgraph.inference.lexical import TfidfVectorizer, pin_texts

    g = hybrid.catalogue
    texts = pin_texts(g, ["title", "description"])
    vec = TfidfVectorizer.fit(texts, dim=4096)
    lex = vec.transform(texts)
    assert hybrid.learned_dim == 64 and hybrid.dim == 64 + vec.width and hybrid.lexical.vocab == vec.vocab
    learned = F.normalize(search.embeddings.float(), dim=1)
    row = int(g.index("pin", ["p000005"])[0])
    res = hybrid.similar("p000005", k=5)
    i = g.index("pin", res.pin_id.tolist())
    want = 0.6 * (learned[i] @ learned[row]) + 0.4 * (lex[i] @ lex[row])
    np.testing.assert_allclose(res.score.to_numpy(), want.numpy(), atol=1e-5)
    assert res.pin_id[0] == "dup" and res.score[0] == pytest.approx(1.0, abs=1e-5)
    # a text query: learned cosine of the text-only embedding + TF-IDF cosine of the query's words
    q = search._embed_query(text=TXT_TITLE)
    t = hybrid.search_by_text(TXT_TITLE, k=g.num_nodes("pin"))            # every pin, scored
    assert t.pin_id[0] == "txt" and t.score[0] == pytest.approx(1.0, abs=1e-5)
    j = g.index("pin", t.pin_id.tolist())
    qv = vec.transform([TXT_TITLE])[0]
    # the index compares unit rows: a pin without text ("img") keeps only its learned part, rescaled
    row_norm = (0.6 + 0.4 * lex[j].norm(dim=1) ** 2).sqrt()
    want = (0.6 * (learned[j] @ F.normalize(q[:64], dim=0)) + 0.4 * (lex[j] @ qv)) / row_norm
    assert float(row_norm[t.pin_id.tolist().index("img")]) == pytest.approx(0.6 ** 0.5)
    np.testing.assert_allclose(t.score.to_numpy(), want.numpy(), atol=1e-5)
    # an image query has no words: only the learned part scores
    img = hybrid.query_vector(torch.ones(64), text=None)
    assert img.shape == (1, hybrid.dim) and float(img[0, 64:].abs().sum()) == 0.0


def test_hybrid_place_new_pin_reads_words_from_text_and_text_metadata(search, hybrid):
    g = hybrid.catalogue
    r = g.features("pin").table.iloc[11]
    placed = hybrid.place_new_pin(text=r.title, metadata={"description": r.description, "brand": r.brand})
    assert placed.embedding.shape == (hybrid.dim,)
    want = hybrid.lexical.transform([f"{r.title} {r.description}"])[0] * 0.4 ** 0.5
    torch.testing.assert_close(placed.embedding[64:], want)
    emb, _ = hybrid.board_embeddings()
    assert emb.shape[1] == hybrid.dim
    np.testing.assert_allclose(placed.boards.score.to_numpy(),
                               (emb[g.index("board", placed.boards.board_id.tolist())] @ placed.embedding).numpy(),
                               atol=1e-5)


def test_hybrid_errors(search, run_dir):
    with pytest.raises(InferenceInputError, match=r"lexical_weight must be in \[0, 1\], got 1.5"):
        PinSearch.from_run(search.run, lexical_weight=1.5)
    with pytest.raises(InferenceInputError, match="holds learned embeddings only, not lexical_weight 0.5"):
        PinSearch.from_run(search.run, index_dir=run_dir / "index", lexical_weight=0.5)
    with pytest.raises(InferenceInputError, match=r"lexical_weight must be in \(0, 1\]"):
        PinSearch(search.run, search.embeddings, search.index, lexical=hybrid_vectorizer(search), lexical_weight=0.0)


def hybrid_vectorizer(search):
    from boardgraph.inference.lexical import TfidfVectorizer

    return TfidfVectorizer.fit(["a b"], dim=4)


def test_saved_hybrid_index_round_trips_with_its_vectorizer(search, hybrid, tmp_path):
    hybrid.save_index(tmp_path / "hyb")
    assert sorted(p.name for p in (tmp_path / "hyb").iterdir()) == [
        "config.json", "ids.parquet", "index.faiss", "lexical.json", "metadata.parquet"]
    back = PinSearch.from_run(search.run, index_dir=tmp_path / "hyb")      # the weight comes with the index
    assert back.lexical_weight == 0.4 and back.lexical.vocab == hybrid.lexical.vocab and back.dim == hybrid.dim
    assert back.lexical_fields == ["title", "description"]
    a, b = hybrid.search_by_text(TXT_TITLE, k=5), back.search_by_text(TXT_TITLE, k=5)
    assert a.pin_id.tolist() == b.pin_id.tolist()
    np.testing.assert_allclose(a.score.to_numpy(), b.score.to_numpy(), atol=1e-6)
    assert PinSearch.from_run(search.run, index_dir=tmp_path / "hyb", lexical_weight=0.4).lexical_weight == 0.4
    with pytest.raises(InferenceInputError, match="holds a hybrid at lexical_weight 0.4, not lexical_weight 0.3"):
        PinSearch.from_run(search.run, index_dir=tmp_path / "hyb", lexical_weight=0.3)
    (tmp_path / "hyb" / "lexical.json").write_text('{"weight": 0.4}')
    with pytest.raises(IndexFormatError, match="lexical.json of the saved hybrid index cannot be read"):
        PinSearch.from_run(search.run, index_dir=tmp_path / "hyb")
    with pytest.raises(ValueError, match="attachment name 'config.json' must be a plain file name"):
        hybrid.index.save(tmp_path / "other", attachments={"config.json": "{}"})
