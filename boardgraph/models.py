"""The registry of model kinds: every model the evaluation harness can run, trained or baseline.

A kind is registered where it is defined, with :func:`register_model` (in the spirit of timm's
``register_model``), and everything that lists or dispatches kinds reads :data:`MODEL_KINDS`:
the harness (:func:`boardgraph.evaluation.harness.run_experiment`), the CLI's ``--models``
choices, the trainer's default loss weights and the README's model list
(``python -m boardgraph.cli models --markdown``).

Families (how the harness runs a kind):

* ``trained``: trained by :class:`~boardgraph.training.Trainer` with ``make_config(kind, seed)``;
  ``loss_weights`` are its default loss weights and ``build`` is its per-batch loss assembly
  (:mod:`boardgraph.objectives.pinclip`).
* ``scorer``: ``build(seed=seed, **options)`` returns a :class:`~boardgraph.evaluation.completion.Scorer`
  fitted on the split's training graph when it first scores.
* ``embedding``: ``build(context, seed, split)`` returns float32 ``[N_pins, E]`` pin embeddings
  (``context``: :class:`boardgraph.evaluation.harness.RunContext`, the per-experiment caches and
  options).

A new baseline is one decorated class or function in one file, imported by
``boardgraph/evaluation/baselines/__init__.py``.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

from boardgraph.errors import BoardgraphError

__all__ = ["FAMILIES", "ModelKind", "ModelRegistry", "UnknownModelError", "ModelOptionError", "MODEL_KINDS",
           "register_model"]

FAMILIES: tuple[str, ...] = ("trained", "scorer", "embedding")
_F = TypeVar("_F", bound=Callable[..., Any])


class UnknownModelError(BoardgraphError, ValueError):
    """A model name that no registered kind has (the message lists the kinds)."""


class ModelOptionError(BoardgraphError, ValueError):
    """An option a kind's constructor does not take (the message names the kind and its options)."""


@dataclass(frozen=True)
class ModelKind:
    """One registered kind (see the module docstring).

    Attributes:
        name: what ``--models`` and ``run_experiment(models=...)`` call it.
        family: ``trained``, ``scorer`` or ``embedding``.
        summary: one line for ``--help`` and the README.
        build: the family's constructor (module docstring).
        loss_weights: trained kinds: the loss weights used when the config gives none.
        needs_text: it reads the pins' text (skipped, with the reason, when they have none).
        needs_config: it needs ``make_config`` (trained kinds, and baselines built on the towers).
        missing: ``() -> str | None``: why it cannot run on this installation (a missing optional
            package), else None.
        hybrid_base: its embeddings can be joined with TF-IDF (``"<name>+tfidf"``).
    """

    name: str
    family: str
    summary: str
    build: Callable[..., Any]
    loss_weights: Mapping[str, float] = field(default_factory=dict)
    needs_text: bool = False
    needs_config: bool = False
    missing: Callable[[], str | None] | None = None
    hybrid_base: bool = True

    def why_unavailable(self) -> str | None:
        """Why this kind cannot run here, or None."""
        return self.missing() if self.missing is not None else None

    def make_scorer(self, seed: int = 0, **options: Any) -> Any:
        """A ``scorer`` kind's :class:`~boardgraph.evaluation.completion.Scorer`, built with ``seed``
        and ``options`` (its constructor's arguments).

        Raises:
            ValueError: the kind is not a scorer. ModelOptionError: an option it does not take.
        """
        if self.family != "scorer":
            raise ValueError(f"{self.name!r} is a {self.family} kind, not a scorer")
        try:
            inspect.signature(self.build).bind(seed=seed, **options)
        except TypeError as e:
            params = [p for p in inspect.signature(self.build).parameters if p != "seed"]
            raise ModelOptionError(f"bad option for the {self.name!r} baseline ({e}); it takes {params}") from None
        return self.build(seed=seed, **options)


class ModelRegistry:
    """Name -> :class:`ModelKind`, in registration order within each family (trained first)."""

    def __init__(self) -> None:
        self._kinds: dict[str, ModelKind] = {}

    def register(self, name: str, *, family: str, summary: str, loss_weights: Mapping[str, float] | None = None,
                 needs_text: bool = False, needs_config: bool = False,
                 missing: Callable[[], str | None] | None = None, hybrid_base: bool | None = None) -> Callable[[_F], _F]:
        """Decorator registering the decorated class or function as the ``build`` of kind ``name``.

        Raises:
            ValueError: an unknown family, a name already taken, or a name with ``+``.
        """
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
        if not name or "+" in name or name != name.strip():
            raise ValueError(f"model name {name!r} must be non-empty, without '+' or surrounding spaces")

        def decorate(build: _F) -> _F:
            if name in self._kinds and self._kinds[name].build is not build:
                raise ValueError(f"model kind {name!r} is already registered (by {self._kinds[name].build!r})")
            self._kinds[name] = ModelKind(
                name, family, summary, build, MappingProxyType(dict(loss_weights or {})), needs_text,
                needs_config or family == "trained", missing,
                family != "scorer" if hybrid_base is None else hybrid_base)
            return build
        return decorate

    def get(self, name: str) -> ModelKind:
        """The kind called ``name``.

        Raises:
            UnknownModelError: no such kind; the message lists them.
        """
        try:
            return self._kinds[name]
        except KeyError:
            raise UnknownModelError(f"unknown model {name!r}; choose from {list(self.names())}") from None

    def names(self, family: str | None = None) -> tuple[str, ...]:
        """Registered names (of one family), trained kinds first, then in registration order."""
        kinds = sorted(self._kinds.values(), key=lambda k: k.family != "trained")
        return tuple(k.name for k in kinds if family is None or k.family == family)

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __iter__(self) -> Iterator[ModelKind]:
        return iter(self._kinds[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._kinds)

    def markdown(self) -> str:
        """A Markdown list of the kinds (the README's model list)."""
        return "\n".join(f"- `{k.name}` ({k.family}): {k.summary}" for k in self)


#: The project's registry. Filled by the modules that define kinds: :mod:`boardgraph.objectives.pinclip`
#: (trained) and :mod:`boardgraph.evaluation.baselines` (baselines); import
#: :mod:`boardgraph.evaluation.harness` to have them all.
MODEL_KINDS = ModelRegistry()
#: ``@register_model(name, family=..., summary=...)``: :meth:`ModelRegistry.register` of :data:`MODEL_KINDS`.
register_model = MODEL_KINDS.register
