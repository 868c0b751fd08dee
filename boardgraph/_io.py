"""The rules every saved artefact of boardgraph follows (graph, index, feature cache, run files).

A save writes a temporary sibling ``.NAME.tmp-HOST-PID-RAND`` (:func:`temp_sibling`) and renames it
into place (:func:`atomic_replace_dir` for folders, :func:`atomic_write` for files), so a reader
never sees a half-written artefact and a crash leaves any previous save intact. A folder
artefact's JSON manifest names its kind (:class:`ArtefactKind`) and lists its top-level entries.
A save replaces only a folder holding an artefact of the same kind and nothing else
(:func:`check_output`); a file, a user's folder or another kind of artefact is refused with
:class:`~boardgraph.errors.OutputExistsError` and never deleted, with or without ``overwrite``.
The temporaries' names carry the writer's host and pid, so the next save to the same place
removes those of dead writers (:func:`remove_stale_temps`).
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from boardgraph.errors import OutputExistsError

__all__ = ["ArtefactKind", "check_output", "read_manifest", "temp_sibling", "remove_stale_temps",
           "atomic_replace_dir", "atomic_write", "atomic_write_text", "READ_ERRORS"]

log = logging.getLogger(__name__)
# What reading a damaged .npy / Parquet / JSON file raises (numpy: ValueError or EOFError;
# pyarrow: ArrowInvalid, a ValueError, or other ArrowExceptions).
READ_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, EOFError, pa.ArrowException)


# -- saved artefacts: what a save may replace -------------------------------------------------------
@dataclass(frozen=True)
class ArtefactKind:
    """What marks a folder as a saved artefact of one kind.

    Attributes:
        name: the kind, written as ``manifest["artefact"]`` (``"boardgraph.graph"``).
        manifest: the JSON file at the top of the folder that names the kind.
        legacy_keys: keys every manifest of this kind has had; a manifest with all of them and no
            ``artefact`` field is a save written before the field existed.
        legacy_entries: glob patterns of the top-level entries such an older save may hold.
    """

    name: str
    manifest: str
    legacy_keys: tuple[str, ...] = ()
    legacy_entries: tuple[str, ...] = ()

    def stamp(self, folder: Path) -> dict[str, Any]:
        """The manifest fields naming this kind and the top-level entries of ``folder`` (the
        manifest included): add them to the manifest as its last write into the folder."""
        return {"artefact": self.name, "contents": sorted({*os.listdir(folder), self.manifest})}




def read_manifest(path: str | Path) -> tuple[dict[str, Any] | None, str]:
    """Read a JSON object: ``(document, "")``, or ``(None, why)`` when it is missing or unreadable
    (``why`` names the file: ``"manifest.json is not valid JSON"``). Never raises on bad content."""
    path = Path(path)
    if not path.is_file():
        return None, f"no {path.name}"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None, f"{path.name} is not valid JSON"
    if not isinstance(doc, dict):
        return None, f"{path.name} is not a JSON object"
    return doc, ""


def _declared_kind(folder: Path, entries: list[str]) -> tuple[str, str] | None:
    """``(kind, manifest name)`` of the first small top-level JSON file naming a boardgraph kind."""
    for name in entries:
        f = folder / name
        if name.endswith(".json") and f.is_file() and f.stat().st_size <= 1 << 20:
            doc, _ = read_manifest(f)
            kind = doc.get("artefact") if doc else None
            if isinstance(kind, str) and kind.startswith("boardgraph."):
                return kind, name
    return None


def _refusal(folder: Path, kind: ArtefactKind, shown: Path) -> str | None:
    """Why the non-empty ``folder`` may not be replaced by a ``kind`` save to ``shown`` (``None``:
    it holds an artefact of ``kind`` and nothing else)."""
    entries = sorted(os.listdir(folder))
    doc, why = read_manifest(folder / kind.manifest)
    declared = doc.get("artefact") if doc is not None else None
    contents = doc.get("contents") if doc is not None else None
    if declared == kind.name and isinstance(contents, list):
        known = {*map(str, contents), kind.manifest}
        extra = [e for e in entries if e not in known]
    elif doc is not None and declared is None and kind.legacy_keys and all(k in doc for k in kind.legacy_keys):
        extra = [e for e in entries if not any(fnmatch(e, p) for p in kind.legacy_entries)]
    else:
        other = declared if isinstance(declared, str) else None
        other = other or (_declared_kind(folder, entries) or (None, ""))[0]
        if other and other != kind.name:
            return (f"{shown} holds a saved {other}, not a {kind.name}; choose another path "
                    f"(overwrite=True / --overwrite replaces only a saved {kind.name})")
        why = why or f"{kind.manifest} is not a {kind.name} manifest"
        return (f"{shown} is not a saved {kind.name} ({why}); boardgraph never deletes other files, even with "
                f"overwrite=True / --overwrite: choose another path or an empty folder")
    if extra:
        more = f" and {len(extra) - 5} more" if len(extra) > 5 else ""
        return (f"{shown} holds a saved {kind.name} plus files boardgraph did not write ({', '.join(extra[:5])}"
                f"{more}); move them out or choose another path (overwrite=True / --overwrite replaces only "
                f"what boardgraph wrote)")
    return None


def check_output(path: str | Path, kind: ArtefactKind, overwrite: bool = False) -> bool:
    """Check that a save of ``kind`` may write ``path``, before anything is written.

    ``path`` may be absent, an empty folder, or (with ``overwrite``) a folder holding a saved
    artefact of ``kind`` and nothing else: one whose manifest names ``kind`` and lists every
    top-level entry, or an older save recognised by ``kind.legacy_keys`` / ``legacy_entries``.

    Args:
        path: where the artefact is to be saved.
        kind: what is saved (:data:`GRAPH_ARTEFACT`, ``boardgraph.inference.index.INDEX_ARTEFACT``, ...).
        overwrite: allow replacing a saved artefact of ``kind``. Nothing else is ever replaced.

    Returns:
        ``True`` when an artefact of ``kind`` is there and will be replaced, ``False`` when the
        path is free (absent or an empty folder).

    Raises:
        OutputExistsError: ``path`` is a file or a symbolic link, a folder that is not such an
            artefact (or holds other files besides), an artefact of another kind, or an artefact of
            ``kind`` while ``overwrite`` is False. The message names the path and the way out.
    """
    path = Path(path)
    err = lambda msg: OutputExistsError(msg, path=path, kind=kind.name)  # noqa: E731
    if path.is_symlink():
        raise err(f"{path} is a symbolic link; boardgraph does not save through links, even with "
                  f"overwrite=True / --overwrite: give the folder it points to, or choose another path")
    if not path.exists():
        above = next((p for p in path.parents if p.exists()), None)
        if above is not None and not above.is_dir():
            raise err(f"{above} is a file, so {path} cannot be created: choose another path")
        return False
    if not path.is_dir():
        raise err(f"{path} is a file; a {kind.name} is saved as a folder and boardgraph never replaces "
                  f"other files, even with overwrite=True / --overwrite: choose another path")
    if not os.listdir(path):
        return False
    problem = _refusal(path, kind, path)
    if problem is not None:
        raise err(problem)
    if not overwrite:
        raise err(f"{path} holds a saved {kind.name} already; pass overwrite=True (command line: --overwrite) "
                  f"to replace it, or choose another path")
    return True


# -- temporaries and their leftovers ----------------------------------------------------------------
def _host() -> str:
    """This machine's name as it appears in temporary names: letters, digits and ``_`` only."""
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:24] or "host"


