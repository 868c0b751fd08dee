"""Every notebook in ``examples/`` runs top to bottom in a real Jupyter kernel.

How the notebooks are run (what a notebook added to ``examples/`` can rely on and should follow):

* **Which**: every ``examples/*.ipynb``, found by glob at collection time, so a new notebook is
  tested without editing this file. Test ids are the file names.
* **Kernel**: ``nbclient`` starts the ipykernel ``python3`` kernel spec with its interpreter
  pinned to this one (``sys.executable``), so the notebook imports the same boardgraph and
  packages as pytest.
* **Working directory**: the kernel starts in ``examples/`` (as when Jupyter opens a notebook
  there). Notebooks write scratch files to a temporary directory, never next to themselves.
* **Parameters**: the first code cell of a notebook (tagged ``parameters``, the papermill
  convention) sets its sizes from environment variables. The kernel gets ``BOARDGRAPH_NB_SMALL=1`` (tiny sizes) unless the caller
  set it: ``BOARDGRAPH_NB_SMALL=0 pytest tests/examples`` runs the notebooks' full default sizes.
  Nothing is injected into the notebook, so running it by hand gives its documented defaults.
* **Threads**: ``OMP_NUM_THREADS=1`` unless the caller set it (as ``tests/training/test_trainer.py``
  does for its subprocess): the suite shares two cores, where extra torch threads only contend.
* **Matplotlib**: ``MPLBACKEND`` is always the inline backend (non-interactive; figures become
  outputs of the executed in-memory copy, which is discarded).
* **Time**: each cell gets ``BOARDGRAPH_NB_CELL_TIMEOUT`` seconds (default 180).
* **Data**: a notebook that reads ``../shared/data`` must skip those parts itself when absent.

A cell that raises fails the test with the notebook, the cell number, its source and the
traceback. The stored notebooks must carry no outputs (clean diffs); a second test checks that.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
from jupyter_client.manager import AsyncKernelManager  # jupyter_client comes with nbclient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
CELL_TIMEOUT = int(os.environ.get("BOARDGRAPH_NB_CELL_TIMEOUT", "180"))
KERNEL_ENV_DEFAULTS = {"BOARDGRAPH_NB_SMALL": "1", "OMP_NUM_THREADS": "1"}  # the caller's values win
KERNEL_ENV_FORCED = {"MPLBACKEND": "module://matplotlib_inline.backend_inline"}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

notebooks = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])


def _kernel_manager() -> AsyncKernelManager:
    """The ``python3`` kernel spec, launched with this interpreter."""
    km = AsyncKernelManager(kernel_name="python3")  # the class nbclient itself uses (enforces timeouts)
    spec = km.kernel_spec
    if spec is None or "ipykernel_launcher" not in spec.argv:
        pytest.fail(f"the 'python3' kernel spec is not ipykernel's (argv={getattr(spec, 'argv', None)}); "
                    "reinstall it with: python -m ipykernel install --sys-prefix")
    spec.argv = [sys.executable, *spec.argv[1:]]
    return km


def _describe_failure(nb, index: int | None, path: Path, exc: BaseException) -> str:
    """Notebook, cell number, cell source and the traceback (from the cell's error output)."""
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    if index is None:  # find the cell holding the error output
        index = next((i for i in code_cells
                      if any(o.get("output_type") == "error" for o in nb.cells[i].get("outputs", []))), None)
    if index is None:
        return f"{path.name}: {type(exc).__name__}: {exc}"
    cell = nb.cells[index]
    tb = [_ANSI.sub("", "\n".join(o.get("traceback", []))) for o in cell.get("outputs", [])
          if o.get("output_type") == "error"]
    detail = "\n".join(tb) if tb else f"{type(exc).__name__}: {_ANSI.sub('', str(exc))}"
    number = code_cells.index(index) + 1
    return (f"{path.name}: code cell {number} of {len(code_cells)} (cell index {index}) failed\n"
            f"----- source -----\n{cell.source}\n----- error -----\n{detail}")


@notebooks
def test_notebook_runs(path: Path) -> None:
    """Every cell runs without error, with the small settings, in a fresh kernel."""
    nb = nbformat.read(path, as_version=4)
    current: dict[str, int | None] = {"index": None}

    def on_cell_execute(cell, cell_index: int) -> None:
        current["index"] = cell_index

    client = nbclient.NotebookClient(nb, km=_kernel_manager(), timeout=CELL_TIMEOUT, allow_errors=False,
                                     resources={"metadata": {"path": str(EXAMPLES)}},
                                     on_cell_execute=on_cell_execute)
    env = {**KERNEL_ENV_DEFAULTS, **os.environ, **KERNEL_ENV_FORCED}
    try:
        client.execute(env=env)
    except CellExecutionError as e:
        pytest.fail(_describe_failure(nb, None, path, e), pytrace=False)
    except (CellTimeoutError, DeadKernelError) as e:
        pytest.fail(_describe_failure(nb, current["index"], path, e), pytrace=False)


@notebooks
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    """The committed file is valid nbformat and holds no outputs or execution counts."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: cells {dirty} carry outputs or execution counts; clear them before "
                       "committing (Jupyter: Edit > Clear Outputs of All Cells, then save; or "
                       "jupyter nbconvert --clear-output --inplace, where nbconvert is installed)")
