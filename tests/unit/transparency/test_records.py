"""Leaf records: dates, codes and counts only, one canonical encoding, and a typed error for
any leaf bytes that are not exactly such a record."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from samizdat.transparency.records import (
    MAX_LEAF_BYTES,
    LeafError,
    LeafRecord,
    decode_leaf,
    encode_leaf,
)

GRANTED = LeafRecord(
    date="2026-08-14",
    jurisdictions=("CH", "DE"),
    category="terrorism",
    outcome="granted",
    reason=None,
    accounts=2,
)
REFUSED = LeafRecord(
    date="2026-02-01",
    jurisdictions=("XB",),
    category="fraud",
    outcome="refused",
    reason="ORDER_EXPIRED",
    accounts=0,
)


def fields(**changes: Any) -> dict[str, Any]:
    return {**GRANTED.model_dump(), **changes}


def test_a_record_round_trips_through_its_canonical_leaf_bytes() -> None:
    for record in (GRANTED, REFUSED):
        leaf = encode_leaf(record)
        assert decode_leaf(leaf) == record
        assert leaf == orjson.dumps(orjson.loads(leaf), option=orjson.OPT_SORT_KEYS)


def test_the_leaf_holds_exactly_the_six_published_fields_and_nothing_personal() -> None:
    assert set(orjson.loads(encode_leaf(GRANTED))) == {
        "accounts",
        "category",
        "date",
        "jurisdictions",
        "outcome",
        "reason",
    }
    with pytest.raises(ValidationError):
        LeafRecord(**fields(case="2026/17"))
    with pytest.raises(ValidationError):
        LeafRecord(**fields(subject="+447700900123"))


@pytest.mark.parametrize(
    "changes",
    [
        {"date": "2026-02-30"},
        {"date": "26-02-01"},
        {"date": "2026-2-01"},
        {"date": "2026-02-01T00:00"},
        {"date": "\uff12\uff10\uff12\uff16-02-01"},
        {"jurisdictions": ()},
        {"jurisdictions": ("DE", "CH")},
        {"jurisdictions": ("CH", "CH")},
        {"jurisdictions": ("ch",)},
        {"jurisdictions": ("CHE",)},
        {"jurisdictions": tuple(f"A{c}" for c in "ABCDEFGHIJKLMNOPQ")},
        {"category": ""},
        {"category": "x" * 65},
        {"category": "two\nlines"},
        {"category": "\x00"},
        {"outcome": "pending"},
        {"reason": "EXPIRED"},
        {"outcome": "refused", "reason": None, "accounts": 0},
        {"outcome": "refused", "reason": "EXPIRED", "accounts": 3},
        {"outcome": "refused", "reason": "expired because", "accounts": 0},
        {"outcome": "refused", "reason": "E" * 65, "accounts": 0},
        {"accounts": -1},
        {"accounts": True},
        {"accounts": "2"},
    ],
)
def test_records_outside_the_published_shape_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        LeafRecord(**fields(**changes))


def test_sixteen_jurisdictions_are_allowed() -> None:
    many = tuple(sorted(f"A{c}" for c in "ABCDEFGHIJKLMNOP"))
    assert LeafRecord(**fields(jurisdictions=many)).jurisdictions == many


def test_records_are_frozen() -> None:
    with pytest.raises(ValidationError):
        GRANTED.accounts = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    "leaf",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b"null",
        orjson.dumps({**fields(), "extra": 1}, option=orjson.OPT_SORT_KEYS),
        orjson.dumps(fields(jurisdictions=["DE", "CH"]), option=orjson.OPT_SORT_KEYS),
        orjson.dumps(fields(accounts="2"), option=orjson.OPT_SORT_KEYS),
        orjson.dumps(fields(accounts=2.0), option=orjson.OPT_SORT_KEYS),
        b" " * (MAX_LEAF_BYTES + 1),
    ],
)
def test_malformed_leaves_raise_leaf_error(leaf: bytes) -> None:
    with pytest.raises(LeafError):
        decode_leaf(leaf)


def test_a_leaf_with_the_right_record_but_another_spelling_is_refused() -> None:
    # One record, one leaf: otherwise a record could appear twice under two leaf hashes.
    spaced = orjson.dumps(fields(), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
    unsorted = orjson.dumps(dict(reversed(list(fields().items()))))
    for leaf in (spaced, unsorted, encode_leaf(GRANTED) + b"\n"):
        with pytest.raises(LeafError, match="canonical"):
            decode_leaf(leaf)


def test_leaf_error_is_a_value_error_that_names_the_bad_field() -> None:
    with pytest.raises(ValueError, match="outcome"):
        decode_leaf(orjson.dumps(fields(outcome="maybe"), option=orjson.OPT_SORT_KEYS))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_leaf_error_and_nothing_else(data: bytes) -> None:
    try:
        record = decode_leaf(data)
    except LeafError:
        return
    assert encode_leaf(record) == data
