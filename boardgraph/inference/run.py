"""A trained run, loaded back for inference: the encoder with its checkpoint weights, the graph
it was trained on, and embeddings of graph pins and of brand-new pins.

::

    run = load_run("runs/demo/neighbor")
    emb = run.embed_pins()                                   # [N, E], cached in <run>/embeddings.npy
    new = run.embed_new([{"title": "rust linen dress", "brand": "Cobble", "image": "photo.jpg"}])

New pins are read through the run's own :class:`~boardgraph.encoders.PinInputBuilder` and the
*same* fitted :class:`~boardgraph.encoders.MetadataSchema` as training (rebuilt deterministically
from the config and the graph), so an unseen brand hashes into the same buckets it would have
during training. Any subset of the modalities may be given per pin.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from boardgraph.training.checkpoint import CheckpointMismatchError, GraphChangedError, graph_fingerprint, load_checkpoint
from boardgraph.training.config import TrainConfig
from boardgraph.encoders import MetadataSchema, PinEncoder, PinInputBuilder, PinInputs, truncate_embedding
from boardgraph.graph import PinBoardGraph
from boardgraph.graph.errors import BoardgraphError, ImageReadError, MalformedValueError, SchemaError
from boardgraph.graph.features import NodeFeatures, decode_image
from boardgraph.inference.embed import embed_pins, load_embeddings
from boardgraph.training.factory import build_encoder_for, load_graph_for

__all__ = ["RunNotFoundError", "RunFormatError", "InferenceInputError", "NoContentError", "TrainedRun", "load_run",
           "image_tensor", "GraphChangedError"]

log = logging.getLogger(__name__)

#: Columns of a new-pin table that are ignored (ids are not content).
ID_COLUMNS = ("pin_id", "id")


class RunNotFoundError(BoardgraphError, FileNotFoundError):
    """The run directory, or its checkpoint, does not exist."""


class RunFormatError(BoardgraphError, ValueError):
    """A run directory is incomplete or does not match the graph it is loaded with."""


class InferenceInputError(BoardgraphError, ValueError):
    """A bad argument to an inference call (an embedding width the model lacks, ``k < 1``, ...)."""


class NoContentError(InferenceInputError):
    """A new pin (or a query) has no modality the model can use: empty text and nothing else."""


def image_tensor(ref: Any, size: int | tuple[int, int] | None = None) -> Tensor | None:
    """One image of any accepted form -> uint8 ``[3, H, W]`` (``[3, size, size]`` with ``size``).

    Accepted: a file path (``str`` / ``Path``), encoded bytes, a PIL image, a uint8 numpy array or
    tensor ``[3, H, W]``, ``[H, W, 3]`` (or RGBA ``[H, W, 4]``) or grayscale ``[H, W]``.
    ``None``, NaN and ``""`` mean "no image" and give ``None``.

    Raises:
        ImageReadError: the file is missing/unreadable, the bytes do not decode, or the array is
            not uint8 image-shaped.
    """
    if ref is None or (isinstance(ref, float) and np.isnan(ref)) or (isinstance(ref, str) and not ref.strip()):
        return None
    try:
        from PIL import Image

        if isinstance(ref, Image.Image):
            ref = np.asarray(ref.convert("RGB"))
    except ImportError:  # pragma: no cover - PIL is a dependency of the image towers
        pass
    if isinstance(ref, (np.ndarray, Tensor)):
        t = torch.from_numpy(np.array(ref)) if isinstance(ref, np.ndarray) else ref.cpu()
        if t.dim() == 2:
            t = t[None].expand(3, -1, -1)
        elif t.dim() == 3 and t.shape[0] not in (3,) and t.shape[-1] in (3, 4):
            t = t[..., :3].permute(2, 0, 1)
        ref = t.contiguous()
    elif isinstance(ref, Path):
        ref = str(ref)
    if isinstance(size, tuple):
        if size[0] != size[1]:
            raise ImageReadError(f"non-square target size {size}", fix="resize to a square size")
        size = size[0]
    return decode_image(ref, size)


def _strip_fix(e: BoardgraphError) -> str:
    """The message of a :class:`BuildError` without its trailing ``. Fix: ...``."""
    msg, fix = str(e), getattr(e, "fix", "")
    return msg[: -len(f". Fix: {fix}")] if fix and msg.endswith(f". Fix: {fix}") else msg


@dataclass
class TrainedRun:
    """A trained model ready for inference (build it with :func:`load_run`).

    Attributes:
        config: the run's :class:`~boardgraph.training.config.TrainConfig`.
        graph: the graph the run was trained on (or the one given to :func:`load_run`).
        encoder: the :class:`~boardgraph.encoders.PinEncoder` with the checkpoint's weights, in
            eval mode, gradients off, on ``device``.
        builder: reads encoder inputs from a feature store (``builder(features, idx)``).
        schema: the fitted metadata schema (None when the model has no metadata tower).
        out_dir: the run directory.
        device: where the encoder lives.
        step: the training step the checkpoint was written at.
        graph_fingerprint: :func:`~boardgraph.training.checkpoint.graph_fingerprint` of ``graph``, recorded
            with the embeddings this run writes.
    """

    config: TrainConfig
    graph: PinBoardGraph
    encoder: PinEncoder
    builder: PinInputBuilder
    schema: MetadataSchema | None
    out_dir: Path
    device: torch.device
    step: int = 0
    graph_fingerprint: str | None = None

    @property
    def embed_dim(self) -> int:
        """Width ``E`` of the full pin embedding."""
        return int(self.encoder.config.embed_dim)

    # -- graph pins ---------------------------------------------------------------------------
    def embeddings_path(self, dim: int | None = None) -> Path:
        """``<run>/embeddings.npy`` (full width) or ``<run>/embeddings_<dim>.npy`` (Matryoshka prefix)."""
        return self.out_dir / ("embeddings.npy" if dim in (None, self.embed_dim) else f"embeddings_{dim}.npy")

    def embed_pins(self, path: str | Path | None = None, dim: int | None = None, batch_size: int = 1024,
                   overwrite: bool = False) -> Tensor:
        """L2-normalised embeddings of every graph pin, float32 ``[N, dim or E]`` (memory-mapped).

        Reuses the file at ``path`` (default :meth:`embeddings_path`) when its record says it is
        complete and was computed with this run's weights, on this graph, at this width, and the
        file is newer than the checkpoint; otherwise (re)computes it with
        :func:`boardgraph.inference.embed.embed_pins` (towers run live, resumable by chunk, under the lock
        of the file's folder). Row ``i`` is pin index ``i`` (``graph.ids("pin", i)``).

        Raises:
            InferenceInputError: ``dim`` is not in ``1..E``.
            RunLockedError: another process is writing embeddings into that folder.
            NonFiniteEmbeddingError: the model gives NaN/inf for some pins.
        """
        self._check_dim(dim)
        dim = None if dim == self.embed_dim else dim
        path = Path(path) if path is not None else self.embeddings_path(dim)
        ck = self.out_dir / "checkpoint.pt"
        if not overwrite and path.exists() and ck.exists() and path.stat().st_mtime < ck.stat().st_mtime:
            log.info("%s is older than the checkpoint: re-embedding", path)
            overwrite = True
        embed_pins(self.encoder, self.graph.num_nodes("pin"), path, builder=self.builder,
                   features=self.graph.features("pin"), batch_size=batch_size, device=self.device, dim=dim,
                   graph_fingerprint=self.graph_fingerprint, overwrite=overwrite)
        return load_embeddings(path, graph_fingerprint=self.graph_fingerprint)

    # -- new pins -----------------------------------------------------------------------------
    def new_pin_inputs(self, pins: pd.DataFrame | Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> PinInputs:
        """Encoder inputs of brand-new pins given by their raw fields (on CPU).

        Args:
            pins: a DataFrame, a list of dicts or one dict; one row per pin. Columns are the graph's
                pin features (``graph.features("pin").names()``): text columns (strings), the image
                column (path, bytes, PIL image or uint8 array, see :func:`image_tensor`),
                categorical columns (any value; unseen values hash as in training) and numeric
                columns. ``"text"`` stands for the first text feature and ``"image"`` for the image
                feature when the graph names them otherwise. Any column may be absent or missing
                per pin; ``pin_id`` / ``id`` and label columns are ignored.

        Raises:
            SchemaError: a column is not a pin feature of the graph.
            MalformedValueError: a numeric column holds a non-number.
            ImageReadError: an image cannot be read (the message names the pin row and the image).
            NoContentError: a pin has no modality the model can use (e.g. empty text only).
        """
        df = self._as_frame(pins)
        n = len(df)
        if n == 0:
            raise NoContentError("no new pins were given; pass at least one row")
        feats = self.graph.features("pin")
        nf = NodeFeatures(n)
        b = self.builder
        for name in b.text_fields if b.tokenize is not None else ():
            vals = df[name] if name in df.columns else pd.Series([""] * n)
            nf.add_column(name, vals.map(lambda v: "" if _missing(v) else str(v)), "text")
        if self.schema is not None:
            for name in self.schema.categorical:
                vals = df[name] if name in df.columns else pd.Series([None] * n)
                nf.add_column(name, vals.map(lambda v: None if _missing(v) else str(v)).astype(object), "categorical")
            for name in self.schema.numeric:
                vals = df[name] if name in df.columns else pd.Series([np.nan] * n)
                try:
                    num = pd.to_numeric(vals.map(lambda v: np.nan if _missing(v) else v), errors="raise")
                except (ValueError, TypeError) as e:
                    bad = [i for i, v in enumerate(vals) if not _missing(v) and not _is_number(v)]
                    raise MalformedValueError(
                        f"numeric column {name!r} of new pin {bad[0] if bad else '?'} holds "
                        f"{vals.iloc[bad[0]] if bad else '?'!r}", column=name, rows=bad,
                        fix=f"give {name} as a number (or leave it missing)") from e
                nf.add_column(name, num, "numeric")
        image_ok = torch.zeros(n, dtype=torch.bool)
        if b.image_field is not None:
            size = self._image_size(feats)
            imgs = torch.zeros(n, 3, size, size, dtype=torch.uint8)
            col = df[b.image_field] if b.image_field in df.columns else [None] * n
            for i, ref in enumerate(col):
                try:
                    t = image_tensor(ref, size)
                except ImageReadError as e:
                    raise ImageReadError(f"new pin {i}, column {b.image_field!r}: {_strip_fix(e)}",
                                         column=b.image_field, rows=[i], fix=e.fix) from e
                if t is not None:
                    imgs[i], image_ok[i] = t, True
            nf.add_tensor(b.image_field, imgs, kind="image")
        x = b(nf, torch.arange(n))
        x.present[:, 0] = image_ok
        x.index = None
        usable = (x.present & self.encoder.has_tower.cpu()).any(1)
        if not usable.all():
            rows = torch.nonzero(~usable).squeeze(1).tolist()
            raise NoContentError(
                f"new pin(s) {rows[:5]} have nothing the model can use (no image, empty text, no metadata); "
                f"this model reads {self._readable()}. Fix: give at least one of them")
        return x

    @torch.no_grad()
    def embed_new(self, pins: pd.DataFrame | Sequence[Mapping[str, Any]] | Mapping[str, Any],
                  dim: int | None = None) -> Tensor:
        """Embeddings of brand-new pins from their raw fields: float32 ``[n, dim or E]`` on CPU,
        L2-normalised. See :meth:`new_pin_inputs` for the accepted input and the errors."""
        self._check_dim(dim)
        x = self.new_pin_inputs(pins).to(self.device)
        emb = self.encoder(x).embedding.float()
        if dim is not None and dim != emb.shape[1]:
            emb = truncate_embedding(emb, dim)
        return emb.cpu()

    def _check_dim(self, dim: int | None) -> None:
        if dim is not None and not (isinstance(dim, int) and 1 <= dim <= self.embed_dim):
            good = [d for d in self.encoder.config.matryoshka_dims]
            raise InferenceInputError(f"embedding width {dim!r} is not in 1..{self.embed_dim} (this model's width). "
                                      f"Fix: pick one of the trained Matryoshka widths {good}")

    def _as_frame(self, pins: Any) -> pd.DataFrame:
        if isinstance(pins, pd.DataFrame):
            df = pins.reset_index(drop=True)
        elif isinstance(pins, Mapping):
            df = pd.DataFrame([dict(pins)])
        else:
            df = pd.DataFrame([dict(p) for p in pins])
        feats = self.graph.features("pin")
        b = self.builder
        text_fields = list(b.text_fields) if b.tokenize is not None else []
        aliases = {}
        if text_fields and "text" not in feats.names():
            aliases["text"] = text_fields[0]
        if b.image_field is not None and "image" not in feats.names():
            aliases["image"] = b.image_field
        for alias, name in aliases.items():
            if alias not in df.columns:
                continue
            if name in df.columns:
                a, v = df[alias].map(_missing), df[name].map(_missing)
                both = np.flatnonzero(~(a.to_numpy() | v.to_numpy()))
                if both.size:
                    raise SchemaError(f"new pin {int(both[0])} gives both {alias!r} and {name!r}", column=alias,
                                      rows=both.tolist(), fix=f"{alias!r} stands for {name!r}; give one of them")
                df = df.assign(**{name: df[name].where(~v, df[alias])}).drop(columns=[alias])
            else:
                df = df.rename(columns={alias: name})
        used = set(text_fields) | ({b.image_field} if b.image_field else set())
        if self.schema is not None:
            used |= set(self.schema.categorical) | set(self.schema.numeric)
        ignored = set(ID_COLUMNS) | set(feats.names("label"))
        unknown = [c for c in df.columns if c not in used and c not in ignored]
        if unknown:
            raise SchemaError(f"new pins have column(s) {unknown} that this model does not read",
                              column=str(unknown[0]),
                              fix=f"use the columns {sorted(used | set(aliases))} (others: drop them)")
        return df

    def _image_size(self, feats: NodeFeatures) -> int:
        name = self.builder.image_field
        if name in feats.tensors:
            return int(feats.tensors[name].shape[-1])
        if self.builder.image_size:
            return int(self.builder.image_size)
        pre = getattr(self.encoder.towers["image"], "preprocess", None)
        return int(pre.size[0]) if pre is not None else 224

    def _readable(self) -> str:
        b, parts = self.builder, []
        if b.image_field is not None:
            parts.append(f"image {b.image_field!r}")
        if b.tokenize is not None:
            parts.append(f"text {list(b.text_fields)}")
        if self.schema is not None:
            parts.append(f"metadata {list(self.schema.categorical) + list(self.schema.numeric)}")
        return ", ".join(parts) or "nothing"

    def __repr__(self) -> str:
        return (f"TrainedRun({str(self.out_dir)!r}, step={self.step}, kind={self.config.objective.kind!r}, "
                f"pins={self.graph.num_nodes('pin')}, embed_dim={self.embed_dim}, "
                f"modalities={self.encoder.modalities})")


def _missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, str):
        return not v.strip()
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _is_number(v: Any) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def _read_config(run_dir: Path, ck: Mapping[str, Any]) -> TrainConfig:
    yaml_path = run_dir / "config.yaml"
    if "config" in ck:
        cfg = TrainConfig.from_dict(json.loads(ck["config"]))
        if yaml_path.exists() and TrainConfig.load(yaml_path).model_fingerprint() != cfg.model_fingerprint():
            raise CheckpointMismatchError(
                f"{yaml_path} describes another model than {run_dir / 'checkpoint.pt'} (it was edited or "
                f"overwritten). Fix: restore it, or delete it to use the config stored in the checkpoint")
        return cfg
    if yaml_path.exists():
        cfg = TrainConfig.load(yaml_path)
        if ck.get("fingerprint") not in (None, cfg.model_fingerprint()):
            raise CheckpointMismatchError(f"{yaml_path} does not describe the model of {run_dir / 'checkpoint.pt'}. "
                                          f"Fix: use the config the run was trained with")
        return cfg
    raise RunFormatError(f"run {run_dir} has no config.yaml and its checkpoint holds no config. "
                         f"Fix: put the run's training config there as config.yaml")


def load_run(run_dir: str | Path, device: torch.device | str = "cpu", graph: PinBoardGraph | None = None,
             allow_other_graph: bool = False) -> TrainedRun:
    """Load a trained run for inference.

    Args:
        run_dir: the run's ``out_dir`` (holds ``checkpoint.pt`` and ``config.yaml``).
        device: where the encoder goes.
        graph: the graph the run was trained on; default: reloaded from the config's ``data``
            section (``"synthetic"`` is regenerated from its seed, else the saved graph directory).
        allow_other_graph: accept a graph whose :func:`~boardgraph.training.checkpoint.graph_fingerprint`
            differs from the one the checkpoint records (to embed another catalogue of the same
            size with the trained encoder); its embeddings are then computed for that graph.

    Returns:
        A :class:`TrainedRun` whose encoder holds the checkpoint's weights, in eval mode.

    Raises:
        RunNotFoundError: ``run_dir`` or its checkpoint does not exist.
        RunFormatError: no config at all, or ``graph`` does not match the checkpoint (pin/board
            counts, metadata vocabularies, towers).
        GraphChangedError: the graph's ids, edges or features differ from those the run was trained
            on (it was rebuilt or edited since), unless ``allow_other_graph``.
        CheckpointFormatError: ``checkpoint.pt`` is empty, truncated or not a boardgraph checkpoint.
        CheckpointMismatchError: ``config.yaml`` describes another model than the checkpoint.
        ConfigError: the config's data source cannot be loaded (pass ``graph=``).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunNotFoundError(f"no run directory {run_dir}. Fix: pass the run.out_dir of a trained run "
                               f"(boardgraph train --config run.yaml)")
    ck_path = run_dir / "checkpoint.pt"
    if not ck_path.is_file():
        raise RunNotFoundError(f"run directory {run_dir} has no checkpoint.pt. Fix: train it first "
                               f"(boardgraph train --config ...), or pass the directory that holds checkpoint.pt")
    ck = load_checkpoint(ck_path)
    cfg = _read_config(run_dir, ck)
    graph = graph if graph is not None else load_graph_for(cfg.data)
    state = ck["model"]
    _check_graph(graph, state, run_dir)
    fingerprint = graph_fingerprint(graph)
    trained_on = ck.get("graph_fingerprint")
    if trained_on is None:
        log.warning("%s records no graph fingerprint (written by an older boardgraph): the graph cannot be checked "
                    "against the one the run was trained on", ck_path)
    elif trained_on != fingerprint:
        msg = (f"the graph changed since the run {run_dir} was trained: its ids, edges or features differ "
               f"(fingerprint {fingerprint}, trained on {trained_on})")
        if not allow_other_graph:
            raise GraphChangedError(f"{msg}. Fix: re-train the run on this graph (boardgraph train), or load it with "
                                    f"the graph it was trained on; embeddings of the old graph must be re-embedded")
        log.warning("%s; going on as asked (allow_other_graph)", msg)
    encoder, builder, schema = build_encoder_for(cfg.model, graph, fit_lexical=False, ids=cfg.uses_ids())  # IDF from the checkpoint
    enc_state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    try:
        encoder.load_state_dict(enc_state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise RunFormatError(f"the checkpoint of {run_dir} does not fit the encoder rebuilt from its config and this "
                             f"graph ({first}). Fix: load it with the graph it was trained on") from None
    device = torch.device(device)
    encoder = encoder.to(device).eval()
    encoder.requires_grad_(False)
    return TrainedRun(config=cfg, graph=graph, encoder=encoder, builder=replace(builder), schema=schema,
                      out_dir=run_dir, device=device, step=int(ck.get("step", 0)), graph_fingerprint=fingerprint)


def _check_graph(graph: PinBoardGraph, state: Mapping[str, Tensor], run_dir: Path) -> None:
    n_pins, n_boards = graph.num_nodes("pin"), graph.num_nodes("board")
    bank = state.get("bank")
    if bank is not None and bank.numel() and bank.shape[0] != n_pins:
        raise RunFormatError(f"run {run_dir} was trained on {bank.shape[0]} pins but the graph has {n_pins}. "
                             f"Fix: load it with the graph it was trained on")
    boards = state.get("board_embedding.weight")
    if boards is not None and boards.shape[0] != n_boards:
        raise RunFormatError(f"run {run_dir} was trained on {boards.shape[0]} boards but the graph has {n_boards}. "
                             f"Fix: load it with the graph it was trained on")
