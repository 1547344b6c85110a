"""SecretKeys: Olm payloads between two devices, group keys that travel inside them without
ever reaching client code, and a byte form (for the vault) that restores all of it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from samizdat.crypto.e2ee import OlmError
from samizdat.crypto.megolm import MegolmError
from samizdat.crypto.secret_keys import DevicePayload, SecretKeys, SharedGroupKey

GROUP = "0123456789abcdef0123456789abcdef"


def pair() -> tuple[SecretKeys, SecretKeys]:
    """Alice and Bob with an Olm session: Alice has sent Bob one message."""
    alice, bob = SecretKeys.create(device_id=1), SecretKeys.create(device_id=2)
    (one_time,) = bob.device.new_one_time_keys(1)
    sealed = alice.encrypt_to_device(bob.identity_key, one_time["key"], {"type": "hello"})
    assert sealed["olm_type"] == 0  # a pre-key message: it sets the session up
    assert bob.decrypt_from_device(alice.identity_key, **sealed).payload == {"type": "hello"}
    return alice, bob


def send(sender: SecretKeys, receiver: SecretKeys, payload: dict[str, object]) -> DevicePayload:
    sealed = sender.encrypt_to_device(receiver.identity_key, None, payload)
    return receiver.decrypt_from_device(sender.identity_key, **sealed)


def olm_raw(sender: SecretKeys, receiver: SecretKeys, plaintext: bytes) -> dict[str, Any]:
    """An Olm message carrying any bytes at all, made below SecretKeys' JSON layer."""
    return sender.olm.encrypt(receiver.identity_key, None, plaintext)


# Olm payloads


def test_an_olm_payload_round_trips_between_two_devices() -> None:
    alice, bob = pair()
    payload = {"type": "text", "n": 2, "nested": {"list": [1, "two", None]}}
    opened = send(alice, bob, payload)
    assert opened == DevicePayload(payload, None)
    assert send(bob, alice, {"type": "reply"}).payload == {"type": "reply"}


def test_a_payload_does_not_travel_in_the_clear() -> None:
    alice, bob = pair()
    sealed = alice.encrypt_to_device(bob.identity_key, None, {"secret": "attack at dawn"})
    assert "attack at dawn" not in orjson.dumps(sealed).decode()


def test_a_payload_from_another_device_does_not_open() -> None:
    alice, bob = pair()
    sealed = alice.encrypt_to_device(bob.identity_key, None, {"type": "x"})
    mallory = SecretKeys.create(device_id=3)
    with pytest.raises(OlmError):
        bob.decrypt_from_device(mallory.identity_key, **sealed)


def test_encrypting_without_a_session_or_a_one_time_key_is_refused() -> None:
    alice, bob = SecretKeys.create(device_id=1), SecretKeys.create(device_id=2)
    with pytest.raises(ValueError, match="claim"):
        alice.encrypt_to_device(bob.identity_key, None, {"type": "x"})


@pytest.mark.parametrize(
    "payload",
    [
        {"session_key": "mine"},
        {"group_session_id": "mine"},
        {"type": "text", "session_key": "a", "group_session_id": "b"},
    ],
)
def test_a_callers_payload_may_not_carry_key_fields(payload: dict[str, object]) -> None:
    alice, bob = pair()
    alice.new_outbound(GROUP, now=0.0)
    with pytest.raises(ValueError, match="set by SecretKeys only"):
        alice.encrypt_to_device(bob.identity_key, None, payload)
    with pytest.raises(ValueError, match="set by SecretKeys only"):
        alice.encrypt_to_device(bob.identity_key, None, payload, group_key_of=GROUP)


@pytest.mark.parametrize(
    "plaintext",
    [b"not json", b"\xff\xfe", b"", b"[1, 2, 3]", b'"a string"', b"42", b"null"],
    ids=["text", "binary", "empty", "list", "string", "number", "null"],
)
def test_an_olm_plaintext_that_is_not_a_json_object_is_an_olm_error(plaintext: bytes) -> None:
    alice, bob = pair()
    sealed = olm_raw(alice, bob, plaintext)
    with pytest.raises(OlmError, match="not a Samizdat payload"):
        bob.decrypt_from_device(alice.identity_key, **sealed)


