"""The saved-index folder: writing it atomically and reading it back with every part checked.

A saved index is a folder (format version :data:`FORMAT_VERSION`)::

    index.faiss       faiss.write_index of the FAISS index (no pickle anywhere)
    ids.parquet       one column "id": the [N] external ids in row order
    metadata.parquet  the [N] metadata rows (only when the index has metadata)
    config.json       {"artefact": "boardgraph.index", "entries": [...], "format_version": 1,
                       "n": N, "dim": D, "has_metadata": bool, "config": IndexConfig fields}
    <attachments>     extra text files, e.g. the hybrid search's lexical.json

:func:`save_index` writes it to a temporary sibling that then replaces the folder; :func:`load_index`
returns the parts :class:`~boardgraph.inference.index.EmbeddingIndex` is made of, and raises
:class:`~boardgraph.inference.index_types.IndexFormatError` naming the file when one is missing,
unreadable or disagrees with the others. :meth:`EmbeddingIndex.save` / :meth:`EmbeddingIndex.load`
call these; this module does not import the index class.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Mapping

import faiss
import numpy as np
import pandas as pd

from boardgraph._io import READ_ERRORS, ArtefactKind, atomic_replace_dir, check_output, read_manifest, temp_sibling
from boardgraph.inference.index_types import KINDS, IndexConfig, IndexFormatError

__all__ = ["FORMAT_VERSION", "INDEX_FILES", "INDEX_ARTEFACT", "save_index", "load_index"]

FORMAT_VERSION = 1
#: The files of a saved index (``metadata.parquet`` only when there is metadata).
INDEX_FILES = ("index.faiss", "ids.parquet", "metadata.parquet", "config.json", "vectors.npy")
# What marks a folder as a saved index (see boardgraph._io.check_output). Older saves have no
# "artefact" field; their one attachment the project writes is the hybrid search's lexical.json.
INDEX_ARTEFACT = ArtefactKind("boardgraph.index", "config.json",
                              legacy_keys=("format_version", "n", "dim", "config"),
                              legacy_entries=(*INDEX_FILES, "lexical.json"))
_FIX = "save it again (EmbeddingIndex.save, or boardgraph index RUN_DIR)"
# The attribute only a FAISS index of each kind has, to tell a swapped index.faiss.
_KIND_ATTR = {"flat": "ntotal", "hnsw": "hnsw", "ivf": "nprobe", "ivfpq": "pq"}


def save_index(path: str | Path, index: faiss.Index, ids: np.ndarray, metadata: pd.DataFrame | None,
               config: IndexConfig, attachments: Mapping[str, str] | None = None,
               overwrite: bool = True, vectors: np.ndarray | Path | None = None) -> None:
    """Write a saved-index folder at ``path`` atomically (see :meth:`EmbeddingIndex.save`).

    Args:
        path: the folder; absent, empty, or a saved index holding nothing else.
        index: the FAISS index over ``N`` vectors of dimension ``D``.
        ids: ``[N]`` external ids in row order.
        metadata: ``N`` metadata rows, or ``None``.
        config: the index's :class:`IndexConfig`, saved in ``config.json``.
        attachments: extra text files, by plain file name.
        overwrite: replace an index saved at ``path``.
        vectors: an ivfpq index's exact vectors ``[N, D]``, saved as ``vectors.npy``: an array, or
            the path of an ``.npy`` file already written (moved in; same file system).

    Raises:
        OutputExistsError: ``path`` may not be written; checked before anything is written.
        ValueError: an attachment name is not a plain file name or is one of the index's files.
    """
    path = Path(path)
    for name in attachments or {}:
        if Path(name).name != name or name in INDEX_FILES:
            raise ValueError(f"attachment name {name!r} must be a plain file name other than {INDEX_FILES}")
    check_output(path, INDEX_ARTEFACT, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    tmp.mkdir()
    try:
        faiss.write_index(index, str(tmp / "index.faiss"))
        pd.DataFrame({"id": ids}).to_parquet(tmp / "ids.parquet", index=False)
        if metadata is not None:
            metadata.to_parquet(tmp / "metadata.parquet", index=False)
        if isinstance(vectors, (str, os.PathLike)):
            os.replace(vectors, tmp / "vectors.npy")
        elif vectors is not None:
            np.save(tmp / "vectors.npy", np.asarray(vectors, dtype=np.float32), allow_pickle=False)
        for name, text in (attachments or {}).items():
            (tmp / name).write_text(text)
        meta = {**INDEX_ARTEFACT.stamp(tmp), "format_version": FORMAT_VERSION, "n": int(index.ntotal),
                "dim": int(index.d), "has_metadata": metadata is not None, "config": asdict(config)}
        (tmp / "config.json").write_text(json.dumps(meta, indent=2))
        atomic_replace_dir(tmp, path, INDEX_ARTEFACT, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_index(path: str | Path) -> tuple[faiss.Index, np.ndarray, pd.DataFrame | None, IndexConfig,
                                          np.ndarray | None]:
    """Read a folder written by :func:`save_index` (see :meth:`EmbeddingIndex.load`).

    Returns:
        ``(index, ids, metadata, config, vectors)``: the FAISS index with its search knob set from
        ``config``, the ``[N]`` ids, the ``N`` metadata rows or ``None``, the config, and an ivfpq
        index's exact vectors, memory-mapped (``None`` for the other kinds).

    Raises:
        FileNotFoundError: no directory at ``path``.
        IndexFormatError: a file is missing, unreadable or truncated, ``config.json`` is not a saved
            index's, the format version is unknown, or the parts disagree on the number of rows /
            the dimension. The message names the file.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no saved index at {path}")
    for f in (path / "config.json", path / "index.faiss", path / "ids.parquet"):
        if not f.exists():
            raise IndexFormatError(f"saved index {path} lacks {f.name}; save it again with "
                                   f"EmbeddingIndex.save")
    meta, cfg = _read_config(path)
    index = _read(path, path / "index.faiss", lambda f: faiss.read_index(str(f)))
    id_frame = _read(path, path / "ids.parquet", pd.read_parquet)
    if "id" not in id_frame.columns:
        raise _damaged(path, path / "ids.parquet", f"has no 'id' column (columns {list(id_frame.columns)})")
    ids = id_frame["id"].to_numpy()
    metadata = None
    if meta.get("has_metadata"):
        if not (path / "metadata.parquet").exists():
            raise IndexFormatError(f"saved index {path} lacks metadata.parquet; {_FIX}")
        metadata = _read(path, path / "metadata.parquet", pd.read_parquet)
    _check_consistent(path, meta, cfg, index, ids, metadata)
    vectors = None
    if cfg.kind == "ivfpq":
        vectors = _read(path, path / "vectors.npy", lambda f: np.load(f, mmap_mode="r", allow_pickle=False))
        if vectors.shape != (len(ids), index.d):
            raise _damaged(path, path / "vectors.npy", f"has shape {vectors.shape}, expected {(len(ids), index.d)}")
    if cfg.kind == "hnsw":
        index.hnsw.efSearch = cfg.ef_search
    elif cfg.kind in ("ivf", "ivfpq"):
        index.nprobe = cfg.nprobe
    return index, ids, metadata, cfg, vectors


