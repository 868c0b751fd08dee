"""Saved artefacts: what a save may replace (check_output) and the leftovers of interrupted saves."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest

from boardgraph.graph import PinBoardGraph, from_collections


@pytest.fixture
def graph() -> PinBoardGraph:
    df = pd.DataFrame({"board_id": ["b1", "b1", "b2"], "pin_id": ["p1", "p2", "p2"]})
    return from_collections(df)[0]


def _tree(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# -- fix 1: never replace what is not a saved artefact of the same kind ----------------------------
def test_save_refuses_a_folder_that_is_not_a_saved_graph(graph, tmp_path):
    from boardgraph.errors import OutputExistsError

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("x")
    for overwrite in (True, False):  # even with overwrite: boardgraph never deletes other files
        with pytest.raises(OutputExistsError, match=r"precious.*not a saved boardgraph\.graph.*--overwrite") as e:
            graph.save(precious, overwrite=overwrite)
        assert e.value.path == precious
    assert (precious / "thesis.txt").read_text() == "x"
    assert _tree(tmp_path) == ["precious", "precious/thesis.txt"]  # no temporary or .old-* left


def test_save_refuses_a_file_and_leaves_it_in_place(graph, tmp_path):
    from boardgraph.errors import OutputExistsError

    target = tmp_path / "out"
    target.write_text("my notes")
    with pytest.raises(OutputExistsError, match=r"out is a file"):
        graph.save(target, overwrite=True)
    assert target.read_text() == "my notes"
    assert _tree(tmp_path) == ["out"]  # not moved to a hidden .out.old-*


def test_save_refuses_a_symlink(graph, tmp_path):
    from boardgraph.errors import OutputExistsError

    graph.save(tmp_path / "real")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(OutputExistsError, match="symbolic link"):
        graph.save(tmp_path / "link")
    assert (tmp_path / "link").is_symlink()


def test_save_into_an_empty_folder(graph, tmp_path):
    (tmp_path / "g").mkdir()
    graph.save(tmp_path / "g", overwrite=False)
    assert PinBoardGraph.load(tmp_path / "g").num_edges("in") == 3


def test_resave_same_kind_needs_overwrite_when_asked(graph, tmp_path):
    from boardgraph.errors import OutputExistsError

    graph.save(tmp_path / "g")
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert manifest["artefact"] == "boardgraph.graph"
    assert manifest["contents"] == ["features", "ids", "manifest.json", "topology"]
    with pytest.raises(OutputExistsError, match=r"g holds a saved boardgraph\.graph.*overwrite=True.*--overwrite"):
        graph.save(tmp_path / "g", overwrite=False)
    smaller = graph.remove_edges("in", eids=[0])
    smaller.save(tmp_path / "g")  # the Python API replaces a graph by default
    assert PinBoardGraph.load(tmp_path / "g").num_edges("in") == 2
    assert _tree(tmp_path)[0] == "g"  # and nothing hidden beside it
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_an_old_save_without_the_artefact_field_is_recognised(graph, tmp_path):
    graph.save(tmp_path / "g")
    m = tmp_path / "g" / "manifest.json"
    old = json.loads(m.read_text())
    del old["artefact"], old["contents"]
    m.write_text(json.dumps(old))
    graph.remove_edges("in", eids=[0]).save(tmp_path / "g")
    assert PinBoardGraph.load(tmp_path / "g").num_edges("in") == 2


def test_a_saved_graph_holding_user_files_is_not_replaced(graph, tmp_path):
    from boardgraph.errors import OutputExistsError

    graph.save(tmp_path / "g")
    (tmp_path / "g" / "notes.md").write_text("mine")
    with pytest.raises(OutputExistsError, match=r"files boardgraph did not write \(notes\.md\)"):
        graph.save(tmp_path / "g", overwrite=True)
    assert (tmp_path / "g" / "notes.md").read_text() == "mine"
    assert PinBoardGraph.load(tmp_path / "g").num_edges("in") == 3


def test_an_artefact_of_another_kind_is_refused(graph, tmp_path):
    from boardgraph.errors import OutputExistsError

    out = tmp_path / "idx"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"artefact": "boardgraph.index", "contents": ["config.json"]}))
    with pytest.raises(OutputExistsError, match=r"idx holds a saved boardgraph\.index, not a boardgraph\.graph"):
        graph.save(out, overwrite=True)
    assert _tree(tmp_path) == ["idx", "idx/config.json"]


def test_check_output(graph, tmp_path):
    from boardgraph._io import check_output
    from boardgraph.errors import OutputExistsError
    from boardgraph.graph.io import GRAPH_ARTEFACT

    assert check_output(tmp_path / "new", GRAPH_ARTEFACT) is False
    (tmp_path / "empty").mkdir()
    assert check_output(tmp_path / "empty", GRAPH_ARTEFACT) is False
    graph.save(tmp_path / "g")
    assert check_output(tmp_path / "g", GRAPH_ARTEFACT, overwrite=True) is True
    with pytest.raises(OutputExistsError, match="--overwrite"):
        check_output(tmp_path / "g", GRAPH_ARTEFACT)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{not json")
    with pytest.raises(OutputExistsError, match=r"broken is not a saved boardgraph\.graph \(manifest\.json"):
        check_output(tmp_path / "broken", GRAPH_ARTEFACT, overwrite=True)


def test_a_folder_changed_during_the_save_is_not_replaced(graph, tmp_path, monkeypatch):
    """What is at the path is checked again when the save is done, and once more after it is moved
    aside: a folder that changed since is moved back, never deleted."""
    import boardgraph.graph.io as gio
    from boardgraph.errors import OutputExistsError

    graph.save(tmp_path / "g")
    real_write = gio._save_tensor

    def write_then_meddle(path, t):
        real_write(path, t)
        (tmp_path / "g" / "late.txt").write_text("arrived during the save")
    monkeypatch.setattr(gio, "_save_tensor", write_then_meddle)
    with pytest.raises(OutputExistsError, match="late.txt"):
        graph.save(tmp_path / "g")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g"]
    # the last check, after the move aside (as if late.txt came between the check and the move)
    monkeypatch.setattr(gio, "_save_tensor", real_write)
    monkeypatch.setattr(gio, "check_output", lambda path, kind, overwrite=False: True)
    with pytest.raises(OutputExistsError, match="late.txt"):
        graph.save(tmp_path / "g")
    assert (tmp_path / "g" / "late.txt").read_text() == "arrived during the save"
    assert PinBoardGraph.load(tmp_path / "g").num_edges("in") == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g"]


def test_a_path_under_a_file_is_refused(graph, tmp_path):
    from boardgraph.errors import OutputExistsError

    (tmp_path / "notes").write_text("x")
    with pytest.raises(OutputExistsError, match=r"notes is a file, so .*notes/g cannot be created"):
        graph.save(tmp_path / "notes" / "g")


# -- fix 2: leftovers of interrupted saves are removed on the next save ---------------------------
def test_next_save_removes_stale_temporaries_only(graph, tmp_path):
    from boardgraph._io import temp_sibling

    dead, host = _dead_pid(), temp_sibling(tmp_path / "g").name.split("-")[1]
    stale = [f".g.tmp-{host}-{dead}-0123abcd", f".g.old-{host}-{dead}-4567cdef", f".g.tmp-{dead}",
             ".g.tmp-89abcdef"]
    live = [f".g.tmp-{host}-{os.getppid()}-0123abcd",  # a save in progress in another process
            f".g.tmp-{host}-{os.getpid()}-fedcba98",  # one of this process (another thread)
            ".g.tmp-76543210",  # legacy name, recent: its writer may still run
            ".g.old-1a2b3c4d",  # an old boardgraph moved a user's file here: never deleted
            ".other.tmp-12345", ".g.tmp-not-ours"]
    graph.save(tmp_path / "elsewhere")
    shutil.rmtree(tmp_path / "elsewhere" / "topology")  # a deletion cut short: the manifest goes last
    (tmp_path / "elsewhere").rename(tmp_path / f".g.old-{host}-{dead}-4567cdef")
    for name in stale + live:
        if name == ".g.old-1a2b3c4d":
            (tmp_path / name).write_text("a user's file that an old version moved aside")
        elif name != f".g.old-{host}-{dead}-4567cdef":
            (tmp_path / name).mkdir()
            (tmp_path / name / "part.npy").write_bytes(b"\x93NUMPY")
    week_ago = time.time() - 7 * 86400
    os.utime(tmp_path / ".g.tmp-89abcdef", (week_ago, week_ago))
    graph.save(tmp_path / "g")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["g"] + live)


def test_remove_stale_temps_of_a_file(tmp_path):
    from boardgraph._io import remove_stale_temps, temp_sibling

    ck = tmp_path / "checkpoint.pt"
    ck.write_bytes(b"ok")
    dead = _dead_pid()
    (tmp_path / f".checkpoint.pt.tmp-{dead}").write_bytes(b"half")
    mine = temp_sibling(ck)
    mine.write_bytes(b"being written")
    assert mine.name.startswith(".checkpoint.pt.tmp-") and mine.name.endswith(mine.name[-8:])
    removed = remove_stale_temps(ck)
    assert removed == [tmp_path / f".checkpoint.pt.tmp-{dead}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["checkpoint.pt", mine.name])


def test_atomic_write_text_removes_stale_temps(tmp_path):
    from boardgraph._io import atomic_write_text

    dead = _dead_pid()
    (tmp_path / f".config.json.tmp-{dead}").write_text("half")
    atomic_write_text(tmp_path / "config.json", "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