@pytest.mark.parametrize(
    "carried",
    [
        {"session_key": "k"},  # a key without a session id
        {"group_session_id": "s"},  # a session id without a key
        {"session_key": 5, "group_session_id": "s"},
        {"session_key": "k", "group_session_id": ["s"]},
    ],
)
def test_a_malformed_group_key_in_a_payload_is_an_olm_error(carried: dict[str, object]) -> None:
    alice, bob = pair()
    sealed = olm_raw(alice, bob, orjson.dumps({"type": "room_key", **carried}))
    with pytest.raises(OlmError, match="malformed group key"):
        bob.decrypt_from_device(alice.identity_key, **sealed)


# Group keys inside Olm payloads


def test_a_group_key_travels_inside_the_payload_but_is_taken_out_on_arrival() -> None:
    alice, bob = pair()
    outbound = alice.new_outbound(GROUP, now=0.0)
    sealed = alice.encrypt_to_device(
        bob.identity_key, None, {"type": "room_key"}, group_key_of=GROUP
    )
    opened = bob.decrypt_from_device(alice.identity_key, **sealed)
    assert opened.payload == {"type": "room_key"}
    assert "session_key" not in opened.payload
    assert "group_session_id" not in opened.payload
    assert opened.group_key is not None
    assert opened.group_key.session_id == outbound.session_id
    assert outbound.session_key() not in repr(opened.group_key)
    assert outbound.session_key() not in repr(opened)
    assert repr(opened.group_key) == f"SharedGroupKey(session_id={outbound.session_id!r})"


def test_a_received_group_key_opens_nothing_until_accepted() -> None:
    alice, bob = pair()
    alice.new_outbound(GROUP, now=0.0)
    sealed = alice.encrypt_to_device(
        bob.identity_key, None, {"type": "room_key"}, group_key_of=GROUP
    )
    shared = bob.decrypt_from_device(alice.identity_key, **sealed).group_key
    assert shared is not None
    message = alice.encrypt_group(GROUP, {"type": "text", "text": "hi"})
    with pytest.raises(MegolmError):
        bob.decrypt_group(message)
    bob.accept(shared)
    opened, payload = bob.decrypt_group(message)
    assert payload == {"type": "text", "text": "hi"}
    assert opened.session_id == shared.session_id


def test_after_accepting_the_receiver_reads_the_senders_group_messages() -> None:
    alice, bob = pair()
    alice.new_outbound(GROUP, now=0.0)
    sealed = alice.encrypt_to_device(
        bob.identity_key, None, {"type": "room_key"}, group_key_of=GROUP
    )
    shared = bob.decrypt_from_device(alice.identity_key, **sealed).group_key
    assert shared is not None
    bob.accept(shared)
    for i in range(3):
        opened, payload = bob.decrypt_group(alice.encrypt_group(GROUP, {"i": i}))
        assert (payload, opened.message_index) == ({"i": i}, i)


def test_the_sender_reads_its_own_group_messages() -> None:
    alice = SecretKeys.create(device_id=1)
    outbound = alice.new_outbound(GROUP, now=3.0)
    assert alice.outbound(GROUP) is outbound
    _, payload = alice.decrypt_group(alice.encrypt_group(GROUP, {"mine": True}))
    assert payload == {"mine": True}


def test_a_shared_key_that_is_not_the_named_sessions_key_is_refused_on_accept() -> None:
    alice = SecretKeys.create(device_id=1)
    one, other = alice.new_outbound("a", now=0.0), alice.new_outbound("b", now=0.0)
    bob = SecretKeys.create(device_id=2)
    with pytest.raises(MegolmError):
        bob.accept(SharedGroupKey(one.session_id, other.session_key()))
    assert one.session_id not in bob.inbound


def test_a_rotated_group_session_is_not_readable_with_the_old_key() -> None:
    alice, bob = pair()
    old = alice.new_outbound(GROUP, now=0.0)
    bob.accept(SharedGroupKey(old.session_id, old.session_key()))
    alice.drop_outbound(GROUP)
    assert alice.outbound(GROUP) is None
    new = alice.new_outbound(GROUP, now=1.0)
    assert new.session_id != old.session_id
    with pytest.raises(MegolmError):
        bob.decrypt_group(alice.encrypt_group(GROUP, {"after": "rotation"}))