def _damaged(path: Path, f: Path, what: str) -> IndexFormatError:
    """The error for file ``f`` of the saved index at ``path``: ``f`` ``what``."""
    return IndexFormatError(f"saved index {path} is damaged: {f} {what}; {_FIX}")


def _read(path: Path, f: Path, reader: Callable[[Path], Any]) -> Any:
    """``reader(f)``, its read errors raised as :func:`_damaged` ones."""
    try:
        return reader(f)
    except (*READ_ERRORS, RuntimeError) as e:  # faiss raises RuntimeError
        raise _damaged(path, f, f"cannot be read ({' '.join(str(e).split())[:160]})") from e


def _read_config(path: Path) -> tuple[dict[str, Any], IndexConfig]:
    """``config.json`` of the saved index at ``path``, checked: ``(manifest, IndexConfig)``."""
    cfg_file = path / "config.json"
    meta, why = read_manifest(cfg_file)
    if meta is None:
        raise _damaged(path, cfg_file, f"cannot be read ({why})")
    if meta.get("artefact", INDEX_ARTEFACT.name) != INDEX_ARTEFACT.name:
        raise IndexFormatError(f"{cfg_file} names a saved {meta['artefact']!r}, not a saved index; "
                               f"open it with its own loader")
    if meta.get("format_version") != FORMAT_VERSION:
        raise IndexFormatError(f"saved index {path} has format version "
                               f"{meta.get('format_version')!r}; this version reads "
                               f"{FORMAT_VERSION}. Rebuild the index")
    ints = [k for k in ("n", "dim") if not isinstance(meta.get(k), int) or isinstance(meta.get(k), bool)]
    if ints or not isinstance(meta.get("config"), dict):
        raise _damaged(path, cfg_file, f"lacks {ints or ['config']} (or they have the wrong type)")
    try:
        cfg = IndexConfig(**meta["config"])
    except TypeError as e:
        raise _damaged(path, cfg_file, f"has a bad 'config' ({e})") from e
    if cfg.kind not in KINDS:
        raise _damaged(path, cfg_file, f"names an unknown index kind {cfg.kind!r}")
    return meta, cfg


def _check_consistent(path: Path, meta: Mapping[str, Any], cfg: IndexConfig, index: faiss.Index,
                      ids: np.ndarray, metadata: pd.DataFrame | None) -> None:
    """Raise :class:`IndexFormatError` unless the parts agree on ``N``, ``D`` and the kind."""
    n = meta["n"]
    if index.ntotal != n or len(ids) != n or index.d != meta["dim"] \
            or (metadata is not None and len(metadata) != n):
        raise IndexFormatError(
            f"saved index {path} is inconsistent: config.json says {n} rows x {meta['dim']}, "
            f"index.faiss has {index.ntotal} x {index.d}, ids.parquet {len(ids)} rows"
            f"{'' if metadata is None else f', metadata.parquet {len(metadata)} rows'}; {_FIX}")
    if not hasattr(index, _KIND_ATTR[cfg.kind]):
        raise _damaged(path, path / "index.faiss", f"holds a {type(index).__name__}, config.json says {cfg.kind!r}")