def temp_sibling(path: str | Path, tag: str = "tmp") -> Path:
    """A fresh hidden name beside ``path`` for a temporary copy: ``.NAME.<tag>-HOST-PID-RAND``.

    Write the new file or folder there, then ``os.replace`` it onto ``path``. The host and pid
    let :func:`remove_stale_temps` tell the leftovers of a dead writer from a save in progress.
    ``tag`` is ``"tmp"`` (a copy being written) or ``"old"`` (a previous copy being deleted).
    """
    path = Path(path)
    return path.with_name(f".{path.name}.{tag}-{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (``True`` when that cannot be told)."""
    if os.name != "posix" or pid <= 0:  # on Windows os.kill would terminate the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, under another user
        return True
    return True


def _writer_gone(token: str, entry: Path, max_age_s: float) -> bool:
    """Whether the writer of the temporary ``entry`` (name suffix ``token``) can no longer finish."""
    m = re.fullmatch(r"([A-Za-z0-9_]+)-(\d+)-[0-9a-f]{8}", token)
    if m and m[1] == _host() or re.fullmatch(r"\d{1,7}", token):  # pid-only: older boardgraph, this host
        pid = int(m[2] if m else token)
        return pid != os.getpid() and not _pid_alive(pid)
    if m or re.fullmatch(r"[0-9a-f]{8}", token):  # another host's, or an older boardgraph's uuid name
        try:
            return time.time() - entry.lstat().st_mtime > max_age_s
        except OSError:
            return False
    return False


def _discardable_old(entry: Path, kind: ArtefactKind | None) -> bool:
    """An ``.old-*`` leftover may go only if it is a folder holding (what remains of) an artefact."""
    if entry.is_symlink() or not entry.is_dir():
        return False  # older boardgraph versions moved user files here: never delete them
    entries = sorted(os.listdir(entry))
    if not entries:
        return True
    if kind is not None and _refusal(entry, kind, entry) is None:
        return True
    declared = _declared_kind(entry, entries)
    return declared is not None and _refusal(entry, ArtefactKind(*declared), entry) is None


def _remove_tree(folder: Path, manifest: str) -> None:
    """Delete ``folder`` with its manifest last, so that a deletion cut short leaves a folder that
    is still recognisably an artefact (and is removed by the next :func:`remove_stale_temps`)."""
    for e in os.scandir(folder):
        if e.name == manifest:
            continue
        if e.is_dir(follow_symlinks=False):
            shutil.rmtree(e.path, ignore_errors=True)
        else:
            Path(e.path).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def remove_stale_temps(path: str | Path, kind: ArtefactKind | None = None, *,
                       max_age_s: float = 86400.0) -> list[Path]:
    """Remove the leftovers of interrupted saves to ``path``: ``.NAME.tmp-*`` and ``.NAME.old-*``
    beside it whose writer is gone. Call it when saving to ``path``; it never raises.

    A leftover is stale when its name carries this host and the pid of a process that no longer
    exists (:func:`temp_sibling` names, and the ``.NAME.tmp-PID`` names of older versions), or,
    for names whose writer cannot be told (another host, older uuid names), when it was last
    modified more than ``max_age_s`` ago. Temporaries of this process are kept (another thread may
    be writing them). An ``.old-*`` entry is removed only when it is a folder holding an artefact
    (of ``kind`` or of the kind its manifest names) and nothing else: older versions moved user
    files to such names, and those stay.

    Args:
        path: the file or folder being saved.
        kind: the artefact kind saved at ``path``, to recognise its older saves among ``.old-*``.
        max_age_s: age after which a leftover whose writer cannot be told is stale.

    Returns:
        The paths removed.
    """
    path = Path(path)
    prefix = f".{path.name}."
    try:
        names = sorted(os.listdir(path.parent))
    except OSError:
        return []
    removed = []
    for name in names:
        tag, sep, token = name[len(prefix):].partition("-")
        if not name.startswith(prefix) or tag not in ("tmp", "old") or not sep:
            continue
        entry = path.parent / name
        try:
            if not _writer_gone(token, entry, max_age_s):
                continue
            if tag == "old" and not _discardable_old(entry, kind):
                log.warning("%s is left by an interrupted save but is not a boardgraph artefact; it may hold "
                            "a file an older boardgraph moved aside: check it and remove it yourself", entry)
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        except OSError as e:
            log.warning("could not remove %s, left by an interrupted save: %s", entry, e)
            continue
        if not os.path.lexists(entry):
            log.info("removed %s, left by an interrupted save", entry)
            removed.append(entry)
    return removed


# -- atomic writers ---------------------------------------------------------------------------------
def atomic_replace_dir(tmp: Path, path: Path, kind: ArtefactKind, *, overwrite: bool = True) -> None:
    """Move the finished folder ``tmp`` (a :func:`temp_sibling` of ``path``) to ``path``.

    What is at ``path`` must pass :func:`check_output`; it is checked again after it is moved
    aside, so a folder that changed meanwhile is moved back, never deleted. The previous artefact
    is deleted after the swap, then the stale temporaries of earlier saves (:func:`remove_stale_temps`).

    Raises:
        OutputExistsError: see :func:`check_output`; or another process saved to ``path`` during
            this save (``tmp`` is then left to the caller to delete).
    """
    tmp, path = Path(tmp), Path(path)
    old = None
    if check_output(path, kind, overwrite):
        old = temp_sibling(path, "old")
        os.replace(path, old)
        problem = _refusal(old, kind, path) if os.listdir(old) else None
        if problem is not None:
            try:
                os.replace(old, path)
            except OSError:
                problem += f" (it was moved to {old} and could not be moved back: move it back yourself)"
            raise OutputExistsError(problem, path=path, kind=kind.name)
    try:
        os.replace(tmp, path)
    except OSError as e:  # ENOTEMPTY / EEXIST: a concurrent save got there first
        if old is not None and not os.path.lexists(path):
            os.replace(old, path)
        raise OutputExistsError(f"{path} was written by another process during this save ({e.strerror}); "
                                f"this save is discarded: save again, one process at a time",
                                path=path, kind=kind.name) from e
    if old is not None:
        _remove_tree(old, kind.manifest)
    remove_stale_temps(path, kind)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None], fsync: bool = False) -> None:
    """Call ``write(fh)`` on a binary file that is a uniquely named temporary sibling of ``path``
    (flushed, and synced to disk with ``fsync``), then rename it over ``path``: a reader sees the old
    file or the new one, never a part, and two writers never share a temporary file. A failed write
    removes its temporary file; the temporaries of writers killed earlier are removed after the
    write (:func:`remove_stale_temps`)."""
    path = Path(path)
    tmp = temp_sibling(path)
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    remove_stale_temps(path)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_write`)."""
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
