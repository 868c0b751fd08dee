"""The out-of-core builder's id dictionaries: codes in order of first appearance, collisions caught."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from boardgraph.graph.errors import SchemaError
from boardgraph.graph.stream import ids as ids_mod
from boardgraph.graph.stream.ids import IdCollisionError, IdDictionary, id_type


def test_codes_follow_first_appearance_across_batches():
    for kind, make in (("int", lambda v: pd.Index(np.array(v, np.int64) * 1000003)),
                       ("str", lambda v: pd.Index([f"id{x}" for x in v], dtype=object))):
        d = IdDictionary("pin", kind, "pin_id")
        assert d.encode(make([5, 3, 9])).tolist() == [0, 1, 2]
        assert d.encode(make([3, 7, 5, 8])).tolist() == [1, 3, 0, 4]
        assert len(d) == 5
        d.freeze()
        assert len(d) == 5
        got = d.ids(np.array([4, 0, 3])).to_pylist()
        assert got == (make([8, 5, 7]).tolist())


def test_a_hash_collision_is_an_error_not_a_merge(monkeypatch):
    real = ids_mod.text_hashes

    def colliding(text):
        h1, h2 = real(text)
        h1 = h1.copy()
        h1[text == "b"] = real(np.array(["a"], dtype=object))[0][0]  # "b" takes "a"'s first hash
        return h1, h2

    monkeypatch.setattr(ids_mod, "text_hashes", colliding)
    d = IdDictionary("pin", "str", "pin_id")
    d.encode(pd.Index(["a", "c"], dtype=object))
    with pytest.raises(IdCollisionError, match="pin id 'b' has the same 64-bit hash as a different pin id"):
        d.encode(pd.Index(["c", "b"], dtype=object))
    d2 = IdDictionary("pin", "str", "pin_id")
    with pytest.raises(IdCollisionError):  # in the same batch too
        d2.encode(pd.Index(["a", "b"], dtype=object))


def test_id_types():
    assert id_type(pd.Series([1, 2]), "c") == "int"
    assert id_type(pd.Series([1, None], dtype="Int64"), "c") == "int"
    assert id_type(pd.Series(["a", None], dtype=object), "c") == "str"
    assert id_type(pd.Series(["a"], dtype="string"), "c") == "str"
    with pytest.raises(SchemaError, match="column 'c' holds floating ids"):
        id_type(pd.Series([1.5, 2.0]), "c")
    with pytest.raises(SchemaError, match="integer or text ids"):
        id_type(pd.Series(["a", 3], dtype=object), "c")
