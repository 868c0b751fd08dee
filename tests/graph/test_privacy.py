import hashlib
import hmac
import time

import numpy as np
import pandas as pd
import pytest

from boardgraph.graph.errors import MalformedValueError, NullIdError, SchemaError
from boardgraph.graph.privacy import filter_consent, filter_min_group_size, pseudonymize


def _hmac_hex(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


# --- pseudonymize -------------------------------------------------------------------------------

def test_pseudonymize_matches_reference_hmac_and_keeps_other_columns():
    df = pd.DataFrame({"user": ["alice", "bob", "alice"], "pin": [1, 2, 3]}, index=[10, 11, 12])
    out = pseudonymize(df, "user", "s3cret")
    assert list(out["user"]) == [_hmac_hex(b"s3cret", "alice"), _hmac_hex(b"s3cret", "bob"),
                                 _hmac_hex(b"s3cret", "alice")]
    # The widely published HMAC-SHA256 test value for key "key" and this sentence.
    fox = pd.DataFrame({"user": ["The quick brown fox jumps over the lazy dog"]})
    assert pseudonymize(fox, "user", "key")["user"][0] == (
        "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8")
    assert list(out["pin"]) == [1, 2, 3]
    assert list(out.index) == [10, 11, 12]
    # input untouched
    assert list(df["user"]) == ["alice", "bob", "alice"]


def test_pseudonymize_str_and_bytes_key_agree_and_prefix():
    df = pd.DataFrame({"user": ["u1", "u2"]})
    a = pseudonymize(df, "user", "k", prefix="u_")
    b = pseudonymize(df, "user", b"k", prefix="u_")
    assert list(a["user"]) == list(b["user"])
    assert a["user"][0] == "u_" + _hmac_hex(b"k", "u1")
    assert all(len(v) == 2 + 64 for v in a["user"])


def test_pseudonymize_different_key_gives_different_digests():
    df = pd.DataFrame({"user": ["u1", "u2", "u3"]})
    a = pseudonymize(df, "user", "key-one")["user"]
    b = pseudonymize(df, "user", "key-two")["user"]
    assert set(a).isdisjoint(set(b))
    assert a.nunique() == 3


def test_pseudonymize_nulls_stay_null():
    df = pd.DataFrame({"user": ["a", None, np.nan, "a", pd.NA]})
    out = pseudonymize(df, "user", "k")
    assert out["user"].isna().tolist() == [False, True, True, False, True]
    assert out["user"][0] == out["user"][3] == _hmac_hex(b"k", "a")


def test_pseudonymize_numeric_ids_hash_their_text():
    df = pd.DataFrame({"user": [5, 7, 5]})
    out = pseudonymize(df, "user", "k")
    assert out["user"].tolist() == [_hmac_hex(b"k", "5"), _hmac_hex(b"k", "7"),
                                    _hmac_hex(b"k", "5")]
    assert out["user"].dtype == object


def test_pseudonymize_keeps_no_raw_value_even_for_categoricals():
    raw = ["alice", "bob", "carol"]
    df = pd.DataFrame({"user": pd.Categorical(["alice", "bob", "alice"], categories=raw)})
    out = pseudonymize(df, "user", "k")
    assert out["user"].dtype == object
    cells = set(out.astype(str).to_numpy().ravel())
    assert not cells & set(raw)
    assert not any(r in c for r in raw for c in cells)


def test_pseudonymize_rejects_empty_key_bad_type_and_missing_column():
    df = pd.DataFrame({"user": ["a"]})
    with pytest.raises(ValueError, match="key is empty"):
        pseudonymize(df, "user", "")
    with pytest.raises(ValueError, match="key is empty"):
        pseudonymize(df, "user", b"")
    with pytest.raises(TypeError, match="str or bytes"):
        pseudonymize(df, "user", 123)  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="'usr'"):
        pseudonymize(df, "usr", "k")


def test_pseudonymize_one_million_rows_is_per_unique_value():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 50_000, size=1_000_000)
    df = pd.DataFrame({"user": users})
    start = time.perf_counter()
    out = pseudonymize(df, "user", "k")
    elapsed = time.perf_counter() - start
    assert out["user"].nunique() == len(np.unique(users))
    i = 123_456
    assert out["user"].iloc[i] == _hmac_hex(b"k", str(users[i]))
    # 50k HMACs plus a gather; row-wise hashing of 1M rows would take several seconds.
    assert elapsed < 5.0


# --- filter_consent -----------------------------------------------------------------------------

def test_filter_consent_mixed_representations():
    df = pd.DataFrame({
        "pin": list("abcdefgh"),
        "consent": [True, False, 1, 0, "Yes", " no ", "TRUE", "false"],
    })
    kept, dropped = filter_consent(df, "consent")
    assert kept["pin"].tolist() == ["a", "c", "e", "g"]
    assert dropped == 4
    assert len(df) == 8  # input untouched


