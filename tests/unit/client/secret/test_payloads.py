"""Secret payloads are untrusted input: parsed strictly, once; anything off the spec is a
pydantic ValidationError, and nothing else ever escapes the parser."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from samizdat.client.secret.payloads import (
    DEVICE_ENVELOPE,
    GROUP_ENVELOPE,
    MAX_SECRET_GROUP_MEMBERS,
    MAX_TTL,
    MIN_TTL,
    ChatStarted,
    DeviceEnvelope,
    GroupEnvelope,
    GroupLeave,
    GroupState,
    Read,
    RoomKey,
    SasAccept,
    SasCancel,
    SasKey,
    SasMac,
    SasStart,
    SetTtl,
    Text,
    ttl_valid,
)
from samizdat.protocol.methods import MAX_TEXT_LENGTH

MESSAGE_ID = "0123456789abcdef" * 2
GROUP_ID = "fedcba9876543210" * 2
TXN = "a" * 32


def text_body(**changes: Any) -> dict[str, Any]:
    return {
        "type": "text",
        "chat": "u42",
        "id": MESSAGE_ID,
        "text": "hello",
        "ttl": 0,
        "sent_at": 1700000000.5,
        **changes,
    }


def device_envelope(body: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    return {
        "v": 1,
        "sender_user": 1,
        "sender_device": 2,
        "recipient_user": 3,
        "recipient_device": 4,
        "recipient_key": "recipient identity key",
        "n": 1,
        "body": text_body() if body is None else body,
        **changes,
    }


def group_envelope(body: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    return {
        "v": 1,
        "group": GROUP_ID,
        "epoch": 1,
        "sender_user": 1,
        "sender_device": 2,
        "body": text_body(chat="g" + GROUP_ID) if body is None else body,
        **changes,
    }


BODIES: dict[str, tuple[dict[str, Any], type]] = {
    "text": (text_body(), Text),
    "start": ({"type": "start", "chat": "u7", "ttl": 30}, ChatStarted),
    "read": ({"type": "read", "chat": "g" + GROUP_ID, "ids": [MESSAGE_ID]}, Read),
    "ttl": ({"type": "ttl", "chat": "u7", "ttl": MAX_TTL}, SetTtl),
    "room_key": (
        {"type": "room_key", "group": GROUP_ID, "session_id": "sid", "epoch": 1},
        RoomKey,
    ),
    "group": (
        {
            "type": "group",
            "group": GROUP_ID,
            "title": "Plotters",
            "admin": 1,
            "members": [1, 2, 3],
            "epoch": 2,
            "ttl": 0,
        },
        GroupState,
    ),
    "leave": ({"type": "leave", "group": GROUP_ID}, GroupLeave),
    "sas.start": ({"type": "sas.start", "txn": TXN}, SasStart),
    "sas.accept": ({"type": "sas.accept", "txn": TXN, "commitment": "c"}, SasAccept),
    "sas.key": ({"type": "sas.key", "txn": TXN, "key": "k"}, SasKey),
    "sas.mac": (
        {"type": "sas.mac", "txn": TXN, "key_ids": "m", "mac": {"ed25519:1": "x"}},
        SasMac,
    ),
    "sas.cancel": ({"type": "sas.cancel", "txn": TXN, "reason": "no match"}, SasCancel),
}


# Valid payloads


@pytest.mark.parametrize("kind", sorted(BODIES))
def test_every_body_type_parses_inside_a_device_envelope(kind: str) -> None:
    body, model = BODIES[kind]
    parsed = DEVICE_ENVELOPE.validate_python(device_envelope(body))
    assert isinstance(parsed, DeviceEnvelope)
    assert isinstance(parsed.body, model)
    assert parsed.body.model_dump() == body


def test_a_device_envelope_parses_from_json() -> None:
    parsed = DEVICE_ENVELOPE.validate_json(
        b'{"sender_user":1,"sender_device":2,"recipient_user":3,"recipient_device":4,'
        b'"recipient_key":"k","n":9,"body":{"type":"start","chat":"u1"}}'
    )
    assert parsed.n == 9
    assert parsed.v == 1
    assert parsed.body == ChatStarted(chat="u1", ttl=0)


def test_a_group_envelope_parses() -> None:
    parsed = GROUP_ENVELOPE.validate_python(group_envelope())
    assert isinstance(parsed, GroupEnvelope)
    assert parsed.body.text == "hello"
    assert parsed.body.chat == "g" + GROUP_ID


def test_payloads_are_frozen() -> None:
    parsed = DEVICE_ENVELOPE.validate_python(device_envelope())
    with pytest.raises(ValidationError):
        parsed.n = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    "changes",
    [
        {"text": "x" * MAX_TEXT_LENGTH},
        {"text": "ü"},
        {"ttl": MAX_TTL},
        {"ttl": MIN_TTL},
        {"sent_at": 0},  # an int is a fine float, even in strict mode
        {"chat": "u9223372036854775807"},
    ],
    ids=["longest-text", "one-char", "max-ttl", "min-ttl", "int-time", "largest-user"],
)
def test_texts_at_the_limits_parse(changes: dict[str, Any]) -> None:
    DEVICE_ENVELOPE.validate_python(device_envelope(text_body(**changes)))


def test_a_group_of_the_maximum_size_parses() -> None:
    body = {**BODIES["group"][0], "members": list(range(1, MAX_SECRET_GROUP_MEMBERS + 1))}
    DEVICE_ENVELOPE.validate_python(device_envelope(body))


# Invalid payloads


@pytest.mark.parametrize(
    "changes",
    [
        {"n": "1"},
        {"sender_user": "1"},
        {"recipient_device": 4.0},
        {"n": True},
        {"v": "1"},
        {"recipient_key": 5},
    ],
    ids=["n-string", "user-string", "device-float", "n-bool", "v-string", "key-int"],
)
def test_wrong_types_are_refused_not_coerced(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        DEVICE_ENVELOPE.validate_python(device_envelope(**changes))


@pytest.mark.parametrize(
    "changes",
    [{"ttl": "0"}, {"sent_at": "1.5"}, {"text": 5}, {"ttl": 1.0}, {"sent_at": None}],
    ids=["ttl-string", "time-string", "text-int", "ttl-float", "time-none"],
)
def test_wrong_types_in_a_body_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        DEVICE_ENVELOPE.validate_python(device_envelope(text_body(**changes)))


def test_extra_keys_are_refused_in_the_envelope_and_the_body() -> None:
    with pytest.raises(ValidationError, match="extra"):
        DEVICE_ENVELOPE.validate_python(device_envelope(extra="x"))
    with pytest.raises(ValidationError, match="extra"):
        DEVICE_ENVELOPE.validate_python(device_envelope(text_body(session_key="x")))
    with pytest.raises(ValidationError, match="extra"):
        GROUP_ENVELOPE.validate_python(group_envelope(n=1))


@pytest.mark.parametrize(
    "field", ["sender_user", "sender_device", "recipient_user", "recipient_key", "n", "body"]
)
def test_a_missing_field_is_refused(field: str) -> None:
    envelope = device_envelope()
    del envelope[field]
    with pytest.raises(ValidationError):
        DEVICE_ENVELOPE.validate_python(envelope)


@pytest.mark.parametrize(
    "chat",
    [
        "",
        "u",
        "u0",
        "u01",
        "u-1",
        "u12345678901234567890",
        "x5",
        "U5",
        "g" + "a" * 31,
        "g" + "a" * 33,
        "g" + "A" * 32,
        "g" + "z" * 32,
        "u5\n",
        " u5",
        "u\uff15",  # a full-width digit
    ],
)
def test_bad_chat_refs_are_refused(chat: str) -> None:
    with pytest.raises(ValidationError):
        DEVICE_ENVELOPE.validate_python(device_envelope(text_body(chat=chat)))


@pytest.mark.parametrize(
    "message_id",
    ["", "a" * 31, "a" * 33, "A" * 32, "g" * 32, MESSAGE_ID + "\n", "-" + MESSAGE_ID[1:]],
)
def test_bad_message_ids_are_refused(message_id: str) -> None:
    with pytest.raises(ValidationError):
        DEVICE_ENVELOPE.validate_python(device_envelope(text_body(id=message_id)))
    read = {"type": "read", "chat": "u1", "ids": [message_id]}
    with pytest.raises(ValidationError):
        DEVICE_ENVELOPE.validate_python(device_envelope(read))


@pytest.mark.parametrize("text", ["", "x" * (MAX_TEXT_LENGTH + 1)], ids=["empty", "too-long"])
def test_a_text_that_is_empty_or_too_long_is_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        DEVICE_ENVELOPE.validate_python(device_envelope(text_body(text=text)))


@pytest.mark.parametrize("ttl", [-1, MAX_TTL + 1, 2**64])
def test_a_ttl_out_of_range_is_refused(ttl: int) -> None:
    with pytest.raises(ValidationError):
        DEVICE_ENVELOPE.validate_python(device_envelope(text_body(ttl=ttl)))
    with pytest.raises(ValidationError):
        DEVICE_ENVELOPE.validate_python(device_envelope({"type": "ttl", "chat": "u1", "ttl": ttl}))


@pytest.mark.parametrize(
    "changes",
    [{"n": 0}, {"n": -1}, {"sender_user": 0}, {"recipient_device": 2**63}, {"recipient_key": ""}],
)
def test_numbers_and_keys_out_of_range_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        DEVICE_ENVELOPE.validate_python(device_envelope(**changes))


@pytest.mark.parametrize(
    "body",
    [
        {"type": "html", "chat": "u1"},
        {"chat": "u1", "text": "no type"},
        {"type": None},
        "a string",
        [text_body()],
        None,
    ],
    ids=["unknown-type", "no-type", "null-type", "string", "list", "null"],
)
def test_an_unknown_or_malformed_body_is_refused(body: Any) -> None:
    with pytest.raises(ValidationError):
        DEVICE_ENVELOPE.validate_python({**device_envelope(), "body": body})


def test_a_group_envelope_carries_a_text_only() -> None:
    with pytest.raises(ValidationError):
        GROUP_ENVELOPE.validate_python(group_envelope(BODIES["room_key"][0]))


@pytest.mark.parametrize(
    "changes",
    [
        {"members": []},
        {"members": list(range(1, MAX_SECRET_GROUP_MEMBERS + 2))},
        {"epoch": 0},
        {"title": ""},
        {"title": "t" * 129},
        {"admin": 0},
        {"members": [0]},
    ],
    ids=["no-members", "too-many", "epoch-0", "empty-title", "long-title", "admin-0", "user-0"],
)
def test_a_malformed_group_state_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        DEVICE_ENVELOPE.validate_python(device_envelope({**BODIES["group"][0], **changes}))


@pytest.mark.parametrize(
    "body",
    [
        {"type": "read", "chat": "u1", "ids": []},
        {"type": "read", "chat": "u1", "ids": [MESSAGE_ID] * 101},
        {"type": "sas.start", "txn": "short"},
        {"type": "sas.key", "txn": TXN, "key": "k" * 129},
        {"type": "sas.mac", "txn": TXN, "key_ids": "m", "mac": {"": "x"}},
        {"type": "sas.cancel", "txn": TXN, "reason": "r" * 201},
    ],
    ids=["no-ids", "too-many-ids", "bad-txn", "long-key", "empty-mac-key", "long-reason"],
)
def test_malformed_receipts_and_verification_bodies_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        DEVICE_ENVELOPE.validate_python(device_envelope(body))


# Anything at all


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)
DEVICE_FIELDS = sorted(device_envelope())
GROUP_FIELDS = sorted(group_envelope())
BODY_FIELDS = sorted({key for body, _ in BODIES.values() for key in body})


def parses_or_refuses(adapter: Any, value: Any) -> None:
    with contextlib.suppress(ValidationError):
        adapter.validate_python(value)


@given(json_values)
def test_any_json_value_is_parsed_or_refused_with_a_validation_error(value: Any) -> None:
    parses_or_refuses(DEVICE_ENVELOPE, value)
    parses_or_refuses(GROUP_ENVELOPE, value)


@given(
    st.sampled_from(sorted(BODIES)),
    st.dictionaries(st.sampled_from(DEVICE_FIELDS), json_values, max_size=3),
    st.dictionaries(st.sampled_from(BODY_FIELDS), json_values, max_size=3),
)
def test_valid_envelopes_with_arbitrary_fields_swapped_in_are_parsed_or_refused(
    kind: str, envelope_changes: dict[str, Any], body_changes: dict[str, Any]
) -> None:
    body = {**BODIES[kind][0], **body_changes}
    parses_or_refuses(DEVICE_ENVELOPE, {**device_envelope(body), **envelope_changes})
    parses_or_refuses(GROUP_ENVELOPE, {**group_envelope(body), **envelope_changes})


@given(st.dictionaries(st.sampled_from(GROUP_FIELDS), json_values, max_size=3))
def test_valid_group_envelopes_with_arbitrary_fields_swapped_in_are_parsed_or_refused(
    changes: dict[str, Any],
) -> None:
    parses_or_refuses(GROUP_ENVELOPE, {**group_envelope(), **changes})


# Timers


@pytest.mark.parametrize(
    ("seconds", "valid"),
    [
        (0, True),
        (MIN_TTL, True),
        (60, True),
        (MAX_TTL, True),
        (1, False),
        (MIN_TTL - 1, False),
        (MAX_TTL + 1, False),
        (-5, False),
    ],
)
def test_ttl_valid_allows_off_or_five_seconds_to_a_week(seconds: int, valid: bool) -> None:
    assert ttl_valid(seconds) is valid


def test_a_peer_cannot_set_a_timer_below_the_minimum() -> None:
    with pytest.raises(ValidationError, match="timer"):
        DEVICE_ENVELOPE.validate_python(device_envelope({"type": "ttl", "chat": "u1", "ttl": 1}))
    parsed = DEVICE_ENVELOPE.validate_python(
        device_envelope({"type": "ttl", "chat": "u1", "ttl": 5})
    )
    assert isinstance(parsed.body, SetTtl)
    assert ttl_valid(parsed.body.ttl)


@pytest.mark.parametrize("sent_at", [float("inf"), float("nan"), 1e300, -1.0])
def test_a_text_from_an_impossible_time_is_refused(sent_at: float) -> None:
    with pytest.raises(ValidationError):
        DEVICE_ENVELOPE.validate_python(device_envelope(text_body(sent_at=sent_at)))
