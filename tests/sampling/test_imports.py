"""The import direction inside ``boardgraph.sampling``: result types <- minibatch <- samplers <- loader.

Read from the source with ``ast`` (importing the package would load every module at once, so
``sys.modules`` cannot tell who imports whom).
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


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


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


def module_imports(stem: str) -> tuple[set[str], list[int]]:
    """``(sampling modules imported at module level, line numbers of imports inside functions or
    classes that read a boardgraph module)``; ``if TYPE_CHECKING:`` blocks are skipped."""
    tree = ast.parse((ROOT / f"{stem}.py").read_text())
    top: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            top.update(_sampling_target(node))
    nested = []
    for outer in tree.body:
        if isinstance(outer, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for node in ast.walk(outer):
                if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("boardgraph")):
                    nested.append(node.lineno)
                elif isinstance(node, ast.Import) and any(a.name.startswith("boardgraph") for a in node.names):
                    nested.append(node.lineno)
    return top, nested


GRAPH = {m: module_imports(m)[0] for m in MODULES}


def test_no_imports_inside_functions():
    assert {m: module_imports(m)[1] for m in MODULES if module_imports(m)[1]} == {}


def test_module_level_imports_form_no_cycle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for dep in sorted(GRAPH.get(m, ())):
            assert state.get(dep) != 1, f"import cycle: {' -> '.join(path + [m, dep])}"
            if dep not in state:
                visit(dep, path + [m])
        state[m] = 2

    for m in MODULES:
        if m not in state:
            visit(m, [])


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
