"""Lexical representations: TF-IDF vectors against hand-computed cosines, hybrid embeddings' mixing."""
import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from boardgraph.graph import from_collections
from boardgraph.inference.lexical import (LexicalFormatError, TfidfVectorizer, hybrid_embeddings, pin_texts,
                                tfidf_embeddings, words)


def _text_graph(titles: list[str]):
    n = len(titles)
    df = pd.DataFrame({"board_id": [f"b{i // 2}" for i in range(n)], "pin_id": [f"p{i}" for i in range(n)]})
    items = pd.DataFrame({"pin_id": [f"p{i}" for i in range(n)], "title": titles})
    return from_collections(df, items=items, text=["title"])[0]


def test_tfidf_embeddings_hand_values():
    titles = ["Derek Lam silk top", "derek lam flared pants", "red silk red dress", "", "the top"]
    g = _text_graph(titles)
    e = tfidf_embeddings(g, dim=16)
    assert e.shape == (5, 9) and e.dtype == torch.float32   # 9 distinct words <= 16: exact
    n = 5
    idf = lambda df: math.log((n + 1) / (df + 1))  # noqa: E731
    # words: derek lam (2 pins), silk (2), top (2), flared pants red dress the (1); "red" twice in pin 2
    v0 = {"derek": idf(2), "lam": idf(2), "silk": idf(2), "top": idf(2)}
    v1 = {"derek": idf(2), "lam": idf(2), "flared": idf(1), "pants": idf(1)}
    v2 = {"red": (1 + math.log(2)) * idf(1), "silk": idf(2), "dress": idf(1)}
    v4 = {"the": idf(1), "top": idf(2)}

    def cos(a, b):
        dot = sum(v * b.get(w, 0.0) for w, v in a.items())
        return dot / math.sqrt(sum(v * v for v in a.values()) * sum(v * v for v in b.values()))

    sims = e @ e.T
    for (i, a), (j, b) in [((0, v0), (1, v1)), ((0, v0), (2, v2)), ((0, v0), (4, v4)), ((1, v1), (2, v2))]:
        assert float(sims[i, j]) == pytest.approx(cos(a, b), abs=1e-6), (i, j)
    assert float(sims[1, 2]) == 0.0 and e[3].abs().sum() == 0          # no shared word; no text
    torch.testing.assert_close(e[[0, 1, 2, 4]].norm(dim=1), torch.ones(4))


def test_tfidf_projection_keeps_cosines():
    words = [f"w{i}" for i in range(60)]
    titles = [" ".join(words[(7 * i) % 60:(7 * i) % 60 + 5]) for i in range(40)]
    g = _text_graph(titles)
    exact = tfidf_embeddings(g, dim=64)            # 60 distinct words <= 64: exact
    assert exact.shape == (40, 60)
    proj = tfidf_embeddings(g, dim=32, seed=3)     # > 32: projected
    assert proj.shape == (40, 32)
    torch.testing.assert_close(proj.norm(dim=1), torch.ones(40))
    err = (proj @ proj.T - exact @ exact.T).abs()
    assert float(err.mean()) < 0.15          # ~ 1/sqrt(32) per pair
    assert not torch.equal(proj, tfidf_embeddings(g, dim=32, seed=4))
    with pytest.raises(ValueError, match="dim must be >= 1"):
        tfidf_embeddings(g, dim=0)
    with pytest.raises(ValueError, match="no text"):
        tfidf_embeddings(from_collections(pd.DataFrame({"board_id": ["b"], "pin_id": ["p"]}))[0])


def test_pin_texts_join_fields_and_skip_missing():
    df = pd.DataFrame({"board_id": ["b", "b", "b"], "pin_id": ["p0", "p1", "p2"]})
    items = pd.DataFrame({"pin_id": ["p0", "p1", "p2"], "title": ["Red dress", "", None],
                          "brand": ["Acme", "Zed", None]})
    g = from_collections(df, items=items, text=["title", "brand"])[0]
    assert pin_texts(g) == ["Red dress. Acme", "Zed", ""]
    assert pin_texts(g, ["brand"], sep=" ") == ["Acme", "Zed", ""]


