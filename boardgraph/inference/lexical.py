"""Lexical representations of pins: TF-IDF vectors of their words, and hybrid (learned + lexical) embeddings.

A learned embedding of 64-256 dimensions cannot hold the identity of every word of a catalogue:
brand names, series titles, model numbers. Search engines match those exactly, and in
collections curated by people they carry much of the signal (an outfit of one designer, a bundle
of one game series). :func:`tfidf_embeddings` gives the lexical view; :func:`hybrid_embeddings`
joins it to a learned embedding so that one inner product scores both (:class:`TfidfVectorizer`
vectorises new pins and queries with the catalogue's vocabulary)::

    cos(hybrid_i, hybrid_j) = (1 - w) * cos(emb_i, emb_j) + w * cos(lex_i, lex_j)

which is what hybrid retrieval (dense + sparse) does, in a form any inner-product index serves.
"""
from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from boardgraph.graph import PinBoardGraph
from boardgraph.errors import BoardgraphError
from boardgraph._io import atomic_write_text
from boardgraph.inference.index_types import IndexFormatError

__all__ = ["pin_texts", "words", "TfidfVectorizer", "LexicalFormatError", "tfidf_embeddings", "hybrid_embeddings",
           "LEXICAL_FILE", "saved_lexical_weight", "read_saved_lexical"]


def pin_texts(graph: PinBoardGraph, fields: list[str] | None = None, sep: str = ". ") -> list[str]:
    """Each pin's text features joined with ``sep`` (empty and NaN fields skipped; ``""`` when none).

    Raises:
        ValueError: the pins have no text feature.
    """
    feats = graph.features("pin")
    fields = list(fields or feats.names("text"))
    if not fields:
        raise ValueError("the pins have no text feature; text baselines need one (e.g. a title)")
    cols = [feats.text(f) for f in fields]
    return [sep.join(s for s in (str(c[i]).strip() for c in cols) if s and s.lower() != "nan")
            for i in range(graph.num_nodes("pin"))]


_WORD = re.compile(r"[^\W_]+")
FORMAT = "boardgraph.tfidf/1"


def words(text: str) -> list[str]:
    """The lowercased runs of letters and digits of ``text`` (the TF-IDF vocabulary's words)."""
    return _WORD.findall(str(text).lower())


class LexicalFormatError(BoardgraphError, ValueError):
    """A saved TF-IDF vectorizer cannot be read (missing, not JSON, another format)."""


