"""A FAISS index over pin embeddings, with external ids, metadata filters and atomic save/load.

Scores are inner products of L2-normalised vectors (cosine similarity): embeddings are normalised
when the index is built and queries when it is searched.

Kinds:

* ``"flat"``: exact search (``IndexFlatIP``). Filtered and excluded searches are exact too.
* ``"hnsw"``: ``IndexHNSWFlat`` graph search, for large catalogues.
* ``"ivf"``: ``IndexIVFFlat`` (inverted lists over k-means cells), for large catalogues.
* ``"ivfpq"``: ``IndexIVFPQ``: the cells hold product-quantized codes (``pq_m`` bytes a vector),
  and each search re-ranks ``rerank x k`` candidates by the exact vectors, which stay on disk
  (``vectors.npy``, memory-mapped once saved). :meth:`EmbeddingIndex.from_shards` builds one from
  embedding shards without holding all the vectors.

Approximate kinds trade recall for speed through one search-time knob (HNSW ``ef_search``, IVF
``nprobe``). :meth:`EmbeddingIndex.tune` sets it from measurements: the smallest value whose
Recall@k against exact search reaches a target on sample queries.

Filters (``filter={"category": ["shoes", "bags"]}``) are applied inside FAISS through an
``IDSelector``, so only allowed rows are ever returned. For the approximate kinds a restrictive
filter can starve the graph / the probed cells of results; when the allowed rows are few
(``<= exact_fallback`` of them) or a query comes back short, that query is answered by exact search
over the allowed rows instead.

This module holds :class:`EmbeddingIndex` (build, filters, search). Its parts live beside it and
are re-exported here, so ``boardgraph.inference.index`` stays the one import path:

* :mod:`~boardgraph.inference.index_types`: the errors, :class:`IndexConfig`, :class:`SearchResult`;
* :mod:`~boardgraph.inference.index_io`: the saved folder (:meth:`EmbeddingIndex.save` / ``load``);
* :mod:`~boardgraph.inference.index_tuning`: :class:`TuneResult` and the recall sweep of
  :meth:`EmbeddingIndex.tune`.

They import one another one way (types <- io, types <- tuning) and never this module.
"""
from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Hashable, Iterable, Mapping, Sequence

import faiss
import numpy as np
import pandas as pd
import torch

from boardgraph.graph.errors import DuplicateIdError, UnknownIdError
from boardgraph.inference.index_build import code_bytes, index_from_shards, new_faiss_index
from boardgraph.inference.index_io import INDEX_ARTEFACT, load_index, save_index
from boardgraph.inference.index_results import drop_excluded, first_k, rerank, stored_vectors
from boardgraph.inference.index_tuning import TuneResult, tune_index, tune_reranked, warn_if_unreached
from boardgraph.inference.shards import EmbeddingShards
from boardgraph.inference.index_types import (KINDS, DimensionMismatchError, EmptyIndexError, IndexConfig,
                                              IndexFormatError, IndexInputError, SearchResult,
                                              UnknownFilterColumnError, normalise, to_numpy_2d)

__all__ = [
    "IndexInputError",
    "DimensionMismatchError",
    "EmptyIndexError",
    "UnknownFilterColumnError",
    "IndexFormatError",
    "INDEX_ARTEFACT",
    "IndexConfig",
    "SearchResult",
    "TuneResult",
    "EmbeddingIndex",
]


