"""The tower protocol and the encoder registry.

A *tower* turns one modality of a pin into a set of tokens and one pooled vector. Any
``nn.Module`` with the attributes and ``forward`` below is a tower; the library never checks the
class, only the protocol (:func:`check_tower`), so your own module plugs in without editing the
library::

    @dataclass
    class MyCNNConfig(EncoderConfig):
        name: str = "my_cnn"
        width: int = 16

    @register_encoder("my_cnn", modality="image", default_config=MyCNNConfig())
    class MyCNN(nn.Module):
        modality = "image"
        def __init__(self, config: MyCNNConfig) -> None: ...
        def forward(self, images: Tensor) -> TowerOutput: ...

    tower = build_encoder("my_cnn")                        # default config
    tower = build_encoder({"name": "my_cnn", "width": 32}) # from a YAML/JSON mapping
    tower = build_encoder(MyCNNConfig(width=32))           # from a config object

Protocol, by modality (all towers: ``modality: str``, ``token_dim: int``, ``pooled_dim: int``):

- ``"image"``: ``forward(images) -> TowerOutput`` with ``images`` uint8 ``[B, 3, H, W]`` (or float
  in ``[0, 1]``); the tower does its own resizing and normalisation.
- ``"text"``: ``tokenize(texts, pairs=None, max_length=None, pad_to_max=False) -> (input_ids,
  attention_mask)``, both int64 ``[B, L]`` (``pad_to_max``: exactly ``max_length`` columns), and
  ``forward(input_ids, attention_mask) -> TowerOutput``.
- ``"metadata"``: ``forward(categorical, numeric, numeric_missing) -> TowerOutput`` with int64
  ``[B, C]`` ids (see :class:`~boardgraph.encoders.MetadataSchema`), float32 ``[B, F]`` raw values
  (0 where missing) and bool ``[B, F]`` missing flags.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping, TypeVar

from torch import Tensor, nn

from .errors import EncoderConfigError, EncoderProtocolError, UnknownEncoderError

__all__ = ["TowerOutput", "EncoderConfig", "MODALITIES", "register_encoder", "build_encoder", "list_encoders",
           "encoder_entry", "check_tower", "EncoderEntry", "unregister_encoder"]

#: The modalities of a pin, in the order used by every ``present`` mask ``[B, 3]``.
MODALITIES: tuple[str, ...] = ("image", "text", "metadata")


@dataclass
class TowerOutput:
    """What a tower returns.

    Attributes:
        tokens: float ``[B, N, token_dim]`` token states (patches, word pieces, metadata fields).
        mask: bool ``[B, N]``, True for real tokens (False for padding).
        pooled: float ``[B, pooled_dim]`` one vector per pin.
    """

    tokens: Tensor
    mask: Tensor
    pooled: Tensor

    def to(self, device: Any) -> "TowerOutput":
        """The same output on ``device``."""
        return TowerOutput(self.tokens.to(device), self.mask.to(device), self.pooled.to(device))


@dataclass
class EncoderConfig:
    """Base of every tower config. ``name`` picks the registry entry that builds it."""

    name: str


@dataclass(frozen=True)
class EncoderEntry:
    """One registered encoder: its name, modality, factory ``config -> nn.Module`` and default config."""

    name: str
    modality: str
    factory: Callable[[Any], nn.Module]
    default_config: EncoderConfig


# The only module-level mutable state of the encoders: name -> entry.
_REGISTRY: dict[str, EncoderEntry] = {}

F = TypeVar("F", bound=Callable[..., Any])


def register_encoder(name: str, *, modality: str, default_config: EncoderConfig | None = None,
                     overwrite: bool = False) -> Callable[[F], F]:
    """Decorator registering a tower class or factory function under ``name``.

    The decorated callable is called with one config object (a dataclass deriving from
    :class:`EncoderConfig`) and returns an ``nn.Module`` following the tower protocol.

    Args:
        name: registry key (also the ``name`` field of its configs).
        modality: ``"image"``, ``"text"`` or ``"metadata"``.
        default_config: the config used by ``build_encoder(name)``; ``EncoderConfig(name)`` if None.
        overwrite: replace an existing entry of the same name instead of raising.

    Raises:
        EncoderConfigError: unknown modality, or ``name`` already registered (without ``overwrite``).
    """
    if modality not in MODALITIES:
        raise EncoderConfigError(f"modality must be one of {MODALITIES}, got {modality!r}",
                                 fix="register image, text or metadata towers")
    cfg = default_config if default_config is not None else EncoderConfig(name)
    if cfg.name != name:
        cfg = dataclasses.replace(cfg, name=name)

    def deco(factory: F) -> F:
        if name in _REGISTRY and not overwrite and _REGISTRY[name].factory is not factory:
            raise EncoderConfigError(f"an encoder named {name!r} is already registered",
                                     fix="pick another name or pass overwrite=True")
        _REGISTRY[name] = EncoderEntry(name, modality, factory, cfg)
        return factory

    return deco


def unregister_encoder(name: str) -> EncoderEntry:
    """Remove ``name`` from the registry and return its entry (for tests and interactive sessions).

    Raises:
        UnknownEncoderError: ``name`` is not registered.
    """
    entry = encoder_entry(name)
    del _REGISTRY[name]
    return entry


def list_encoders(modality: str | None = None) -> list[str]:
    """Sorted names of the registered encoders, optionally of one modality."""
    return sorted(n for n, e in _REGISTRY.items() if modality is None or e.modality == modality)


def encoder_entry(name: str) -> EncoderEntry:
    """The registry entry of ``name``.

    Raises:
        UnknownEncoderError: ``name`` is not registered (the message lists what is).
    """
    if name not in _REGISTRY:
        raise UnknownEncoderError(f"no encoder named {name!r}; registered: {list_encoders()}",
                                  fix="register it with @register_encoder(name, modality=...) or fix the name")
    return _REGISTRY[name]


def build_encoder(config: EncoderConfig | Mapping[str, Any] | str, **overrides: Any) -> nn.Module:
    """Build a tower from a config object, a mapping with a ``name`` key, or a bare name.

    A name or a mapping starts from the entry's default config; mapping keys and ``overrides``
    replace its fields. The result is checked with :func:`check_tower`.

    Raises:
        UnknownEncoderError: the name is not registered.
        EncoderConfigError: a key is not a field of the entry's config.
        EncoderProtocolError: the built module does not follow the tower protocol.
    """
    if isinstance(config, str):
        entry, fields = encoder_entry(config), {}
    elif isinstance(config, Mapping):
        if "name" not in config:
            raise EncoderConfigError(f"encoder mapping {dict(config)!r} has no 'name'",
                                     fix="add name: <registered encoder> (see list_encoders())")
        entry, fields = encoder_entry(str(config["name"])), {k: v for k, v in config.items() if k != "name"}
    elif isinstance(config, EncoderConfig):
        entry, fields = encoder_entry(config.name), {}
    else:
        raise EncoderConfigError(f"cannot build an encoder from {type(config).__name__}",
                                 fix="pass an EncoderConfig, a mapping with a 'name' key, or a registered name")
    fields.update(overrides)
    base = config if isinstance(config, EncoderConfig) else copy.deepcopy(entry.default_config)
    if not isinstance(base, type(entry.default_config)):
        raise EncoderConfigError(f"encoder {entry.name!r} takes a {type(entry.default_config).__name__}, "
                                 f"got a {type(base).__name__}", fix="pass that config class, or a mapping")
    if fields:
        known = {f.name for f in dataclasses.fields(base)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise EncoderConfigError(f"{type(base).__name__} has no field(s) {unknown} (encoder {entry.name!r})",
                                     fix=f"use fields among {sorted(known)}")
        base = dataclasses.replace(base, **fields)
    module = entry.factory(base)
    check_tower(module, entry.modality)
    return module


def check_tower(module: Any, modality: str | None = None) -> None:
    """Check that ``module`` follows the tower protocol (of ``modality`` when given).

    Raises:
        EncoderProtocolError: naming every missing or wrong attribute.
    """
    problems: list[str] = []
    if not isinstance(module, nn.Module):
        problems.append(f"is a {type(module).__name__}, not an nn.Module")
    mod = getattr(module, "modality", None)
    if mod not in MODALITIES:
        problems.append(f"has modality {mod!r} (expected one of {MODALITIES})")
    elif modality is not None and mod != modality:
        problems.append(f"has modality {mod!r} where a {modality!r} tower is needed")
    for attr in ("token_dim", "pooled_dim"):
        v = getattr(module, attr, None)
        if not isinstance(v, int) or v <= 0:
            problems.append(f"has {attr}={v!r} (expected a positive int)")
    if (modality or mod) == "text" and not callable(getattr(module, "tokenize", None)):
        problems.append("has no tokenize(texts, pairs=None, max_length=None, pad_to_max=False) method")
    if problems:
        raise EncoderProtocolError(f"{type(module).__name__} " + "; ".join(problems),
                                   fix="follow the tower protocol documented in boardgraph.encoders.registry")
