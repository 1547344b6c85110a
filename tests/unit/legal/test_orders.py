"""A court order names one person in one normalised form, is signed by its court, and reads
back exactly; anything that is not an order is refused as malformed, never with a crash."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from samizdat.crypto.custody_keys import canonical, unb64
from samizdat.crypto.signing_keys import SigningKey, verify
from samizdat.custody.protocol import CourtOrder
from samizdat.legal.orders import (
    MAX_ORDER_BYTES,
    OrderFormatError,
    Subject,
    body_digest,
    new_order,
    order_digest,
    parse_order,
    parse_subject,
)

NOW_MS = 1_800_000_000_000
DAY_MS = 86_400_000
KEY = SigningKey(Ed25519PrivateKey.generate())


def make_order(**overrides: Any) -> CourtOrder:
    values: dict[str, Any] = {
        "court": "Federal Criminal Court",
        "jurisdiction": "CH",
        "case": "SV.2026.17",
        "subject": parse_subject("user:42"),
        "category": "terrorism",
        "fields": ("phone", "ip"),
        "issued_at_ms": NOW_MS,
        "expires_at_ms": NOW_MS + 30 * DAY_MS,
    }
    values.update(overrides)
    return new_order(KEY, **values)


def wire(order: CourtOrder) -> bytes:
    return orjson.dumps(order.model_dump(mode="json"))


# subjects ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@Alice_Smith", Subject("username", "alice_smith")),
        ("  @bob_the_builder ", Subject("username", "bob_the_builder")),
        ("+999661234567", Subject("phone", "+999661234567")),
        ("+44 20 7946 0958", Subject("phone", "+442079460958")),
        ("+1 (650) 253-0000", Subject("phone", "+16502530000")),
        ("user:42", Subject("user_id", "42")),
        ("42", Subject("user_id", "42")),
        ("user:007", Subject("user_id", "7")),
        (str(2**53 - 1), Subject("user_id", str(2**53 - 1))),
    ],
)
def test_subjects_parse_into_one_normalised_form(text: str, expected: Subject) -> None:
    assert parse_subject(text) == expected


def test_a_subject_prints_as_an_order_states_it() -> None:
    assert parse_subject("@Alice_Smith").text == "@alice_smith"
    assert parse_subject("+44 20 7946 0958").text == "+442079460958"
    assert str(parse_subject("0042")) == "user:42"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "alice",
        "@abc",  # too short for a username
        "@alice-smith",
        "+123",
        "+44 20 7946 0958 ext. 12",
        "user:0",
        "user:-1",
        "user:",
        str(2**53),
        "1" * 40,
        "user:4 2",
        "٤٢",  # Arabic-Indic digits are not a user id
    ],
)
def test_anything_else_is_not_a_subject(text: str) -> None:
    with pytest.raises(OrderFormatError):
        parse_subject(text)


# making orders ----------------------------------------------------------------------------
def test_a_new_order_is_signed_by_the_court_over_its_canonical_body() -> None:
    order = make_order(subject=parse_subject("@Alice_Smith"))
    assert order.order.subject == "@alice_smith"
    assert verify(KEY.public, unb64(order.signature), canonical(order.order))


def test_a_new_order_names_each_field_once() -> None:
    assert make_order(fields=["phone", "ip", "phone"]).order.fields == ("phone", "ip")


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"fields": ()}, "at least one field"),
        ({"expires_at_ms": NOW_MS}, "expires after"),
        ({"jurisdiction": "ch"}, "jurisdiction"),
        ({"case": ""}, "case"),
        ({"court": "x" * 201}, "court"),
    ],
)
def test_a_new_order_that_breaks_the_format_is_refused(
    overrides: dict[str, Any], words: str
) -> None:
    with pytest.raises(OrderFormatError, match=words):
        make_order(**overrides)


# reading orders ---------------------------------------------------------------------------
def test_an_order_reads_back_exactly() -> None:
    order = make_order()
    assert parse_order(wire(order)) == order


def test_whitespace_and_key_order_change_nothing() -> None:
    order = make_order()
    document = order.model_dump(mode="json")
    shuffled = {
        "signature": document["signature"],
        "order": dict(reversed(document["order"].items())),
    }
    parsed = parse_order(json.dumps(shuffled, indent=4).encode())
    assert parsed == order
    assert verify(KEY.public, unb64(parsed.signature), canonical(parsed.order))
    assert order_digest(parsed) == order_digest(order)


def document_with(**changes: Any) -> bytes:
    document = make_order().model_dump(mode="json")
    document["order"].update(changes)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "Invalid JSON"),
        (b"\xff\xfe", "Invalid JSON"),
        (b"[1, 2", "Invalid JSON"),
        (b"[]", "object"),
        (b'{"order": {}}', "order.case"),
        (document_with(issued_at_ms="1800000000000"), "order.issued_at_ms"),
        (document_with(issued_at_ms=1.8e12), "order.issued_at_ms"),
        (document_with(issued_at_ms=2**64), "order.issued_at_ms"),
        (document_with(fields="phone"), "order.fields"),
        (document_with(jurisdiction="CHE"), "order.jurisdiction"),
        (document_with(note="extra"), "order.note"),
        (document_with(fields=["phone", 1]), "order.fields.1"),
    ],
)
def test_what_is_not_an_order_is_refused_with_what_is_wrong(data: bytes, words: str) -> None:
    with pytest.raises(OrderFormatError, match="not a court order") as caught:
        parse_order(data)
    assert words in str(caught.value)


def test_an_oversized_order_is_refused_unread() -> None:
    padded = wire(make_order()) + b" " * MAX_ORDER_BYTES
    with pytest.raises(OrderFormatError, match="at most"):
        parse_order(padded)


def test_the_digest_identifies_an_order() -> None:
    order = make_order()
    again = parse_order(wire(order))
    other = make_order(case="SV.2026.18")
    assert order_digest(order) == order_digest(again)
    assert len(order_digest(order)) == 64
    assert int(order_digest(order), 16) >= 0
    assert order_digest(order) != order_digest(other)
    assert body_digest(order) == body_digest(again) != body_digest(other)


# fuzz -------------------------------------------------------------------------------------
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=30,
)
BODY_KEYS = (
    "case",
    "court",
    "jurisdiction",
    "subject",
    "category",
    "fields",
    "issued_at_ms",
    "expires_at_ms",
)
NEAR_ORDERS = st.fixed_dictionaries(
    {
        "order": st.dictionaries(st.sampled_from(BODY_KEYS), JSON, max_size=len(BODY_KEYS)),
        "signature": JSON,
    }
)


def parses_or_refuses(data: bytes) -> None:
    try:
        order = parse_order(data)
    except OrderFormatError:
        return
    assert isinstance(order, CourtOrder)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_only_ever_give_an_order_or_an_order_format_error(data: bytes) -> None:
    parses_or_refuses(data)


@settings(max_examples=300, deadline=None)
@given(JSON | NEAR_ORDERS)
def test_random_json_only_ever_gives_an_order_or_an_order_format_error(value: Any) -> None:
    parses_or_refuses(json.dumps(value).encode())


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_corrupted_order_only_ever_gives_an_order_or_an_order_format_error(
    data: st.DataObject,
) -> None:
    raw = bytearray(wire(make_order()))
    for _ in range(data.draw(st.integers(1, 5))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    parses_or_refuses(bytes(raw))
