"""Out-of-core graph building: an edge table of any length -> a saved graph, in bounded memory.

:func:`~boardgraph.graph.from_collections` and :func:`~boardgraph.graph.from_interactions` take this
path with ``out=DIR`` and ``method="out-of-core"`` (or ``"auto"`` when the table would not fit in
``max_memory``); :mod:`.build` describes how it works.
"""
from .build import StreamTuning, build_out_of_core
from .choose import METHODS, choose_method
from .ids import IdCollisionError
from .spill import MemoryLimitError, parse_memory

__all__ = ["build_out_of_core", "StreamTuning", "choose_method", "METHODS", "IdCollisionError", "MemoryLimitError",
           "parse_memory"]