@pytest.mark.parametrize("plaintext", [b"not json", b"[1]", b"7"])
def test_a_group_plaintext_that_is_not_a_json_object_is_a_megolm_error(plaintext: bytes) -> None:
    alice = SecretKeys.create(device_id=1)
    outbound = alice.new_outbound(GROUP, now=0.0)
    with pytest.raises(MegolmError, match="not a Samizdat payload"):
        alice.decrypt_group(outbound.encrypt(plaintext))


# Persistence


def test_keys_restored_from_bytes_keep_identity_sessions_and_group_sessions() -> None:
    alice, bob = pair()
    alice.new_outbound(GROUP, now=12.5)
    sealed = alice.encrypt_to_device(
        bob.identity_key, None, {"type": "room_key"}, group_key_of=GROUP
    )
    shared = bob.decrypt_from_device(alice.identity_key, **sealed).group_key
    assert shared is not None
    bob.accept(shared)
    bob.new_outbound("bobs-group", now=7.0)

    alice2 = SecretKeys.from_bytes(alice.to_bytes())
    bob2 = SecretKeys.from_bytes(bob.to_bytes())

    assert (bob2.identity_key, bob2.device.signing_key, bob2.device.device_id) == (
        bob.identity_key,
        bob.device.signing_key,
        2,
    )
    # Olm sessions both ways
    assert send(alice2, bob2, {"after": "restart"}).payload == {"after": "restart"}
    assert send(bob2, alice2, {"and": "back"}).payload == {"and": "back"}
    # Alice's outbound group session continues, and Bob's inbound one opens it
    restored_outbound = alice2.outbound(GROUP)
    assert restored_outbound is not None
    assert restored_outbound.created_at == 12.5
    assert restored_outbound.session_id == shared.session_id
    _, payload = bob2.decrypt_group(alice2.encrypt_group(GROUP, {"group": "still works"}))
    assert payload == {"group": "still works"}
    bobs = bob2.outbound("bobs-group")
    assert bobs is not None
    assert bobs.created_at == 7.0


def test_the_byte_form_holds_no_key_in_the_clear() -> None:
    alice, _ = pair()
    outbound = alice.new_outbound(GROUP, now=0.0)
    assert outbound.session_key().encode() not in alice.to_bytes()


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-10],
        lambda data: b"",
        lambda data: b"\x00\xff",
        lambda data: b"[]",
        lambda data: orjson.dumps({**orjson.loads(data), "pickle_key": "!!!"}),
        lambda data: orjson.dumps({**orjson.loads(data), "pickle_key": "eHh4eA=="}),
        lambda data: orjson.dumps({**orjson.loads(data), "account": "abc"}),
        lambda data: orjson.dumps({**orjson.loads(data), "account": 5}),
        lambda data: orjson.dumps({**orjson.loads(data), "inbound": {"a": 5}}),
        lambda data: orjson.dumps({k: v for k, v in orjson.loads(data).items() if k != "olm"}),
    ],
    ids=[
        "truncated",
        "empty",
        "binary",
        "a-list",
        "key-not-base64",
        "short-key",
        "account-not-a-pickle",
        "account-not-a-string",
        "inbound-not-a-pickle",
        "olm-missing",
    ],
)
def test_damaged_bytes_are_a_value_error(damage: Callable[[bytes], bytes]) -> None:
    alice, _ = pair()
    alice.new_outbound(GROUP, now=0.0)
    with pytest.raises(ValueError, match="damaged"):
        SecretKeys.from_bytes(damage(alice.to_bytes()))


@pytest.mark.parametrize("section", ["olm", "inbound", "outbound"])
def test_damaged_bytes_with_a_list_for_a_section_are_a_value_error(section: str) -> None:
    alice, _ = pair()
    document = orjson.loads(alice.to_bytes())
    document[section] = []
    with pytest.raises(ValueError, match="damaged"):
        SecretKeys.from_bytes(orjson.dumps(document))
