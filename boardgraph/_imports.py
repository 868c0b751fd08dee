"""Import machinery: lazy re-exports of the stage packages, and the old paths of moved modules.

Lazy re-exports (:func:`lazy_exports`). ``boardgraph.training``, ``boardgraph.inference`` and
``boardgraph.evaluation`` re-export their public names (``from boardgraph.training import Trainer``)
without importing their modules when the package is imported: a name's module is imported on
first use. The stages depend on each other one way at module level, but eager re-exports in the
package ``__init__`` files would make every package import every other one.

Deprecated aliases.
``import boardgraph.trainer`` (and ``from boardgraph.trainer import Trainer``) still work: the
import system finds the old name here and gets the module it moved to (the same module object:
``boardgraph.trainer is boardgraph.training.trainer``), or, for a module whose names went to
several modules, a read-only alias that looks each name up in them. Either warns once, at the
import, with :class:`BoardgraphDeprecationWarning` naming the new path. Pickles and checkpoints
that name an old path still load.

:data:`MOVED` is the table; an alias with several targets looks a name up in each, in order.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["MOVED", "BoardgraphDeprecationWarning", "AliasFinder", "install", "lazy_exports"]

#: old module path -> the module(s) its names live in now (first match wins).
MOVED: dict[str, tuple[str, ...]] = {
    "boardgraph.apps": ("boardgraph.inference.search",),
    "boardgraph.audit": ("boardgraph.evaluation.audit",),
    "boardgraph.baselines": ("boardgraph.evaluation.baselines", "boardgraph.inference.lexical"),
    "boardgraph.cf": ("boardgraph.evaluation.baselines",),
    "boardgraph.checkpoint": ("boardgraph.training.checkpoint",),
    "boardgraph.config": ("boardgraph.training.config",),
    "boardgraph.data": ("boardgraph.evaluation.splits", "boardgraph.training.factory"),
    "boardgraph.demo": ("boardgraph.evaluation.demo",),
    "boardgraph.embed": ("boardgraph.inference.embed",),
    "boardgraph.evaluate": ("boardgraph.evaluation.completion", "boardgraph.inference.embed", "boardgraph.schema"),
    "boardgraph.experiments": ("boardgraph.evaluation.harness", "boardgraph.evaluation.sanity",
                               "boardgraph.evaluation.tables"),
    "boardgraph.factory": ("boardgraph.training.factory",),
    "boardgraph.fitb": ("boardgraph.evaluation.fitb",),
    "boardgraph.index": ("boardgraph.inference.index",),
    "boardgraph.lexical": ("boardgraph.inference.lexical",),
    "boardgraph.metrics": ("boardgraph.evaluation.metrics",),
    "boardgraph.model": ("boardgraph.objectives.pinclip",),
    "boardgraph.report": ("boardgraph.evaluation.report",),
    "boardgraph.runs": ("boardgraph.inference.run",),
    "boardgraph.stats": ("boardgraph.evaluation.stats",),
    "boardgraph.study": ("boardgraph.evaluation.study", "boardgraph.evaluation.tables"),
    "boardgraph.trainer": ("boardgraph.training.trainer",),
    "boardgraph.graph.report": ("boardgraph.graph.build_report",),
    "boardgraph.objectives.baselines": ("boardgraph.objectives.margin", "boardgraph.objectives.neighbor"),
}


class BoardgraphDeprecationWarning(FutureWarning):
    """An old import path was used; the message names the new one. A ``FutureWarning`` so that
    users see it (Python hides ``DeprecationWarning`` outside ``__main__``)."""


class _AliasModule(types.ModuleType):
    """An old path whose names now live in several modules: reads look each target up in order;
    writes are refused (set the name on the module that defines it)."""

    def __init__(self, name: str, targets: Sequence[types.ModuleType]) -> None:
        super().__init__(name)
        object.__setattr__(self, "_targets", tuple(targets))
        self.__doc__ = f"Deprecated alias of {', '.join(t.__name__ for t in targets)}."

    def _owner(self, name: str) -> types.ModuleType | None:
        return next((t for t in self._targets if hasattr(t, name)), None)

    def __getattr__(self, name: str) -> Any:
        owner = self._owner(name)
        if owner is None:
            raise AttributeError(f"module {self.__name__!r} (moved to "
                                 f"{', '.join(t.__name__ for t in self._targets)}) has no attribute {name!r}")
        return getattr(owner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("__") and name.endswith("__"):
            super().__setattr__(name, value)
        else:
            owner = self._owner(name)
            raise AttributeError(f"{self.__name__} is a deprecated alias; set {name!r} on "
                                 f"{owner.__name__ if owner else self._targets[0].__name__} instead")

    def __dir__(self) -> list[str]:
        return sorted({n for t in self._targets for n in dir(t)})


class AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old paths of :data:`MOVED` (installed once by ``boardgraph/__init__.py``)."""

    def __init__(self) -> None:
        self._specs: dict[str, importlib.machinery.ModuleSpec] = {}   # old name -> its target's own spec

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.machinery.ModuleSpec(fullname, self) if fullname in MOVED else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        """The target module itself when the old path moved whole (so ``old is new``, and pickles,
        monkeypatching and ``isinstance`` see one module); else an :class:`_AliasModule`."""
        targets = [importlib.import_module(t) for t in MOVED[spec.name]]
        if len(targets) > 1:
            return _AliasModule(spec.name, targets)
        self._specs[spec.name] = targets[0].__spec__
        return targets[0]

    def exec_module(self, module: types.ModuleType) -> None:
        old = module.__spec__.name   # the import system gave the module the alias's spec ...
        if old in self._specs:
            module.__spec__ = self._specs.pop(old)   # ... so give it its own back
        # stacklevel 2: the importing statement (warnings skips the import machinery's frames)
        warnings.warn(f"{old} moved to {' / '.join(MOVED[old])}; import from there (the old path will be removed "
                      f"in a later release)", BoardgraphDeprecationWarning, stacklevel=2)


def install() -> None:
    """Put one :class:`AliasFinder` on ``sys.meta_path`` (idempotent)."""
    if not any(isinstance(f, AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(AliasFinder())


def lazy_exports(package: str, exports: Mapping[str, str]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for a package whose names live in its submodules.

    Args:
        package: the package's ``__name__``.
        exports: public name -> the submodule (relative, e.g. ``"trainer"``) that defines it.
    """
    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(exports) | set(sys.modules[package].__dict__))

    return __getattr__, __dir__, list(exports)