@dataclass(frozen=True, eq=False)
class TfidfVectorizer:
    """TF-IDF over the words of a corpus (a catalogue's pin texts), applied to any text later.

    A word ``w`` appearing ``tf`` times in a text weighs ``(1 + ln tf) * idf_w`` with
    ``idf_w = ln((N + 1) / (df_w + 1))`` over the ``N`` fitted texts, ``df_w`` of which hold it; a
    word the corpus never had gets ``ln(N + 1)``. With ``V <= dim`` vocabulary words the vectors
    are exact, one column per word (sorted); with more, they go through a Gaussian random
    projection ``[V, dim]`` drawn from ``seed`` (cosines kept within about ``1 / sqrt(dim)``).

    Vectors are L2-normalised over *all* their words: an unknown word has no column but counts in
    the norm, so the cosine of a query with the catalogue is its exact TF-IDF cosine (for the
    projected form, up to the projection's error). Build with :meth:`fit`; :meth:`save` /
    :meth:`load` keep it beside an index so that new pins and queries are vectorised alike.

    Attributes:
        vocab: the fitted words, sorted (column ``j`` = ``vocab[j]`` when exact).
        idf: float64 ``[V]`` their IDF.
        n_docs: ``N``.
        dim: largest output width.
        seed: seed of the projection.
    """

    vocab: tuple[str, ...]
    idf: np.ndarray
    n_docs: int
    dim: int = 4096
    seed: int = 0

    @classmethod
    def fit(cls, texts: Sequence[str], dim: int = 4096, seed: int = 0) -> "TfidfVectorizer":
        """Vocabulary and IDF of ``texts`` (one document each).

        Raises:
            ValueError: ``dim < 1``.
        """
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        df = Counter(w for t in texts for w in set(words(t)))
        vocab = tuple(sorted(df))
        n = len(texts)
        idf = np.log((n + 1) / (np.array([df[w] for w in vocab], dtype=np.float64) + 1))
        return cls(vocab, idf, n, dim, seed)

    @property
    def width(self) -> int:
        """Output width: ``min(V, dim)``."""
        return min(len(self.vocab), self.dim)

    @functools.cached_property
    def _columns(self) -> dict[str, int]:
        return {w: j for j, w in enumerate(self.vocab)}

    @functools.cached_property
    def _projection(self) -> np.ndarray | None:
        if len(self.vocab) <= self.dim:
            return None
        return np.random.default_rng(self.seed).standard_normal((len(self.vocab), self.dim)).astype(np.float32)

    def transform(self, texts: Sequence[str]) -> Tensor:
        """float32 ``[len(texts), width]`` L2-normalised TF-IDF vectors (see the class docstring);
        zero rows for texts without any word of positive weight."""
        import scipy.sparse as sp

        cols_of, unseen = self._columns, math.log(self.n_docs + 1)
        rows, cols, vals = [], [], []
        norms = np.zeros(len(texts))
        for i, t in enumerate(texts):
            for w, tf in Counter(words(t)).items():
                j = cols_of.get(w)
                v = (1.0 + math.log(tf)) * (self.idf[j] if j is not None else unseen)
                norms[i] += v * v
                if j is not None:
                    rows.append(i), cols.append(j), vals.append(v)
        norms = np.sqrt(norms)
        x = sp.csr_matrix((np.asarray(vals, dtype=np.float64), (np.asarray(rows, dtype=np.int64),
                                                                 np.asarray(cols, dtype=np.int64))),
                          shape=(len(texts), len(self.vocab)))
        safe = np.where(norms > 0, norms, 1.0)
        if self._projection is None:
            return torch.from_numpy(np.asarray(x.toarray() / safe[:, None], dtype=np.float32))
        proj = np.asarray(x.astype(np.float32) @ self._projection, dtype=np.float32)
        # unit norm over the known words, then scaled by their share of the full norm
        known = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        return F.normalize(torch.from_numpy(proj), dim=1) * torch.from_numpy((known / safe).astype(np.float32))[:, None]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (:meth:`from_dict` reads it back)."""
        return {"format": FORMAT, "n_docs": self.n_docs, "dim": self.dim, "seed": self.seed,
                "vocab": list(self.vocab), "idf": self.idf.tolist()}

    @classmethod
    def from_dict(cls, d: Any, source: str = "the data") -> "TfidfVectorizer":
        """The vectorizer of :meth:`to_dict`'s output.

        Raises:
            LexicalFormatError: ``d`` is not such a dict (``source`` names it in the message).
        """
        if not isinstance(d, dict) or d.get("format") != FORMAT or len(d.get("vocab", ())) != len(d.get("idf", (0,))):
            raise LexicalFormatError(f"{source} is not a saved TF-IDF vectorizer of format {FORMAT!r}. Fix: "
                                     f"rewrite it with TfidfVectorizer.save")
        return cls(tuple(d["vocab"]), np.asarray(d["idf"], dtype=np.float64), int(d["n_docs"]), int(d["dim"]),
                   int(d["seed"]))

    def save(self, path: str | Path) -> None:
        """Write JSON to ``path`` atomically (temp file, then rename)."""
        atomic_write_text(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> "TfidfVectorizer":
        """Read a vectorizer written by :meth:`save`.

        Raises:
            LexicalFormatError: the file is missing, not JSON, or of another format.
        """
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise LexicalFormatError(f"no TF-IDF vectorizer at {path}. Fix: write one with "
                                     f"TfidfVectorizer.fit(texts).save(path)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise LexicalFormatError(f"{path} is not a saved TF-IDF vectorizer (not JSON: {e})") from None
        return cls.from_dict(d, str(path))

    def __repr__(self) -> str:
        return f"TfidfVectorizer(words={len(self.vocab)}, docs={self.n_docs}, width={self.width})"


def tfidf_embeddings(graph: PinBoardGraph, fields: list[str] | None = None, dim: int = 4096,
                     seed: int = 0) -> Tensor:
    """TF-IDF vectors of each pin's words: :class:`TfidfVectorizer` fitted on the pins' texts
    (:func:`pin_texts`) and applied to them. Cosine = TF-IDF cosine (exact with at most ``dim``
    distinct words, else within about ``1 / sqrt(dim)``).

    Returns:
        float32 ``[N_pins, min(V, dim)]`` on CPU, L2-normalised; zero rows for pins without any word (or
        whose words all weigh 0: held by every pin).

    Raises:
        ValueError: the pins have no text feature, or ``dim < 1``.
    """
    texts = pin_texts(graph, fields)
    return TfidfVectorizer.fit(texts, dim=dim, seed=seed).transform(texts)


def hybrid_embeddings(embeddings: Tensor, lexical: Tensor, weight: float = 0.5) -> Tensor:
    """Join learned and lexical embeddings so that cosines mix with ``weight``.

    Rows are L2-normalised first; the output ``[sqrt(1 - w) * emb, sqrt(w) * lex]`` has unit norm
    for rows where both parts are nonzero, and its inner products are
    ``(1 - w) * cos(emb) + w * cos(lex)``. A row without lexical vector (no text) keeps its
    learned part only, scaled by ``sqrt(1 - w)``: its cosines to other pins are ``(1 - w) * cos(emb)``.

    Args:
        embeddings: float ``[N, E]`` learned pin embeddings.
        lexical: float ``[N, L]`` lexical vectors of the same pins (e.g. :func:`tfidf_embeddings`).
        weight: ``w`` in ``[0, 1]``: 0 is the learned embedding alone, 1 the lexical one.

    Returns:
        float32 ``[N, E + L]`` on the device of ``embeddings``.

    Raises:
        ValueError: the row counts differ, or ``weight`` is outside ``[0, 1]``.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    if embeddings.dim() != 2 or lexical.dim() != 2 or embeddings.shape[0] != lexical.shape[0]:
        raise ValueError(f"embeddings {tuple(embeddings.shape)} and lexical {tuple(lexical.shape)} must be "
                         f"[N, E] and [N, L] for the same N pins")
    e = F.normalize(embeddings.float(), dim=1) * math.sqrt(1.0 - weight)
    x = F.normalize(lexical.float().to(e.device), dim=1) * math.sqrt(weight)
    return torch.cat([e, x], dim=1)


#: File of a saved hybrid index holding its TF-IDF vectorizer, weight and text fields.
LEXICAL_FILE = "lexical.json"


def saved_lexical_weight(index_dir: str | Path) -> float:
    """The TF-IDF weight of a saved hybrid index (0.0 for a learned-only one)."""
    saved = read_saved_lexical(Path(index_dir))
    return saved[1] if saved else 0.0


def read_saved_lexical(index_dir: Path) -> tuple[TfidfVectorizer, float, list[str]] | None:
    """The ``(vectorizer, weight, fields)`` saved with a hybrid index, or None for a learned-only one."""
    f = index_dir / LEXICAL_FILE
    if not f.exists():
        return None
    try:
        d = json.loads(f.read_text())
        return TfidfVectorizer.from_dict(d["vectorizer"], str(f)), float(d["weight"]), list(d["fields"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise IndexFormatError(f"{f} of the saved hybrid index cannot be read ({e}). Fix: rebuild the index "
                               f"(boardgraph index RUN --lexical-weight W)") from None