class EmbeddingIndex:
    """Cosine-similarity search over pin embeddings with external ids and metadata filters.

    Build with :meth:`build`, query with :meth:`search`, persist with :meth:`save` / :meth:`load`.

    Example::

        index = EmbeddingIndex.build(emb, ids=pin_ids, kind="hnsw", metadata=pins[["category"]])
        res = index.search(query_emb, k=10, filter={"category": "shoes"}, exclude_ids=["p1"])
    """

    def __init__(self, index: faiss.Index, ids: np.ndarray, metadata: pd.DataFrame | None,
                 config: IndexConfig, vectors: np.ndarray | None = None) -> None:
        """Wrap a built FAISS index; prefer :meth:`build` or :meth:`load`. ``vectors`` ``[N, D]``:
        the exact normalised vectors of an ivfpq index (an array or a memory map)."""
        self._index = index
        self._vectors = vectors
        self._ids = ids
        self._metadata = metadata
        self.config = config
        self._row_of = pd.Index(ids)
        if not self._row_of.is_unique:
            dup = self._row_of[self._row_of.duplicated()].unique()[:5].tolist()
            raise DuplicateIdError(f"ids {dup} appear more than once", column="id",
                                   fix="give every embedding a unique external id")

    # ------------------------------------------------------------------------------------- build
    @classmethod
    def build(cls, embeddings: np.ndarray | torch.Tensor, ids: Sequence[Hashable] | np.ndarray,
              kind: str | None = None, metadata: pd.DataFrame | None = None,
              config: IndexConfig | None = None) -> "EmbeddingIndex":
        """Build an index over ``embeddings``.

        Args:
            embeddings: ``[N, D]`` float (numpy or torch, any device); L2-normalised here.
            ids: ``[N]`` unique external ids (str or int), aligned with the rows.
            kind: ``"flat"`` (exact), ``"hnsw"``, ``"ivf"`` or ``"ivfpq"``; ``None`` takes
                ``config.kind`` (``"flat"`` by default).
            metadata: optional DataFrame with ``N`` rows aligned with ``embeddings`` (its index is
                ignored), e.g. a ``category`` column to filter on.
            config: build/search parameters; defaults to :class:`IndexConfig`.

        Raises:
            EmptyIndexError: ``N == 0``.
            IndexInputError: ``kind`` unknown, ``ids`` / ``metadata`` length differs from ``N``,
                or a row is zero / not finite.
            DuplicateIdError: an id appears twice.
        """
        cfg = config or IndexConfig()
        kind = cfg.kind if kind is None else kind
        if kind not in KINDS:
            raise IndexInputError(f"unknown index kind {kind!r}; use one of {list(KINDS)}")
        cfg = IndexConfig(**{**asdict(cfg), "kind": kind})
        x = to_numpy_2d(embeddings, "embeddings")
        n, d = x.shape
        if n == 0:
            raise EmptyIndexError("cannot build an index over 0 embeddings; pass at least one row")
        x = normalise(x, "embeddings")
        ids_arr = np.asarray(ids)
        if ids_arr.ndim != 1 or ids_arr.shape[0] != n:
            raise IndexInputError(f"ids has shape {ids_arr.shape} but embeddings has {n} rows; "
                                  f"pass one external id per row")
        if metadata is not None:
            if not isinstance(metadata, pd.DataFrame) or len(metadata) != n:
                got = len(metadata) if hasattr(metadata, "__len__") else "?"
                raise IndexInputError(
                    f"metadata must be a DataFrame with {n} rows aligned with embeddings, got "
                    f"{type(metadata).__name__} with {got} rows")
            metadata = metadata.reset_index(drop=True)
        index, cfg = new_faiss_index(cfg, d, n)
        if not index.is_trained:
            index.train(x)
        if cfg.kind == "ivf":
            index.make_direct_map()  # lets reconstruct_batch serve the exact fallback
        index.add(x)
        return cls(index, ids_arr, metadata, cfg, vectors=x if cfg.kind == "ivfpq" else None)

    @classmethod
    def from_shards(cls, shards: str | Path | EmbeddingShards, path: str | Path, config: IndexConfig | None = None,
                    train_size: int = 100_000, overwrite: bool = True) -> "EmbeddingIndex":
        """Build an ivfpq index over embedding shards (:func:`~boardgraph.inference.shards.embed_pins_sharded`)
        and save it at ``path``, never holding all the vectors: the cells and codebooks are trained
        on ``train_size`` sampled vectors, then the shards are added one by one. In memory: the
        codes (``config.pq_m`` bytes a vector, plus 8 for FAISS' list ids) and the external ids;
        on disk beside them: the exact vectors (``4 D`` bytes a vector), read for re-ranking.

        Returns:
            The saved index, loaded (its vectors memory-mapped).

        Raises:
            ShardsFormatError: ``shards`` is not a complete shard folder.
            OutputExistsError: ``path`` may not be written (checked first).
        """
        index_from_shards(shards, path, config, train_size, overwrite)
        return cls.load(path)

    # ---------------------------------------------------------------------------------- accessors
    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        """Embedding dimension ``D``."""
        return int(self._index.d)

    @property
    def code_bytes(self) -> int:
        """Bytes the index stores per vector: the PQ code (ivfpq), else the float32 vector."""
        return code_bytes(self._index)

    @property
    def kind(self) -> str:
        """``"flat"``, ``"hnsw"`` or ``"ivf"``."""
        return self.config.kind

    @property
    def ids(self) -> np.ndarray:
        """``[N]`` external ids, in row order (a copy)."""
        return self._ids.copy()

    @property
    def metadata(self) -> pd.DataFrame | None:
        """The metadata rows aligned with the index rows (a copy), or ``None``."""
        return None if self._metadata is None else self._metadata.copy()

    def rows_of(self, ids: Iterable[Hashable]) -> np.ndarray:
        """Row numbers ``[n]`` int64 of external ``ids``.

        Raises:
            UnknownIdError: an id is not in the index.
        """
        ids_list = list(ids)
        rows = self._row_of.get_indexer(ids_list) if ids_list else np.zeros(0, dtype=np.int64)
        if (rows < 0).any():
            missing = [ids_list[i] for i in np.flatnonzero(rows < 0)[:5]]
            raise UnknownIdError(f"ids {missing} are not in the index", column="id",
                                 fix="pass ids the index was built with (see EmbeddingIndex.ids)")
        return rows.astype(np.int64)

    # ------------------------------------------------------------------------------------- search
    def _allowed_rows(self, filter: Mapping[str, Any] | None) -> np.ndarray | None:
        """Bool ``[N]`` mask of the rows passing ``filter`` (``None`` = all rows)."""
        if not filter:
            return None
        if self._metadata is None:
            raise UnknownFilterColumnError(
                f"filter on {list(filter)} but the index has no metadata; build it with "
                f"metadata=DataFrame(...) holding those columns")
        mask = np.ones(len(self), dtype=bool)
        for col, allowed in filter.items():
            if col not in self._metadata.columns:
                raise UnknownFilterColumnError(
                    f"unknown filter column {col!r}; the metadata has columns "
                    f"{list(self._metadata.columns)}")
            values = list(allowed) if isinstance(allowed, (list, tuple, set, frozenset, np.ndarray)) \
                else [allowed]
            mask &= self._metadata[col].isin(values).to_numpy()
        return mask

    def _exclusions(self, exclude_ids: Any, q: int) -> list[np.ndarray]:
        """Per-query arrays of excluded rows (length ``q``); empty arrays when none."""
        if exclude_ids is None:
            return [np.zeros(0, dtype=np.int64)] * q
        items = list(exclude_ids)
        per_query = bool(items) and all(
            isinstance(e, (list, tuple, set, frozenset, np.ndarray)) for e in items)
        if per_query:
            if len(items) != q:
                raise IndexInputError(f"exclude_ids holds {len(items)} per-query lists but there are "
                                  f"{q} queries; pass one list per query or one flat list for all")
            return [self.rows_of(e) for e in items]
        rows = self.rows_of(items)
        return [rows] * q

    def _exact(self, x: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-``k`` of ``x [q, D]`` over index ``rows``; returns (scores, rows) ``[q, k]``."""
        q = x.shape[0]
        out_s = np.full((q, k), -np.inf, dtype=np.float32)
        out_r = np.full((q, k), -1, dtype=np.int64)
        if rows.size == 0:
            return out_s, out_r
        vecs = self._rows_vectors(rows)
        sims = x @ vecs.T
        kk = min(k, rows.size)
        top = np.argsort(-sims, axis=1, kind="stable")[:, :kk]
        out_s[:, :kk] = np.take_along_axis(sims, top, axis=1)
        out_r[:, :kk] = rows[top]
        return out_s, out_r

    def _rows_vectors(self, rows: np.ndarray) -> np.ndarray:
        """The stored vectors of ``rows`` ``[r, D]``: exact (ivfpq's on-disk copy, or the flat kinds')."""
        return stored_vectors(self._index, self._vectors, rows)

    def _faiss_search(self, x: np.ndarray, k: int, allowed: np.ndarray | None
                      ) -> tuple[np.ndarray, np.ndarray]:
        kind = self.kind
        sel = None if allowed is None else faiss.IDSelectorBatch(
            np.flatnonzero(allowed).astype(np.int64))
        if kind == "hnsw":
            params: Any = faiss.SearchParametersHNSW(sel=sel, efSearch=max(self.config.ef_search, k))
        elif kind in ("ivf", "ivfpq"):
            params = faiss.SearchParametersIVF(sel=sel, nprobe=self.config.nprobe)
        else:
            params = faiss.SearchParameters(sel=sel) if sel is not None else None
        fetch = min(len(self), k * max(1, self.config.rerank)) if kind == "ivfpq" else k
        scores, rows = self._index.search(x, fetch, params=params)
        scores = np.where(rows < 0, -np.inf, scores).astype(np.float32)
        rows = rows.astype(np.int64)
        if kind == "ivfpq" and self._vectors is not None and self.config.rerank > 1:
            scores, rows = rerank(x, rows, self._rows_vectors, k)
        return scores[:, :k], rows[:, :k]

    def search(self, queries: np.ndarray | torch.Tensor, k: int,
               filter: Mapping[str, Any] | None = None, exclude_ids: Any = None) -> SearchResult:
        """Top-``k`` rows by cosine similarity for each query.

        Args:
            queries: ``[Q, D]`` float (numpy or torch); L2-normalised here.
            k: results per query, ``>= 1``. Fewer qualifying rows give ``None`` / ``-1`` padding.
            filter: ``{column: value or list of values}``; a row qualifies when every column's
                value is among the allowed ones.
            exclude_ids: external ids never returned: one flat list for all queries, or a list of
                ``Q`` lists (one per query, e.g. each query pin's own id).

        Returns:
            :class:`SearchResult` with ``[Q, k]`` ids, scores and rows, best first.

        Raises:
            IndexInputError: ``k < 1`` or a query row is zero / not finite.
            DimensionMismatchError: ``D`` differs from :attr:`dim`.
            UnknownFilterColumnError: ``filter`` names a column the metadata lacks.
            UnknownIdError: ``exclude_ids`` names an id not in the index.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise IndexInputError(f"k must be an int >= 1, got {k!r}")
        k = int(k)
        x = to_numpy_2d(queries, "queries")
        if x.shape[1] != self.dim:
            raise DimensionMismatchError(
                f"queries have dimension {x.shape[1]} but the index holds {self.dim}-dimensional "
                f"embeddings; embed the queries with the model that built the index")
        q = x.shape[0]
        if q == 0:
            return SearchResult(np.empty((0, k), dtype=object), np.empty((0, k), np.float32),
                                np.empty((0, k), np.int64))
        x = normalise(x, "queries")
        allowed = self._allowed_rows(filter)
        excl = self._exclusions(exclude_ids, q)
        # Over-fetch by the largest per-query exclusion so that k rows remain after dropping them.
        extra = max((e.size for e in excl), default=0)
        fetch = min(k + extra, len(self))
        scores, rows = self._candidates(x, fetch, allowed)
        if extra:
            scores, rows = drop_excluded(scores, rows, excl, len(self))
        scores, rows = first_k(scores, rows, k)
        ids = np.full(rows.shape, None, dtype=object)
        ids[rows >= 0] = self._ids[rows[rows >= 0]]
        return SearchResult(ids=ids, scores=scores.astype(np.float32), rows=rows)

    def _candidates(self, x: np.ndarray, fetch: int, allowed: np.ndarray | None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``fetch`` of normalised ``x [q, D]`` among the ``allowed`` rows (bool ``[N]``,
        ``None`` = all): (scores float32, rows int64), both ``[q, fetch]``, ``-inf`` / ``-1`` padded.
        Exact when the allowed rows are few or an approximate search came back short."""
        n_allowed = len(self) if allowed is None else int(allowed.sum())
        approximate = self.kind != "flat"
        if approximate and allowed is not None and n_allowed <= self.config.exact_fallback:
            return self._exact(x, np.flatnonzero(allowed), fetch)
        scores, rows = self._faiss_search(x, fetch, allowed)  # flat is exact, with or without an IDSelector
        if approximate and allowed is not None:
            # A filter can starve the HNSW graph / the probed IVF cells; redo those exactly.
            short = (rows >= 0).sum(axis=1) < min(fetch, n_allowed)
            if short.any():
                scores[short], rows[short] = self._exact(x[short], np.flatnonzero(allowed), fetch)
        return scores, rows

    # -------------------------------------------------------------------------------------- tune
    def tune(self, target_recall: float = 0.95, k: int = 10,
             queries: np.ndarray | torch.Tensor | None = None, n_queries: int = 500,
             holdout: bool = True, max_value: int | None = None, seed: int = 0) -> TuneResult:
        """Set the search-time knob to the smallest value reaching ``target_recall``.

        HNSW ``ef_search`` is tried on a ladder from ``k`` up to ``max_value`` (default 4096),
        IVF ``nprobe`` from 1 up to ``max_value`` (default ``nlist``, which is exhaustive), values
        about sqrt(2) apart, stopping at the first that reaches the target. Recall@k counts a
        returned row as correct when its score is at least the k-th exact score (so tied duplicates
        are not misses). The chosen value is kept in :attr:`config` and saved with the index. An
        ivfpq index is measured through its re-ranked search, on stored rows (no ``holdout``).

        Which queries: recall depends on them a lot. A vector stored in an HNSW graph is found
        through its own node, whose links are its nearest neighbours, so searching with stored
        rows is far easier than with new vectors (measured on 50k vectors of a 64-d subspace,
        efSearch 10: Recall@10 0.98 for stored rows, 0.55 for new vectors of the same
        distribution). Hence, in order of preference:

        * ``queries``: representative queries (text or image embeddings, new pins);
        * ``holdout=True`` (default): ``n_queries`` sampled rows are held out: a temporary index of
          the same kind and settings is built over the other rows (for HNSW this repeats the
          build, with a second copy of the vectors), the rows query it as new vectors would, and
          the value found is set on this index;
        * ``holdout=False``: sampled stored rows query this index for their nearest *other* rows,
          the case of ``similar(pin_id)`` on catalogue pins; optimistic for any other query.

        Args:
            target_recall: in (0, 1].
            k: results per query, ``>= 1`` (capped at the rows a query can get).
            queries: ``[Q, D]`` queries; overrides ``n_queries`` / ``holdout``.
            n_queries: rows sampled when ``queries`` is None (at most half the index when held
                out).
            holdout: see above.
            max_value: the largest value tried.
            seed: the row sample's seed.

        Returns:
            :class:`TuneResult` with the chosen value and the whole sweep. When no value reaches
            the target, the best-recall value is set and a ``UserWarning`` says what to change.

        Raises:
            IndexInputError: ``target_recall`` outside (0, 1], ``k < 1``, ``n_queries < 1`` or
                ``max_value < 1``.
            DimensionMismatchError: ``queries`` has the wrong dimension.
        """
        if self.kind == "ivfpq":  # its own re-ranked search, against its exact vectors; stored rows, no holdout
            result = tune_reranked(self, target_recall, k, queries, n_queries, max_value, seed)
        else:
            result = tune_index(self._index, self.config, target_recall=target_recall, k=k, queries=queries,
                                n_queries=n_queries, holdout=holdout, max_value=max_value, seed=seed)
        if result.param:
            self._set_knob(result.param, result.value)
        warn_if_unreached(result, stacklevel=2)
        return result

    def _set_knob(self, param: str, value: int) -> None:
        """Set ``ef_search`` (HNSW) or ``nprobe`` (IVF) in :attr:`config` and on the FAISS index."""
        self.config = replace(self.config, **{param: value})
        if param == "ef_search":
            self._index.hnsw.efSearch = value
        else:
            self._index.nprobe = value

    # ---------------------------------------------------------------------------------- save/load
    def save(self, path: str | Path, attachments: Mapping[str, str] | None = None,
             overwrite: bool = True) -> None:
        """Write the index to directory ``path`` atomically.

        Files: ``index.faiss`` (``faiss.write_index``), ``ids.parquet``, ``metadata.parquet`` (when
        there is metadata) and ``config.json``, plus ``attachments`` (file name -> text, e.g. the
        TF-IDF vectorizer of a hybrid index). They are written to a temporary directory beside
        ``path`` which then replaces ``path``; no pickle is used. ``config.json`` names the kind
        (``"artefact": "boardgraph.index"``) and lists the files.

        Args:
            path: the folder; absent, empty, or a saved index holding nothing else.
            attachments: extra text files, by plain file name.
            overwrite: replace an index saved at ``path`` (a file, another kind of artefact or a
                folder boardgraph did not write is never replaced).

        Raises:
            OutputExistsError: ``path`` may not be written (see
                :func:`boardgraph._io.check_output`); checked before anything is written.
            ValueError: an attachment name is not a plain file name or is one of the index's files.
        """
        save_index(path, self._index, self._ids, self._metadata, self.config, attachments, overwrite,
                   vectors=self._vectors)

    @classmethod
    def load(cls, path: str | Path) -> "EmbeddingIndex":
        """Read an index written by :meth:`save`.

        Raises:
            FileNotFoundError: no directory at ``path``.
            IndexFormatError: a file is missing, unreadable or truncated, ``config.json`` is not a
                saved index's, the format version is unknown, or the parts disagree on the number of
                rows / the dimension. The message names the file.
        """
        return cls(*load_index(path))

    def __repr__(self) -> str:
        cols = [] if self._metadata is None else list(self._metadata.columns)
        return f"EmbeddingIndex(kind={self.kind!r}, n={len(self)}, dim={self.dim}, metadata={cols})"
