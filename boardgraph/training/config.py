"""`TrainConfig`: everything a training run needs, as nested dataclasses, saved as YAML or JSON.

A config names the data, the encoder towers, the objectives and their weights, the optimiser and
schedule, the batch size, the number of board-mates K, the length of training and the seed.
:meth:`TrainConfig.model_fingerprint` hashes the parts that shape the model's parameters, so a
checkpoint is refused by a run whose model would differ.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from boardgraph._io import atomic_write_text
from boardgraph.encoders.id_table import MAX_HASHES
from boardgraph.errors import BoardgraphError
from boardgraph.inference.board_query import BOARD_QUERIES
from boardgraph.models import MODEL_KINDS
from boardgraph.objectives.pinclip import trained_kinds

__all__ = ["TrainConfig", "DataConfig", "ModelConfig", "ObjectiveConfig", "OptimConfig", "RunConfig", "ConfigError"]


class ConfigError(BoardgraphError, ValueError):
    """A config file or value is invalid; the message names the key and the fix."""


_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
_PLURALS = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}


def _describe(tp: Any) -> str:
    """How a type annotation reads in an error message (``tuple[int, ...]`` -> "a list of integers")."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp in _NAMES:
        return _NAMES[tp]
    if origin is tuple:
        count = "" if len(args) == 2 and args[1] is Ellipsis else f"{len(args)} "
        return f"a list of {count}{_PLURALS.get(args[0], 'values')}"
    if origin is dict:
        return "a mapping" if args[1] is Any else f"a mapping of names to {_PLURALS.get(args[1], 'values')}"
    return str(tp)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` checked against the annotation ``tp`` of field ``where`` and normalised: an int for a
    float field becomes a float, an integral float for an int field an int, a list a tuple.

    Handles ``bool``, ``int``, ``float``, ``str``, ``Any``, ``X | None``, ``tuple[X, ...]``,
    ``tuple[X, Y]`` and ``dict[str, X]`` (the annotations of the config dataclasses).

    Raises:
        ConfigError: naming ``where``, the value, its type and the expected type.
    """
    if tp is Any:
        return value
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    nullable = origin in (typing.Union, types.UnionType) and type(None) in args
    if nullable:
        if value is None:
            return None
        rest = [a for a in args if a is not type(None)]
        tp = rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]
        origin, args = typing.get_origin(tp), typing.get_args(tp)

    def bad() -> ConfigError:
        return ConfigError(f"{where} must be {_describe(tp)}{' or null' if nullable else ''}, got {value!r} "
                           f"({type(value).__name__})")

    if tp is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if tp is int:  # numpy integers count (numbers.Integral); so does a float such as 300.0
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        if not isinstance(value, numbers.Integral) or isinstance(value, bool):
            raise bad()
        return int(value)
    if tp is float:
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise bad()
        if not math.isfinite(value):
            raise ConfigError(f"{where} must be finite, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad()
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise bad()
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise bad()
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise bad()
        return {k: _coerce(v, args[1], f"{where}[{k!r}]") for k, v in value.items()}
    raise TypeError(f"config field {where} has an annotation the checker does not know: {tp}")  # a bug, not input


def _field_types(section_cls: type) -> dict[str, Any]:
    """The resolved annotations of a config section (this module uses postponed annotations)."""
    return typing.get_type_hints(section_cls)


@dataclass
class DataConfig:
    """Where the graph comes from.

    ``source``: ``"synthetic"`` (the embedded lookbooks: ``n_pins``, ``n_boards``, ``data_seed``) or
    a directory written by ``graph.save()`` / ``boardgraph build``.
    ``holdout_fraction``: memberships held out for evaluation (0 trains on everything);
    ``cold_fraction``: pins held out entirely (cold start). ``split_seed`` fixes both.
    """

    source: str = "synthetic"
    n_pins: int = 2000
    n_boards: int = 200
    data_seed: int = 0
    holdout_fraction: float = 0.0
    cold_fraction: float = 0.0
    split_seed: int = 0


@dataclass
class ModelConfig:
    """Towers (registry names + kwargs), fusion width, embedding width and cache use."""

    image: str | None = "vit_tiny_random"
    image_kwargs: dict[str, Any] = field(default_factory=dict)
    text: str | None = "hf_text"
    text_kwargs: dict[str, Any] = field(default_factory=dict)
    metadata: bool = True
    fusion_dim: int = 128
    fusion_layers: int = 1
    fusion_heads: int = 4
    embed_dim: int = 128
    matryoshka_dims: tuple[int, ...] = (32, 64, 128)
    mate_heads: int = 4
    freeze_towers: bool = True
    mate_encoding: str = "bank"          # "bank" (mates read from a refreshed embedding bank) or "full"
    mate_values: str = "mates"           # "mates" (attention averages the mates' own embeddings) or "projected"
    text_max_length: int = 32
    id_embedding: bool = False           # content + a learned ID embedding per pin seen in training
    id_dropout: float = 0.5              # share of warm pins trained without their ID (the cold-start path)
    id_buckets: int = 0                  # > 0: a hashed ID table of this many rows (encoders.IdTable); 0: a row per pin
    id_hashes: int = 2                   # rows summed per pin of a hashed ID table (1 to encoders.MAX_HASHES, 4)
    shard_ids: bool = False              # under torchrun: each rank holds 1/world of the ID table (training.id_sharding)


@dataclass
class ObjectiveConfig:
    """Which losses, with which weights.

    ``kind``: ``"neighbor"`` (PinCLIP: image-text alignment + neighbor alignment), ``"content"``
    (image-text alignment only) or ``"coboard"`` (pairwise co-board contrastive ablation).
    ``weights`` maps loss terms to weights
    (``clip``, ``pin_modality``, ``mates``, ``board``, ``pairs``, ``coboard``, ``matryoshka``).
    ``symmetric``: the graph terms (``mates``, ``pairs``, ``coboard``) average the pin -> context
    and context -> pin InfoNCE directions; None takes the kind's default (:meth:`is_symmetric`).
    """

    kind: str = "neighbor"
    alignment: str = "clip"              # "clip" or "siglip"
    weights: dict[str, float] | None = None   # None: the kind's defaults (its entry in boardgraph.models.MODEL_KINDS)
    num_mates: int = 8                   # K board-mates per seed
    mate_weighting: str = "uniform"      # "uniform", "board_size" or "recency"
    negatives: str = "none"              # "none", "uniform" or "popularity" (with logQ correction)
    num_negatives: int = 0
    symmetric: bool | None = None        # graph terms average both InfoNCE directions (pin->context, context->pin);
                                         # None: the kind's default (neighbor: True, coboard: False)
    board_query: str | None = None       # how a board scores a pin (boardgraph.inference.board_query): "centroid"
                                         # or "attention"; "auto": chosen on the refinement's validation copy
                                         # (kinds that refine; the run then stores its choice); None: the kind's
                                         # default (neighbor_cf: auto)
    board_query_tau: float = 0.1         # softness of the attention query (cosine units)

    def is_symmetric(self) -> bool:
        """``symmetric``, or the kind's default when None (its registry entry: True for ``neighbor``,
        else False)."""
        return MODEL_KINDS.get(self.kind).build.symmetric_default if self.symmetric is None else bool(self.symmetric)

    def query_setting(self) -> str:
        """``board_query``, or the kind's default when None (its registry entry: ``"auto"`` for
        ``neighbor_cf``, else ``"centroid"``); ``"auto"`` is resolved by the refinement's validation."""
        build = MODEL_KINDS.get(self.kind).build
        return getattr(build, "board_query_default", "centroid") if self.board_query is None else self.board_query

    def query(self) -> str:
        """The board query the run scores boards with: :meth:`query_setting`, where an ``"auto"``
        that no validation resolved (the run did not refine, or has not yet) is the kind's
        ``board_query_unresolved`` (``"attention"`` for ``neighbor_cf``), else ``"centroid"``."""
        q = self.query_setting()
        return getattr(MODEL_KINDS.get(self.kind).build, "board_query_unresolved", "centroid") if q == "auto" else q


@dataclass
class OptimConfig:
    """AdamW with linear warmup then cosine decay to ``min_lr_ratio * lr``."""

    lr: float = 1e-3
    tower_lr_scale: float = 1.0          # lr of unfrozen towers = lr * this (pretrained towers: e.g. 0.02)
    id_lr_scale: float = 10.0            # lr of the ID embeddings (model.id_embedding) = lr * this
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 20
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    accumulate: int = 1
    # the ID refinement phase after the last step, run by kinds that have one (neighbor_cf;
    # boardgraph.training.refine): the most epochs over the boards (the length is chosen on
    # refine_val_fraction of the memberships; 0: no validation), its Adam lr, the share of a board's
    # pins left out of each query, and the share of warm pins that take part content-only in a batch
    refine_epochs: int = 100
    refine_val_fraction: float = 0.1
    refine_lr: float = 0.01
    refine_input_dropout: float = 0.3
    refine_id_dropout: float = 0.1
    refine_negatives: int = 8192         # above this many warm pins, a sampled softmax over this many (0: never)


@dataclass
class RunConfig:
    """Length, batch, precision, logging and checkpoints of the run."""

    batch_size: int = 256
    steps: int = 300
    seed: int = 0
    precision: str = "auto"              # "auto" (bf16 on CUDA, fp32 on CPU), "fp32", "bf16"
    device: str = "auto"                 # "auto", "cpu", "cuda", "cuda:1"
    out_dir: str = "runs/default"
    log_every: int = 10
    checkpoint_every: int = 100
    progress: str = "auto"               # "auto" (only on a terminal), "on", "off"
    tensorboard: bool = True


@dataclass
class TrainConfig:
    """The whole run (see the module docstring)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))  # tuples -> lists, plain types only

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Build from nested dicts; unknown sections or keys raise :class:`ConfigError`."""
        if not isinstance(d, dict):
            raise ConfigError(f"a config must be a mapping of sections, got {type(d).__name__}")
        parts = {}
        for f in dataclasses.fields(cls):
            sub = d.get(f.name, {})
            sub = {} if sub is None else sub
            if not isinstance(sub, dict):
                raise ConfigError(f"section '{f.name}' must be a mapping of keys to values, got {sub!r}")
            sub_cls = f.default_factory  # type: ignore[misc]
            known = _field_types(sub_cls)
            unknown = sorted(set(sub) - set(known))
            if unknown:
                raise ConfigError(f"unknown key(s) {unknown} in section '{f.name}'; known keys: {sorted(known)}")
            parts[f.name] = sub_cls(**{k: _coerce(v, known[k], f"{f.name}.{k}") for k, v in sub.items()})
        extra = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if extra:
            raise ConfigError(f"unknown section(s) {extra}; sections are data, model, objective, optim, run")
        cfg = cls(**parts)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Check every field against its type annotation (normalising as :func:`_coerce` does: ints
        to floats, lists to tuples) and the values that have a fixed set or range.

        Raises:
            ConfigError: naming the field, the value and what it must be.
        """
        for f in dataclasses.fields(self):
            section = getattr(self, f.name)
            for name, tp in _field_types(type(section)).items():
                setattr(section, name, _coerce(getattr(section, name), tp, f"{f.name}.{name}"))
        o, r = self.objective, self.run
        if o.kind not in trained_kinds():
            raise ConfigError(f"objective.kind {o.kind!r} is not one of {', '.join(trained_kinds())}")
        if o.alignment not in ("clip", "siglip"):
            raise ConfigError(f"objective.alignment {o.alignment!r} must be 'clip' or 'siglip'")
        if o.board_query not in (None, "auto", *BOARD_QUERIES) or not o.board_query_tau > 0:
            raise ConfigError(f"objective.board_query {o.board_query!r} must be {', '.join(BOARD_QUERIES)}, auto or "
                              f"null, and objective.board_query_tau > 0 (got {o.board_query_tau})")
        if o.negatives not in ("none", "uniform", "popularity"):
            raise ConfigError(f"objective.negatives {o.negatives!r} must be none, uniform or popularity")
        if self.model.mate_encoding not in ("bank", "full"):
            raise ConfigError(f"model.mate_encoding {self.model.mate_encoding!r} must be 'bank' or 'full'")
        if self.model.mate_values not in ("mates", "projected"):
            raise ConfigError(f"model.mate_values {self.model.mate_values!r} must be 'mates' or 'projected'")
        if not 0.0 <= self.model.id_dropout < 1.0:
            raise ConfigError(f"model.id_dropout {self.model.id_dropout} must lie in [0, 1)")
        if self.model.id_buckets < 0 or not 1 <= self.model.id_hashes <= MAX_HASHES:
            raise ConfigError(f"model.id_buckets must be >= 0 (0: a row per pin) and model.id_hashes in [1, {MAX_HASHES}], got "
                              f"{self.model.id_buckets} and {self.model.id_hashes}; e.g. id_buckets = pins / 4, id_hashes 2")
        op = self.optim
        shares = (op.refine_input_dropout, op.refine_id_dropout, op.refine_val_fraction)
        if op.refine_negatives < 0:
            raise ConfigError(f"optim.refine_negatives must be >= 0 (0: always the full softmax), got "
                              f"{op.refine_negatives}")
        if op.refine_epochs < 0 or not op.refine_lr > 0 or not all(0 <= v < 1 for v in shares):
            raise ConfigError(f"optim.refine_epochs must be >= 0 (got {op.refine_epochs}), optim.refine_lr > 0 (got "
                              f"{op.refine_lr}), and optim.refine_input_dropout / refine_id_dropout / "
                              f"refine_val_fraction in [0, 1) (got {', '.join(map(str, shares))})")
        if r.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"run.precision {r.precision!r} must be auto, fp32 or bf16")
        if not self.optim.tower_lr_scale > 0:
            raise ConfigError(f"optim.tower_lr_scale must be > 0, got {self.optim.tower_lr_scale}")
        if r.batch_size < 2 or r.steps < 1:
            raise ConfigError("run.batch_size must be >= 2 (in-batch negatives) and run.steps >= 1")
        for where, value in (("run.log_every", r.log_every), ("run.checkpoint_every", r.checkpoint_every),
                             ("optim.accumulate", self.optim.accumulate)):
            if value < 1:
                raise ConfigError(f"{where} must be >= 1, got {value}")

    def save(self, path: str | Path) -> None:
        """Write YAML (``.yaml``/``.yml``) or JSON (anything else), atomically."""
        path = Path(path)
        text = yaml.safe_dump(self.to_dict(), sort_keys=False) if path.suffix in (".yaml", ".yml") \
            else json.dumps(self.to_dict(), indent=1)
        atomic_write_text(path, text)

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        """Read a config saved by :meth:`save` (YAML for ``.yaml``/``.yml``, else JSON), checked as
        :meth:`from_dict` checks it.

        Raises:
            FileNotFoundError: no file at ``path``.
            ConfigError: the file does not parse, or a section, key or value is invalid (the
                message starts with the path and names the field).
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"config {path} does not exist")
        text = path.read_text()
        try:
            d = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
        except (yaml.YAMLError, json.JSONDecodeError) as e:
            raise ConfigError(f"{path} is not valid {'YAML' if path.suffix in ('.yaml', '.yml') else 'JSON'}: {e}") from e
        try:
            return cls.from_dict(d or {})
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None

    def uses_ids(self) -> bool:
        """Whether the encoder carries per-pin ID embeddings: ``model.id_embedding``, or a kind that
        always does (``uses_ids`` of its registry entry, e.g. ``neighbor_id``)."""
        return bool(self.model.id_embedding or getattr(MODEL_KINDS.get(self.objective.kind).build, "uses_ids", False))

    def model_fingerprint(self) -> str:
        """Hash of what determines the parameter shapes (data size, model, objective kind)."""
        d = self.to_dict()
        # fields added later leave the fingerprints of earlier runs as they were
        later = ("id_embedding", "id_dropout", "id_buckets", "id_hashes") if not self.uses_ids() else \
            ("id_buckets", "id_hashes") if not self.model.id_buckets else ()
        d["model"].pop("shard_ids", None)   # how the table is laid out over ranks, not its shape
        for k in later:
            d["model"].pop(k, None)
        key = {"model": d["model"], "objective": {"kind": d["objective"]["kind"], "alignment": d["objective"]["alignment"]},
               "data": {k: d["data"][k] for k in ("source", "n_pins", "n_boards", "data_seed")}}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
