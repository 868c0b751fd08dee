"""Applications on a trained run: similar pins, text / image search, content matching, cold-start
placement of a new pin on boards, and board completion ("complete the look").

::

    search = PinSearch.from_run("runs/demo/neighbor")            # embeds the pins, builds a flat index
    search.similar("p000042", k=10)                                # DataFrame: rank, pin_id, score, title, ...
    search.search_by_text("rust linen dress", k=5, filter={"category": "dress"})
    search.match_content("photo.jpg", k=5, filter={"brand": ["Cobble", "Elowen"]})
    placed = search.place_new_pin(text="navy silk blouse", metadata={"brand": "Kestrel"})
    placed.boards, placed.pins                                     # suggested boards, nearest pins
    search.complete_the_look("b0007", k=10)                        # pins not on the board, best first

Every query is embedded by the run's encoder from *content only* (whatever subset of image, text
and metadata is given), then scored by cosine similarity: against the catalogue pins through an
:class:`~boardgraph.inference.index.EmbeddingIndex`, and against boards by the run's board query
(:mod:`~boardgraph.inference.board_query`): each board's normalised mean member-pin embedding, or
attention over its member pins (``neighbor_cf``). The catalogue is the run's graph by default; any graph whose pin ids
match the index rows can serve (e.g. a larger production catalogue embedded by the same model).

**Hybrid search** (``PinSearch.from_run(..., lexical_weight=0.5)``): the catalogue vectors are
``[sqrt(1 - w) * learned, sqrt(w) * tfidf]`` (:func:`~boardgraph.inference.lexical.hybrid_embeddings`), so
every score is ``(1 - w) * cos(learned) + w * cos(TF-IDF of the texts)``; queries with text get
their TF-IDF vector from the catalogue's vocabulary (:class:`~boardgraph.inference.lexical.TfidfVectorizer`),
queries without text only the learned part. The index compares unit vectors, so a catalogue pin
without text scores ``sqrt(1 - w) * cos(learned)``. Exact words (brands, series titles) then
count, as in a search engine; the README's results measure the gain (``<model>+tfidf``).

Serving note: the torch and faiss-cpu wheels each bundle their own OpenMP runtime. In one process
that alternates encoder and index calls, their spinning idle threads contend for the cores; with 2
threads ``place_new_pin`` measured ~20x slower (``benchmarks/retrieval.py``). Start serving
processes with ``OMP_WAIT_POLICY=PASSIVE`` in the environment (this module does not change it).
"""
from __future__ import annotations

import difflib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Hashable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from boardgraph.encoders import truncate_embedding
from boardgraph.graph import MEMBER, PinBoardGraph
from boardgraph.graph.errors import BoardgraphError, UnknownIdError
from boardgraph.inference.board_query import attention_complete, attention_to_boards
from boardgraph.inference.catalogue import catalogue_index, display_columns, filter_columns
from boardgraph.inference.embed import board_centroids
from boardgraph.inference.index import EmbeddingIndex, IndexConfig, IndexFormatError
from boardgraph.inference.lexical import (LEXICAL_FILE, TfidfVectorizer, hybrid_embeddings, pin_texts,
                                          read_saved_lexical, saved_lexical_weight)
from boardgraph.inference.run import InferenceInputError, NoContentError, TrainedRun, load_run

__all__ = ["PinSearch", "Placement", "EmptyBoardError", "catalogue_index", "filter_columns", "display_columns",
           "saved_lexical_weight"]

log = logging.getLogger(__name__)
#: Up to this many ids, an unknown id gets "did you mean" suggestions (difflib is O(n)).
SUGGEST_MAX_IDS = 50_000


class EmptyBoardError(BoardgraphError, ValueError):
    """A board has no pins, so it has no embedding to search with."""


@dataclass
class Placement:
    """Where a new pin belongs (:meth:`PinSearch.place_new_pin`).

    Attributes:
        boards: suggested boards, best first: ``rank`` (1-based), ``board_id``, ``score`` (cosine
            to the board's mean pin embedding), ``size`` (pins on the board), then the boards' text
            columns (e.g. ``board_title``).
        pins: the nearest catalogue pins, as :meth:`PinSearch.similar` returns them.
        embedding: float32 ``[D]`` the new pin's query vector (the index's width: its learned embedding,
            then the TF-IDF part on a hybrid index).
    """

    boards: pd.DataFrame
    pins: pd.DataFrame
    embedding: Tensor


