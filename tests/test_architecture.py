"""The layout rules, checked by reading the sources (``ast``), not by importing them.

* No import cycle among modules at module level.
* No import of a boardgraph module inside a function (such imports hide cycles); inside functions,
  only third-party packages that are optional or heavy at run time are imported.
* No module over 450 lines; at most 8 modules flat in ``boardgraph/``; no function body over 60
  lines (docstring not counted) unless its docstring says why it is kept in one piece
  (a sentence starting ``Kept in one piece``).
* Every module imports on its own in a fresh interpreter (catches cycles through package ``__init__``).
"""
from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 450
MAX_FLAT = 8
MAX_FUNCTION_LINES = 60


def package_dirs() -> dict[str, Path]:
    """``boardgraph`` package name -> its folder, from pyproject.toml's ``package-dir``."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {pkg: ROOT / folder for pkg, folder in cfg["package-dir"].items()}


def modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    out: dict[str, Path] = {}
    dirs = package_dirs()
    for pkg, folder in dirs.items():
        for f in folder.glob("*.py"):
            out[pkg if f.stem == "__init__" else f"{pkg}.{f.stem}"] = f
    return out


MODULES = modules()


def _resolve(importer: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The boardgraph modules an import statement names (a ``from pkg import sub`` names ``pkg.sub``)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in MODULES]
    base = node.module or ""
    if node.level:
        pkg = importer if MODULES[importer].stem == "__init__" else importer.rsplit(".", 1)[0]
        for _ in range(node.level - 1):
            pkg = pkg.rsplit(".", 1)[0]
        base = f"{pkg}.{base}" if base else pkg
    out = []
    for a in node.names:
        sub = f"{base}.{a.name}"
        if sub in MODULES:
            out.append(sub)
        elif base in MODULES:
            out.append(base)
    return out


def _module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports executed when the module is imported (not under ``if TYPE_CHECKING:``, not in functions)."""
    out = []

    def visit(body):
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                out.append(node)
            elif isinstance(node, ast.If):
                if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for h in node.handlers:
                    visit(h.body)
                visit(node.orelse)
                visit(node.finalbody)
    visit(tree.body)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the boardgraph modules it imports at module level."""
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[name] = {m for node in _module_level_imports(tree) for m in _resolve(name, node) if m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(u: str) -> list[str] | None:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if state.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if v not in state and (c := dfs(v)):
                return c
        stack.pop()
        state[u] = 2
        return None

    for u in sorted(graph):
        if u not in state and (c := dfs(u)):
            return c
    return None


def test_the_cycle_finder_can_fail():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    # and the resolver sees relative and package imports
    tree = ast.parse("from .store import PinBoardGraph\nfrom boardgraph.graph import io\n")
    assert _resolve("boardgraph.graph.csr", tree.body[0]) == ["boardgraph.graph.store"]
    assert _resolve("boardgraph.graph.csr", tree.body[1]) == ["boardgraph.graph.io"]


def test_no_import_cycle_among_modules():
    graph = import_graph()
    assert len(graph) > 60 and "boardgraph.evaluation.harness" in graph
    assert "boardgraph.training.trainer" in graph["boardgraph.evaluation.harness"]
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


def test_no_boardgraph_import_inside_a_function():
    bad = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    if (node.level if isinstance(node, ast.ImportFrom) else 0) or _resolve(name, node) or (
                            isinstance(node, ast.ImportFrom) and (node.module or "").startswith("boardgraph")):
                        bad.append(f"{path.relative_to(ROOT)}:{node.lineno} in {fn.name}()")
    assert not bad, "boardgraph imports inside functions (move them to module level):\n" + "\n".join(bad)


def test_module_sizes_and_flat_modules():
    long = {str(p.relative_to(ROOT)): n for p in MODULES.values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
    flat = sorted(p.name for p in (ROOT / "boardgraph").glob("*.py"))
    assert len(flat) <= MAX_FLAT, flat


def function_lengths(tree: ast.Module) -> list[tuple[str, int, int, str]]:
    """``(name, line, body lines without the docstring, docstring)`` of every function in ``tree``."""
    out = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(fn) or ""
            body = fn.body[1:] if doc and len(fn.body) > 1 else fn.body
            out.append((fn.name, fn.lineno, fn.end_lineno - body[0].lineno + 1, doc))
    return out


def test_function_length_counts_code_not_docstrings():
    tree = ast.parse('def f():\n    """Doc.\n\n    More.\n    """\n    a = 1\n    return a\n')
    assert function_lengths(tree) == [("f", 1, 2, "Doc.\n\nMore.")]


def test_no_long_function_without_a_reason():
    long = [f"{p.relative_to(ROOT)}:{line} {name}() has {n} lines"
            for p in MODULES.values() for name, line, n, doc in function_lengths(ast.parse(p.read_text()))
            if n > MAX_FUNCTION_LINES and "Kept in one piece" not in doc]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines of code:\n" + "\n".join(long)


@pytest.mark.slow
def test_every_module_imports_on_its_own():
    """Each module first, in a fresh interpreter state (package ``__init__`` order included)."""
    code = ("import importlib, sys\n"
            "import torch\n"
            f"names = {sorted(m for m in MODULES if not m.endswith('__main__'))!r}\n"
            "bad = []\n"
            "for n in names:\n"
            "    for m in [m for m in sys.modules if m == 'boardgraph' or m.startswith('boardgraph.')]:\n"
            "        del sys.modules[m]\n"
            "    try:\n"
            "        importlib.import_module(n)\n"
            "    except Exception as e:\n"
            "        bad.append(f'{n}: {type(e).__name__}: {e}')\n"
            "print('\\n'.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", out.stdout


def test_every_subpackage_is_listed_so_a_wheel_ships_it():
    # a sub-folder with an __init__.py that pyproject.toml does not list is missing from a wheel
    # (an editable install still finds it, so only a real install would show the gap)
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = package_dirs()
    assert set(cfg["packages"]) == set(dirs)
    for pkg, folder in dirs.items():
        for init in folder.glob("*/__init__.py"):
            assert f"{pkg}.{init.parent.name}" in dirs, f"{init.parent} is not in pyproject.toml's packages"