def test_hybrid_embeddings_mix_cosines():
    torch.manual_seed(0)
    emb, lex = torch.randn(6, 4), torch.randn(6, 9)
    lex[5] = 0.0                                         # a pin without text
    for w in (0.0, 0.3, 1.0):
        h = hybrid_embeddings(emb, lex, w)
        assert h.shape == (6, 13)
        ce, cl = F.normalize(emb, dim=1) @ F.normalize(emb, dim=1).T, F.normalize(lex, dim=1) @ F.normalize(lex, dim=1).T
        torch.testing.assert_close(h @ h.T, (1 - w) * ce + w * cl, atol=1e-6, rtol=0)
        torch.testing.assert_close(h[:5].norm(dim=1), torch.ones(5))
    assert float(hybrid_embeddings(emb, lex, 0.3)[5].norm()) == pytest.approx(math.sqrt(0.7))
    with pytest.raises(ValueError, match=r"weight must be in \[0, 1\], got 1.5"):
        hybrid_embeddings(emb, lex, 1.5)
    with pytest.raises(ValueError, match="for the same N pins"):
        hybrid_embeddings(emb, lex[:5])


CATALOGUE = ["Derek Lam silk top", "derek lam flared pants", "red silk red dress", "", "the top"]


def test_vectorizer_on_new_texts_counts_unknown_words_in_the_norm():
    vec = TfidfVectorizer.fit(CATALOGUE, dim=16)
    assert vec.vocab == tuple(sorted({w for t in CATALOGUE for w in words(t)})) and vec.width == 9
    assert vec.n_docs == 5 and repr(vec) == "TfidfVectorizer(words=9, docs=5, width=9)"
    cat = vec.transform(CATALOGUE)
    q = vec.transform(["silk kimono", "kimono", ""])
    n = 5
    silk, kimono = math.log((n + 1) / 3), math.log(n + 1)   # in 2 texts; unseen
    # cosine with pin 2 ("red silk red dress") = silk^2 / (|q| |pin 2|), |q| over silk and kimono
    v2 = [(1 + math.log(2)) * math.log(6 / 2), math.log(6 / 3), math.log(6 / 2)]
    want = silk * silk / (math.hypot(silk, kimono) * math.sqrt(sum(v * v for v in v2)))
    assert float(q[0] @ cat[2]) == pytest.approx(want, abs=1e-6)
    assert float(q[0].norm()) == pytest.approx(silk / math.hypot(silk, kimono), abs=1e-6)
    assert q[1].abs().sum() == 0 and q[2].abs().sum() == 0     # only unknown words; empty
    with pytest.raises(ValueError, match="dim must be >= 1"):
        TfidfVectorizer.fit(CATALOGUE, dim=0)


def test_vectorizer_projected_form_scales_by_the_known_share():
    corpus = [" ".join(f"w{(7 * i + j) % 60}" for j in range(5)) for i in range(40)]
    vec = TfidfVectorizer.fit(corpus, dim=32, seed=1)
    assert vec.width == 32
    q = vec.transform([corpus[0], corpus[0] + " zzz"])
    torch.testing.assert_close(q[0].norm(), torch.tensor(1.0))
    full = math.sqrt(sum(float(v) ** 2 for v in [vec.idf[vec.vocab.index(w)] for w in corpus[0].split()])
                     + math.log(41) ** 2)
    known = math.sqrt(sum(float(vec.idf[vec.vocab.index(w)]) ** 2 for w in corpus[0].split()))
    assert float(q[1].norm()) == pytest.approx(known / full, abs=1e-5)
    torch.testing.assert_close(F.normalize(q[1], dim=0), q[0])


def test_vectorizer_save_load_round_trip_and_errors(tmp_path):
    vec = TfidfVectorizer.fit(CATALOGUE, dim=4, seed=2)          # 9 words > 4: projected
    vec.save(tmp_path / "tfidf.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tfidf.json"]   # no temp file left
    back = TfidfVectorizer.load(tmp_path / "tfidf.json")
    assert back.vocab == vec.vocab and (back.n_docs, back.dim, back.seed) == (5, 4, 2)
    torch.testing.assert_close(back.transform(CATALOGUE + ["silk kimono"]), vec.transform(CATALOGUE + ["silk kimono"]),
                               rtol=0, atol=0)
    with pytest.raises(LexicalFormatError, match="no TF-IDF vectorizer at"):
        TfidfVectorizer.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(LexicalFormatError, match="not JSON"):
        TfidfVectorizer.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"format": "something/2"}')
    with pytest.raises(LexicalFormatError, match="of format 'boardgraph.tfidf/1'"):
        TfidfVectorizer.load(tmp_path / "other.json")
