"""Where the real data sets live: an explicit root, ``$BOARDGRAPH_DATA``, or ``../shared/data``."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["find_data_dir", "DATA_ENV_VAR"]

DATA_ENV_VAR = "BOARDGRAPH_DATA"
"""Environment variable naming the shared data folder (the one holding ``polyvore/``)."""


def find_data_dir(subdir: str, root: str | os.PathLike[str] | None = None,
                  required: tuple[str, ...] = ()) -> Path:
    """Locate a data set folder such as ``polyvore`` or ``steam-bundles``.

    Search order when ``root`` is ``None``: ``$BOARDGRAPH_DATA/<subdir>`` when the variable is
    set (and then only there); else ``<repo>/../shared/data/<subdir>`` where ``<repo>`` is the
    parent of the ``boardgraph/`` package folder; else ``/work/shared/data/<subdir>``.

    Args:
        subdir: the data set's folder name.
        root: an explicit folder, used as is.
        required: file names that must exist in the folder.

    Returns:
        The folder's path.

    Raises:
        FileNotFoundError: no folder found, or a required file missing; the message lists the
            paths tried and how to point boardgraph at the data.
    """
    if root is not None:
        candidates = [Path(root)]
    elif os.environ.get(DATA_ENV_VAR):
        candidates = [Path(os.environ[DATA_ENV_VAR]) / subdir]
    else:
        repo = Path(__file__).resolve().parents[2]
        candidates = [repo.parent / "shared" / "data" / subdir, Path("/work/shared/data") / subdir]
    hint = (f"pass root=<folder holding the files> or set {DATA_ENV_VAR} to the folder that "
            f"holds {subdir}/")
    for path in candidates:
        if path.is_dir():
            missing = [name for name in required if not (path / name).is_file()]
            if missing:
                raise FileNotFoundError(f"data folder {str(path)!r} lacks {missing}; {hint}")
            return path
    tried = ", ".join(repr(str(p)) for p in candidates)
    raise FileNotFoundError(f"{subdir} data not found (tried {tried}); {hint}")