def test_filter_consent_numeric_and_nullable_columns():
    df = pd.DataFrame({"c": pd.array([1, 0, None, 1], dtype="Int64")}, index=[5, 6, 7, 8])
    kept, dropped = filter_consent(df, "c")
    assert kept.index.tolist() == [5, 8]
    assert dropped == 2  # the 0 and the null
    kept, dropped = filter_consent(pd.DataFrame({"c": [1.0, np.nan, 0.0]}), "c")
    assert kept.index.tolist() == [0] and dropped == 2
    kept, dropped = filter_consent(pd.DataFrame({"c": np.array([True, True, False])}), "c")
    assert kept.index.tolist() == [0, 1] and dropped == 1


def test_filter_consent_null_means_no_consent():
    df = pd.DataFrame({"c": ["yes", None, np.nan]})
    kept, dropped = filter_consent(df, "c")
    assert kept.index.tolist() == [0]
    assert dropped == 2


def test_filter_consent_unrecognised_value_names_row_and_value():
    df = pd.DataFrame({"c": ["yes", "maybe", "no", 2]}, index=["r0", "r1", "r2", "r3"])
    with pytest.raises(MalformedValueError) as info:
        filter_consent(df, "c")
    msg = str(info.value)
    assert "'r1'" in msg and "'maybe'" in msg
    assert "'r3'" in msg and "2" in msg
    assert "Fix:" in msg
    assert info.value.column == "c"
    assert info.value.rows == ["r1", "r3"]
    assert isinstance(info.value, ValueError)


def test_filter_consent_missing_column():
    with pytest.raises(SchemaError, match="'consent'"):
        filter_consent(pd.DataFrame({"c": [True]}), "consent")


# --- filter_min_group_size ----------------------------------------------------------------------

def test_filter_min_group_size_counts_distinct_members():
    df = pd.DataFrame({
        "board": ["b1", "b1", "b1", "b2", "b2", "b3"],
        "pin": ["p1", "p2", "p3", "p1", "p1", "p9"],  # b2 lists p1 twice: 1 distinct member
    })
    kept, dropped = filter_min_group_size(df, "board", "pin", 2)
    assert kept.index.tolist() == [0, 1, 2]
    assert dropped == 3
    kept, dropped = filter_min_group_size(df, "board", "pin", 3)
    assert kept.index.tolist() == [0, 1, 2] and dropped == 3
    kept, dropped = filter_min_group_size(df, "board", "pin", 4)
    assert kept.empty and dropped == 6
    kept, dropped = filter_min_group_size(df, "board", "pin", 1)
    assert len(kept) == 6 and dropped == 0


def test_filter_min_group_size_users_per_item():
    df = pd.DataFrame({"item": [1, 1, 2, 2, 2, 3], "user": ["u", "v", "u", "v", "w", "u"]})
    kept, dropped = filter_min_group_size(df, "item", "user", 3)
    assert kept["item"].tolist() == [2, 2, 2]
    assert dropped == 3


def test_filter_min_group_size_rejects_bad_input():
    df = pd.DataFrame({"board": ["b1", None], "pin": ["p1", "p2"]})
    with pytest.raises(NullIdError, match="'board'"):
        filter_min_group_size(df, "board", "pin", 1)
    with pytest.raises(SchemaError, match="'user'"):
        filter_min_group_size(df, "board", "user", 1)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="k must be an integer"):
            filter_min_group_size(df.dropna(), "board", "pin", bad)  # type: ignore[arg-type]


def test_filter_min_group_size_keep_nulls_leaves_them_to_a_later_check():
    df = pd.DataFrame({"board": ["b1", "b1", None, "b2", "b2", "b3"],
                       "pin": ["p1", "p2", "p3", "p4", None, "p5"]})
    kept, dropped = filter_min_group_size(df, "board", "pin", 2, nulls="keep")
    # b1 has 2 members; the null-board row is kept; b2 has 1 non-null member; b3 has 1
    assert kept.index.tolist() == [0, 1, 2]
    assert dropped == 3
    with pytest.raises(ValueError, match="nulls must be"):
        filter_min_group_size(df, "board", "pin", 2, nulls="drop")


def test_filter_consent_text_one_and_zero_from_a_csv():
    """A CSV cell is text: "1" / "0" mean what the numbers mean, and the error names the
    offending values only, never a value that was accepted (the old message said "use 0/1" when
    the column held "1")."""
    kept, dropped = filter_consent(pd.DataFrame({"c": ["1", " 0", "1"]}), "c")
    assert list(kept.index) == [0, 2] and dropped == 1
    with pytest.raises(MalformedValueError) as info:
        filter_consent(pd.DataFrame({"c": ["1", "maybe", "0", "2"]}), "c")
    msg = str(info.value)
    assert "'maybe', '2'" in msg and "'1'" not in msg.split("Fix:")[0]


def test_filter_consent_reads_number_text_as_the_number_whatever_the_column():
    # "1.0" in a text column means what 1.0 in a number column means: the same CSV cell gives the
    # same answer whether pandas read its column as numbers or as text (a batch reader sees text)
    kept, dropped = filter_consent(pd.DataFrame({"c": ["1.0", "0.0", "yes", " 1 ", "1e0"]}), "c")
    assert list(kept.index) == [0, 2, 3, 4] and dropped == 1
    with pytest.raises(MalformedValueError, match="'0.5', 'nan', 'inf'"):
        filter_consent(pd.DataFrame({"c": ["0.5", "nan", "inf", "1"]}), "c")
