"""The import direction inside ``boardgraph.sampling``: result types <- minibatch <- samplers <- loader.

Read from the source with ``ast`` (importing the package would load every module at once, so
``sys.modules`` cannot tell who imports whom). No cycles and no imports inside functions, for every
package: ``tests/test_architecture.py``.
"""
from __future__ import annotations

import ast
from pathlib import Path

import boardgraph.sampling as sampling
from boardgraph.sampling import (Block, BoardMates, ImportanceNeighbors, Negatives, PositivePairs,
                                 SampledSubgraph)

ROOT = Path(sampling.__file__).parent
MODULES = sorted(p.stem for p in ROOT.glob("*.py") if p.stem != "__init__")
SAMPLERS = {"neighbor", "boardmates", "random_walk", "negatives", "pairs"}


def _sampling_target(node: ast.ImportFrom | ast.Import) -> list[str]:
    """The ``boardgraph.sampling`` modules an import statement reads (empty for other packages)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif node.level == 1:
        if node.module:
            return [node.module.split(".")[0]]
        return [a.name for a in node.names]  # ``from . import _ops``
    else:
        names = [node.module or ""]
    return [n.split(".")[2] for n in names if n.startswith("boardgraph.sampling.")]


def module_imports(stem: str) -> set[str]:
    """The sampling modules ``stem`` imports at module level."""
    tree = ast.parse((ROOT / f"{stem}.py").read_text())
    return {m for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom)) for m in _sampling_target(node)}


GRAPH = {m: module_imports(m) for m in MODULES}


def test_types_and_minibatch_import_no_sampler():
    assert GRAPH["types"] == set()
    assert GRAPH["minibatch"] == {"types"}
    for m in SAMPLERS:
        assert "loader" not in GRAPH[m], m


def test_result_types_live_in_types_and_old_paths_still_work():
    from boardgraph.sampling.boardmates import BoardMates as BM
    from boardgraph.sampling.negatives import Negatives as NG
    from boardgraph.sampling.neighbor import Block as BL, SampledSubgraph as SS
    from boardgraph.sampling.pairs import PositivePairs as PP
    from boardgraph.sampling.random_walk import ImportanceNeighbors as IN

    assert (BL, SS, BM, IN, NG, PP) == (Block, SampledSubgraph, BoardMates, ImportanceNeighbors, Negatives,
                                        PositivePairs)
    for cls in (Block, SampledSubgraph, BoardMates, ImportanceNeighbors, Negatives, PositivePairs):
        assert cls.__module__ == "boardgraph.sampling.types"