class PinSearch:
    """Search and placement over a catalogue of pins embedded by a trained run.

    Args:
        run: the trained model (its encoder embeds the queries).
        embeddings: float ``[N, D]`` embeddings of the catalogue pins (row ``i`` = pin index ``i``),
            ``D <= run.embed_dim`` (a shorter Matryoshka prefix works: queries are truncated to it).
        index: an index over the same rows, ids = the catalogue's pin ids in index order.
        catalogue: the pins, boards and memberships searched (default ``run.graph``).
        columns: pin feature columns shown with results (default :func:`display_columns`).
        lexical: the TF-IDF vectorizer of a hybrid index (None: learned embeddings only); the last
            ``lexical.width`` columns of ``embeddings`` are then the TF-IDF part.
        lexical_weight: ``w`` of the hybrid (see the module docstring).
        lexical_fields: the pin text features the TF-IDF part reads (default: every text feature).

    Raises:
        IndexFormatError: the index, the embeddings and the catalogue disagree (row counts, width,
            ids), or the index holds other vectors than ``embeddings`` (a stale index).
    """

    def __init__(self, run: TrainedRun, embeddings: Tensor | np.ndarray, index: EmbeddingIndex,
                 catalogue: PinBoardGraph | None = None, columns: Sequence[str] | None = None,
                 lexical: TfidfVectorizer | None = None, lexical_weight: float = 0.0,
                 lexical_fields: Sequence[str] | None = None) -> None:
        self.run = run
        self.lexical, self.lexical_weight = lexical, float(lexical_weight)
        if lexical is not None and not 0.0 < self.lexical_weight <= 1.0:
            raise InferenceInputError(f"lexical_weight must be in (0, 1] with a TF-IDF vectorizer, got {lexical_weight}")
        self.catalogue = catalogue if catalogue is not None else run.graph
        self.embeddings = torch.as_tensor(embeddings)
        self.index = index
        self.columns = list(display_columns(self.catalogue) if columns is None else columns)
        n = self.catalogue.num_nodes("pin")
        if len(index) != n or len(self.embeddings) != n:
            raise IndexFormatError(f"the catalogue has {n} pins, the index {len(index)} rows and the embeddings "
                                   f"{len(self.embeddings)}; rebuild the index from these embeddings "
                                   f"(boardgraph index RUN_DIR)")
        lex_width = lexical.width if lexical is not None else 0
        self.learned_dim = index.dim - lex_width
        if self.embeddings.shape[1] != index.dim or not 1 <= self.learned_dim <= run.embed_dim:
            raise IndexFormatError(f"the index holds {index.dim}-d vectors, the embeddings are "
                                   f"{self.embeddings.shape[1]}-d, the model {run.embed_dim}-d and the TF-IDF part "
                                   f"{lex_width}-d; rebuild the index from the model's embeddings")
        self.lexical_fields = list(lexical_fields if lexical_fields is not None
                                   else self.catalogue.features("pin").names("text"))
        if not np.array_equal(index.ids, self.catalogue.ids("pin")):
            raise IndexFormatError("the index's ids are not the catalogue's pin ids in pin-index order; "
                                   "rebuild it with catalogue_index(graph, embeddings)")
        self._check_same_vectors()
        self._boards: tuple[Tensor, Tensor] | None = None
        #: how boards score pins (the run's ``objective.board_query``: centroid or attention)
        self.board_query, self.tau = run.config.objective.query(), run.config.objective.board_query_tau
        self._unit: Tensor | None = None

    # ------------------------------------------------------------------------------ construction
    @classmethod
    def from_run(cls, run_dir: str | Path | TrainedRun, index_dir: str | Path | None = None, kind: str = "flat",
                 device: torch.device | str = "cpu", dim: int | None = None,
                 config: IndexConfig | None = None, lexical_weight: float = 0.0,
                 lexical_dim: int = 1024) -> "PinSearch":
        """Load a run, embed its graph's pins (cached in ``<run>/embeddings.npy``) and index them.

        Args:
            run_dir: a run directory (or a loaded :class:`~boardgraph.inference.run.TrainedRun`).
            index_dir: a saved index (``boardgraph index`` / :meth:`EmbeddingIndex.save`) to use;
                None builds one of ``kind`` in memory.
            kind: ``"flat"``, ``"hnsw"`` or ``"ivf"`` when building.
            device: where the encoder runs.
            dim: Matryoshka prefix to index (default: the full width; a saved index sets its own).
            config: index parameters when building.
            lexical_weight: > 0 builds a **hybrid** index (module docstring): TF-IDF of the pins'
                text features, fitted on the catalogue, weighted ``w`` against the learned
                embedding (0.5 weighs them alike). A saved hybrid index (:meth:`save_index`)
                carries its vectorizer and weight and is loaded as such; with ``index_dir``, a
                nonzero ``lexical_weight`` must match the saved one.
            lexical_dim: largest width of the TF-IDF part (a larger vocabulary is randomly
                projected to it; :class:`~boardgraph.inference.lexical.TfidfVectorizer`).

        Raises:
            InferenceInputError: ``lexical_weight`` outside ``[0, 1]`` or not the saved index's, or
                the pins have no text feature.
        """
        if not 0.0 <= lexical_weight <= 1.0:
            raise InferenceInputError(f"lexical_weight must be in [0, 1], got {lexical_weight}")
        run = run_dir if isinstance(run_dir, TrainedRun) else load_run(run_dir, device=device)
        saved = read_saved_lexical(Path(index_dir)) if index_dir is not None else None
        if index_dir is not None and lexical_weight > 0 and (saved is None or saved[1] != lexical_weight):
            have = f"a hybrid at lexical_weight {saved[1]}" if saved else "learned embeddings only"
            raise InferenceInputError(f"the saved index {index_dir} holds {have}, not lexical_weight {lexical_weight}. "
                                      f"Fix: rebuild it (boardgraph index RUN --lexical-weight {lexical_weight}) or "
                                      f"drop lexical_weight")
        lexical, fields, texts = None, None, None
        if saved is not None:
            lexical, lexical_weight, fields = saved
        elif lexical_weight > 0:
            fields = run.graph.features("pin").names("text")
            if not fields:
                raise InferenceInputError("lexical_weight needs pin text features and this catalogue has none. "
                                          "Fix: use lexical_weight=0")
        if fields is not None:
            texts = pin_texts(run.graph, fields)
            if lexical is None:
                lexical = TfidfVectorizer.fit(texts, dim=lexical_dim)
        index = EmbeddingIndex.load(index_dir) if index_dir is not None else None
        if index is not None:  # a saved index sets the learned width
            dim = index.dim - (lexical.width if lexical is not None else 0)
        emb = run.embed_pins(dim=dim)
        if lexical is not None:
            emb = hybrid_embeddings(emb, lexical.transform(texts), lexical_weight)
        if index is None:
            index = catalogue_index(run.graph, emb, kind=kind, config=config)
        return cls(run, emb, index, lexical=lexical, lexical_weight=lexical_weight if lexical is not None else 0.0,
                   lexical_fields=fields)

    def save_index(self, path: str | Path, overwrite: bool = True) -> None:
        """Save the index atomically (:meth:`EmbeddingIndex.save`); a hybrid index also stores its
        TF-IDF vectorizer, weight and text fields (``lexical.json``), so that :meth:`from_run` with
        ``index_dir=path`` serves the same hybrid. ``overwrite=False`` refuses an index already
        saved at ``path``; anything else there is refused whatever ``overwrite`` says."""
        extra = None
        if self.lexical is not None:
            extra = {LEXICAL_FILE: json.dumps({"weight": self.lexical_weight, "fields": self.lexical_fields,
                                               "vectorizer": self.lexical.to_dict()})}
        self.index.save(path, attachments=extra, overwrite=overwrite)

    def _check_same_vectors(self) -> None:
        """Sampled rows must find themselves (score 1): catches an index built from other embeddings.
        A majority suffices, since an approximate index may miss a few; a stale one finds none."""
        n = len(self.index)
        rows = np.unique(np.linspace(0, n - 1, num=min(n, 8)).astype(np.int64))
        got = self.index.search(self.embeddings[rows].float(), k=1).scores[:, 0]
        if not (got > 1 - 1e-3).mean() > 0.5:
            raise IndexFormatError("the index holds other vectors than these embeddings (it is stale: the run was "
                                   "retrained or re-embedded since); rebuild it (boardgraph index RUN_DIR)")

    # ------------------------------------------------------------------------------------- pins
    @property
    def dim(self) -> int:
        """Width ``D`` of the indexed vectors (learned part + TF-IDF part of a hybrid index)."""
        return self.index.dim

    def query_vector(self, embedding: Tensor, text: str | None = None) -> Tensor:
        """``[1, D]`` index query of a learned ``embedding`` (``[E]`` or ``[1, E]``, truncated to the
        index's learned width) and, for a hybrid index, the TF-IDF of ``text`` (none: zeros)."""
        q = truncate_embedding(embedding.reshape(1, -1).float(), self.learned_dim)
        if self.lexical is None:
            return q
        w = self.lexical_weight
        lex = self.lexical.transform([text or ""]) * w ** 0.5
        return torch.cat([q * (1.0 - w) ** 0.5, lex], dim=1)

    def similar(self, pin_id: Hashable, k: int = 10, filter: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """The ``k`` catalogue pins most similar to pin ``pin_id`` (itself excluded).

        Returns:
            DataFrame with ``rank`` (1-based), ``pin_id``, ``score`` (cosine) and the display
            columns, best first; fewer than ``k`` rows when fewer pins pass ``filter``.

        Raises:
            UnknownIdError: ``pin_id`` is not a catalogue pin (close ids are suggested).
            UnknownFilterColumnError: ``filter`` names a column the index has no metadata for.
        """
        row, pid = self._pin_row(pin_id)
        return self._search(self.embeddings[row:row + 1].float(), k, filter, exclude=[pid])

    def search_embedding(self, embedding: Tensor, k: int = 10, filter: Mapping[str, Any] | None = None,
                         exclude: Sequence[Hashable] | None = None, text: str | None = None) -> pd.DataFrame:
        """Pins nearest to a query ``embedding`` (``[E]`` or ``[1, E]`` of the run's encoder; a
        longer one is truncated to the index width) and, on a hybrid index, ``text``'s TF-IDF
        (:meth:`query_vector`). Same columns as :meth:`similar`."""
        return self._search(self.query_vector(embedding, text), k, filter, exclude)

    def search_by_text(self, text: str, k: int = 10, filter: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Pins matching a free-text query (embedded as a text-only pin).

        Raises:
            NoContentError: ``text`` is empty, or the model has no text tower.
        """
        if not isinstance(text, str) or not text.strip():
            raise NoContentError(f"the text query {text!r} is empty. Fix: give some words, e.g. 'navy silk blouse'")
        return self.search_embedding(self._embed_query(text=text), k, filter, text=text)

    def search_by_image(self, image: Any, k: int = 10, filter: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Pins matching an image (path, bytes, PIL image or uint8 array; embedded as an image-only pin).

        Raises:
            ImageReadError: the image cannot be read (the message names it).
            NoContentError: no image was given, or the model has no image tower.
        """
        if image is None:
            raise NoContentError("no image was given. Fix: pass a path, bytes, a PIL image or a uint8 array")
        return self.search_embedding(self._embed_query(image=image), k, filter)

    def match_content(self, image: Any, k: int = 10, filter: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Catalogue pins matching a user's photo, optionally restricted to part of the catalogue
        (``filter={"category": "bag", "brand": ["Cobble", "Elowen"]}``). Same as
        :meth:`search_by_image`; the filter is applied inside the index, so exactly the ``k`` best
        allowed pins come back (fewer only when fewer pins are allowed)."""
        return self.search_by_image(image, k, filter)

    # ----------------------------------------------------------------------------------- boards
    def unit_embeddings(self) -> Tensor:
        """float32 ``[N, D]`` the catalogue vectors, L2-normalised (for attention board queries);
        computed once, then cached."""
        if self._unit is None:
            self._unit = F.normalize(self.embeddings.float(), dim=1)
        return self._unit

    def board_embeddings(self) -> tuple[Tensor, Tensor]:
        """``(embeddings [B, D], sizes [B] int64)``: each board's L2-normalised mean of its member
        pins' normalised embeddings (zero rows for empty boards; :func:`~boardgraph.inference.embed.board_centroids`)
        and its pin count. Computed once, then cached."""
        if self._boards is None:
            self._boards = (board_centroids(self.embeddings, self.catalogue),
                            self.catalogue.degree(("board", "has", "pin")).long())
        return self._boards

    def place_new_pin(self, image: Any = None, text: str | None = None, metadata: Mapping[str, Any] | None = None,
                      k_boards: int = 5, k_pins: int = 10) -> Placement:
        """Cold start: suggest boards and neighbours for a pin that is not in the catalogue.

        The pin is embedded from its content alone, any subset of: ``image`` (path, bytes, PIL image
        or uint8 array), ``text`` (the first text feature, e.g. the title) and ``metadata``
        (further fields by feature name: ``{"brand": "Cobble", "price": 49.0}``, or another text
        field such as ``"description"``). Boards are scored by the run's board query
        (:mod:`~boardgraph.inference.board_query`): the cosine to their normalised mean member-pin
        embedding (:meth:`board_embeddings`), or attention over their pins; the nearest pins come
        from the index.

        Raises:
            NoContentError: nothing usable was given. ImageReadError: the image cannot be read.
            SchemaError: ``metadata`` names a field the model does not read.
            InferenceInputError: ``k_boards`` or ``k_pins`` is below 1.
        """
        if k_boards < 1 or k_pins < 1:
            raise InferenceInputError(f"k_boards and k_pins must be >= 1, got {k_boards} and {k_pins}")
        q = self._embed_query(image=image, text=text, metadata=metadata)
        words = [text or ""] + [str(v) for f, v in (metadata or {}).items() if f in self.lexical_fields]
        q = self.query_vector(q, " ".join(w for w in words if w).strip() or None)[0]
        emb, sizes = self.board_embeddings()
        if self.board_query == "attention":   # the board pins nearest to the new pin count most
            indptr, indices, _ = self.catalogue.csr(self.catalogue.reverse_of(MEMBER))
            scores = attention_to_boards(self.unit_embeddings() @ F.normalize(q, dim=0), indptr, indices, self.tau)
        else:
            scores = emb @ q
        scores = scores.masked_fill(sizes == 0, float("-inf"))
        top = scores.topk(min(k_boards, int((sizes > 0).sum()))).indices
        boards = pd.DataFrame({"rank": np.arange(1, len(top) + 1), "board_id": self.catalogue.ids("board", top),
                               "score": scores[top].numpy().astype(np.float32), "size": sizes[top].numpy()})
        bf = self.catalogue.features("board")
        for c in bf.names("text"):
            boards[c] = bf.table[c].iloc[top.numpy()].to_numpy()
        return Placement(boards=boards, pins=self._search(q[None], k_pins, None, None), embedding=q)

    def complete_the_look(self, board_id: Hashable, k: int = 10,
                          filter: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Pins not on board ``board_id``, ranked by the run's board query: the cosine to the
        board's mean pin embedding, or attention over its pins (:meth:`_attention_look`). Same
        columns as :meth:`similar`.

        Raises:
            UnknownIdError: ``board_id`` is not a catalogue board (close ids are suggested).
            EmptyBoardError: the board has no pins.
        """
        b = self._board_row(board_id)
        indptr, indices, _ = self.catalogue.csr(self.catalogue.reverse_of(MEMBER))
        members = indices[indptr[b]:indptr[b + 1]]
        if members.numel() == 0:
            raise EmptyBoardError(f"board {board_id!r} has no pins to complete. Fix: pick a board with pins")
        exclude = list(self.catalogue.ids("pin", members))
        if self.board_query == "attention":
            return self._attention_look(members, k, filter, exclude)
        emb, _ = self.board_embeddings()
        return self._search(emb[b:b + 1], k, filter, exclude=exclude)

    def _attention_look(self, members: Tensor, k: int, filter: Mapping[str, Any] | None,
                        exclude: list[Hashable]) -> pd.DataFrame:
        """:meth:`complete_the_look` by attention over the board's pins (:func:`attention_complete`)."""
        rows, scores = attention_complete(self.index, self.unit_embeddings(), members, k, self.tau, filter=filter,
                                          exclude_ids=exclude)
        return self._frame(rows.numpy(), scores.numpy())

    # ---------------------------------------------------------------------------------- helpers
    def _embed_query(self, image: Any = None, text: str | None = None,
                     metadata: Mapping[str, Any] | None = None) -> Tensor:
        b = self.run.builder
        pin: dict[str, Any] = dict(metadata or {})
        if text is not None:
            if b.tokenize is None:
                raise NoContentError("this model has no text tower, so it cannot use text. Fix: query with an "
                                     "image or metadata")
            pin[b.text_fields[0]] = text
        if image is not None:
            if b.image_field is None:
                raise NoContentError("this model has no image tower, so it cannot use images. Fix: query with "
                                     "text or metadata")
            pin[b.image_field] = image
        if not pin:
            raise NoContentError("nothing was given to embed. Fix: pass an image, a text or metadata")
        return self.run.embed_new([pin])[0]

    def _search(self, q: Tensor, k: int, filter: Mapping[str, Any] | None,
                exclude: Sequence[Hashable] | None) -> pd.DataFrame:
        res = self.index.search(q, k, filter=filter, exclude_ids=exclude or None)
        ok = res.rows[0] >= 0
        return self._frame(res.rows[0][ok], res.scores[0][ok])

    def _frame(self, rows: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
        """The result frame of catalogue pin ``rows`` with their ``scores``, best first."""
        out = pd.DataFrame({"rank": np.arange(1, len(rows) + 1), "pin_id": self.catalogue.ids("pin", rows),
                            "score": np.asarray(scores, dtype=np.float32)})
        if self.columns and len(rows):
            table = self.catalogue.features("pin").table
            for c in self.columns:
                out[c] = table[c].iloc[rows].to_numpy()  # iloc: O(k), not a copy of the whole column
        elif self.columns:
            for c in self.columns:
                out[c] = pd.Series([], dtype=object)
        return out

    def _pin_row(self, pin_id: Hashable) -> tuple[int, Hashable]:
        return self._lookup("pin", pin_id)

    def _board_row(self, board_id: Hashable) -> int:
        return self._lookup("board", board_id)[0]

    def _lookup(self, ntype: str, ext: Hashable) -> tuple[int, Hashable]:
        """Index of external id ``ext`` of ``ntype``; a string of digits also matches an int id."""
        g = self.catalogue
        candidates = [ext]
        if isinstance(ext, str) and ext.strip().lstrip("-").isdigit():
            candidates.append(int(ext))
        for c in candidates:
            i = int(g.index(ntype, [c], missing="ignore")[0])
            if i >= 0:
                return i, g.ids(ntype, [i])[0]
        ids = g.ids(ntype)
        hint = ""
        if len(ids) <= SUGGEST_MAX_IDS:
            names = [str(x) for x in ids]
            key = str(ext).strip().lower()
            close = [x for x in names if x.lower() == key][:3] or \
                difflib.get_close_matches(str(ext), names, n=3, cutoff=0.6)
            hint = f" (did you mean {', '.join(repr(c) for c in close)})" if close else ""
        raise UnknownIdError(f"unknown {ntype} id {ext!r}{hint}", column=f"{ntype}_id",
                             fix=f"use an id of the catalogue's {len(ids)} {ntype}s, e.g. {ids[0]!r}")

    def __repr__(self) -> str:
        return (f"PinSearch(run={str(self.run.out_dir)!r}, pins={len(self.index)}, "
                f"boards={self.catalogue.num_nodes('board')}, index={self.index!r})")
