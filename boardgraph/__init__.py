"""boardgraph: multimodal item representations on Pin-Board graphs.

Stages: :mod:`boardgraph.graph` -> :mod:`boardgraph.sampling` -> :mod:`boardgraph.encoders` ->
:mod:`boardgraph.objectives` -> :mod:`boardgraph.training` -> :mod:`boardgraph.inference` ->
:mod:`boardgraph.evaluation`; :mod:`boardgraph.datasets` and :mod:`boardgraph.cli` beside them.
Modules that moved keep their old import paths as deprecated aliases (:mod:`boardgraph._imports`).
"""
import importlib as _importlib
import warnings as _warnings

from boardgraph import _imports

_imports.install()

from boardgraph.graph import PinBoardGraph  # noqa: E402

__version__ = "0.1.0"
__all__ = ["PinBoardGraph", "__version__"]


def __getattr__(name: str):
    """``boardgraph.trainer`` and the other moved modules, as attributes (deprecated aliases)."""
    if f"{__name__}.{name}" in _imports.MOVED:
        with _warnings.catch_warnings(record=True) as caught:   # re-issued at the caller's line
            _warnings.simplefilter("always")
            module = _importlib.import_module(f"{__name__}.{name}")
        for w in caught:
            _warnings.warn(w.message, w.category, stacklevel=2)
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
