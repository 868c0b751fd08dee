"""Lexical representations of pins: TF-IDF vectors of their words, and hybrid (learned + lexical) embeddings.

A learned embedding of 64-256 dimensions cannot hold the identity of every word of a catalogue:
brand names, series titles, model numbers. Search engines match those exactly, and in
collections curated by people they carry much of the signal (an outfit of one designer, a bundle
of one game series). :func:`tfidf_embeddings` gives the lexical view; :func:`hybrid_embeddings`
joins it to a learned embedding so that one inner product scores both::

    cos(hybrid_i, hybrid_j) = (1 - w) * cos(emb_i, emb_j) + w * cos(lex_i, lex_j)

which is what hybrid retrieval (dense + sparse) does, in a form any inner-product index serves.
"""
from __future__ import annotations

import math
import re
from collections import Counter

import torch
import torch.nn.functional as F
from torch import Tensor

from boardgraph.graph import PinBoardGraph

__all__ = ["pin_texts", "tfidf_embeddings", "hybrid_embeddings"]


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


def tfidf_embeddings(graph: PinBoardGraph, fields: list[str] | None = None, dim: int = 4096,
                     seed: int = 0) -> Tensor:
    """TF-IDF vectors of each pin's words, L2-normalised; cosine = TF-IDF cosine.

    Words are the lowercased runs of letters and digits of the pin's text fields (joined). A word
    ``w`` appearing ``tf`` times weighs ``(1 + ln tf) * ln((N + 1) / (df_w + 1))`` over the ``N``
    pins, ``df_w`` of which hold it. With ``V <= dim`` distinct words the vectors are exact, one
    column per word (sorted); with more, they are multiplied by a Gaussian random projection
    ``[V, dim]`` (seeded) and renormalised, which keeps cosines within about ``1 / sqrt(dim)``.

    Args:
        graph: the pins' text comes from ``graph.features("pin")``.
        fields: text features to use (default: every text feature).
        dim: largest output width.
        seed: seed of the random projection.

    Returns:
        float32 ``[N_pins, min(V, dim)]`` on CPU, L2-normalised; zero rows for pins without any word (or
        whose words all weigh 0: held by every pin).

    Raises:
        ValueError: the pins have no text feature, or ``dim < 1``.
    """
    import numpy as np
    import scipy.sparse as sp

    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    docs = [Counter(_WORD.findall(t.lower())) for t in pin_texts(graph, fields)]
    n = len(docs)
    df = Counter(w for d in docs for w in d)
    vocab = {w: j for j, w in enumerate(sorted(df))}
    rows = np.repeat(np.arange(n), [len(d) for d in docs])
    cols = np.fromiter((vocab[w] for d in docs for w in d), dtype=np.int64, count=len(rows))
    vals = np.fromiter(((1.0 + math.log(tf)) * math.log((n + 1) / (df[w] + 1)) for d in docs for w, tf in d.items()),
                       dtype=np.float64, count=len(rows))
    x = sp.csr_matrix((vals, (rows, cols)), shape=(n, len(vocab)), dtype=np.float32)
    if len(vocab) <= dim:
        out = torch.from_numpy(x.toarray())
    else:
        proj = np.random.default_rng(seed).standard_normal((len(vocab), dim)).astype(np.float32)
        out = torch.from_numpy(np.asarray(x @ proj, dtype=np.float32))
    return F.normalize(out, dim=1)


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
