"""Megolm group sessions: members holding the key read the group's messages from the index it
was shared at; anything else (an unknown session, an earlier message, a forged or damaged
message, a key passed off as another session's) is a MegolmError, never a wrong plaintext."""

from __future__ import annotations

import base64
import secrets

import pytest
import vodozemac

from samizdat.crypto.megolm import (
    InboundGroups,
    MegolmError,
    OutboundGroup,
    split_group_message,
)


def shared(outbound: OutboundGroup) -> InboundGroups:
    inbound = InboundGroups()
    inbound.add(outbound.session_id, outbound.session_key())
    return inbound


def flipped(ciphertext: str, position: int) -> str:
    raw = bytearray(base64.b64decode(ciphertext))
    raw[position] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


# Round trip


def test_a_member_with_the_key_reads_the_senders_messages_in_order() -> None:
    outbound = OutboundGroup.create(now=100.0)
    inbound = shared(outbound)
    texts = [b"first", b"second", "третье".encode()]
    opened = [inbound.decrypt(outbound.encrypt(text)) for text in texts]
    assert [o.plaintext for o in opened] == texts
    assert [o.message_index for o in opened] == [0, 1, 2]
    assert {o.session_id for o in opened} == {outbound.session_id}


def test_the_outbound_session_counts_the_messages_it_encrypted() -> None:
    outbound = OutboundGroup.create(now=5.0)
    assert (outbound.message_index, outbound.created_at) == (0, 5.0)
    for _ in range(3):
        outbound.encrypt(b"x")
    assert outbound.message_index == 3


def test_the_wire_form_starts_with_the_session_id() -> None:
    outbound = OutboundGroup.create(now=0.0)
    ciphertext = outbound.encrypt(b"hello")
    session_id, body = split_group_message(ciphertext)
    assert session_id == outbound.session_id
    assert body
    assert b"hello" not in base64.b64decode(ciphertext)


def test_two_sessions_have_different_ids_and_do_not_open_each_others_messages() -> None:
    one, other = OutboundGroup.create(now=0.0), OutboundGroup.create(now=0.0)
    assert one.session_id != other.session_id
    with pytest.raises(MegolmError):
        shared(one).decrypt(other.encrypt(b"not for you"))


# Keys shared later


def test_a_key_shared_later_cannot_open_earlier_messages_but_opens_later_ones() -> None:
    outbound = OutboundGroup.create(now=0.0)
    early = [outbound.encrypt(f"early {i}".encode()) for i in range(3)]
    latecomer = shared(outbound)
    later = outbound.encrypt(b"after the key was shared")
    for ciphertext in early:
        with pytest.raises(MegolmError):
            latecomer.decrypt(ciphertext)
    opened = latecomer.decrypt(later)
    assert (opened.plaintext, opened.message_index) == (b"after the key was shared", 3)


def test_first_index_is_the_index_the_key_was_shared_at() -> None:
    outbound = OutboundGroup.create(now=0.0)
    at_start = shared(outbound)
    for _ in range(5):
        outbound.encrypt(b"x")
    later = shared(outbound)
    assert at_start.first_index(outbound.session_id) == 0
    assert later.first_index(outbound.session_id) == 5


# Refused keys


def test_a_key_that_names_another_session_is_refused() -> None:
    real, other = OutboundGroup.create(now=0.0), OutboundGroup.create(now=0.0)
    inbound = InboundGroups()
    with pytest.raises(MegolmError, match="does not belong"):
        inbound.add(real.session_id, other.session_key())
    assert real.session_id not in inbound
    assert other.session_id not in inbound


@pytest.mark.parametrize(
    "key",
    ["", "not a key", "AAAA", base64.b64encode(secrets.token_bytes(229)).decode()],
    ids=["empty", "not-base64", "too-short", "random-bytes"],
)
def test_a_malformed_key_is_refused(key: str) -> None:
    session_id = OutboundGroup.create(now=0.0).session_id
    inbound = InboundGroups()
    with pytest.raises(MegolmError, match="malformed"):
        inbound.add(session_id, key)
    assert session_id not in inbound


def test_re_adding_a_known_session_does_not_rewind_it() -> None:
    outbound = OutboundGroup.create(now=0.0)
    early_key = outbound.session_key()
    inbound = InboundGroups()
    outbound.encrypt(b"index 0")
    outbound.encrypt(b"index 1")
    inbound.add(outbound.session_id, outbound.session_key())  # at index 2
    inbound.add(outbound.session_id, early_key)  # a re-share at index 0 is ignored
    assert inbound.first_index(outbound.session_id) == 2


def test_a_forgotten_session_opens_nothing_more() -> None:
    outbound = OutboundGroup.create(now=0.0)
    inbound = shared(outbound)
    inbound.forget(outbound.session_id)
    inbound.forget(outbound.session_id)  # forgetting twice is fine
    assert outbound.session_id not in inbound
    with pytest.raises(MegolmError, match="no key"):
        inbound.decrypt(outbound.encrypt(b"gone"))


# Damaged, forged and unknown messages


def test_an_unknown_session_is_an_error() -> None:
    outbound = OutboundGroup.create(now=0.0)
    with pytest.raises(MegolmError, match="no key"):
        InboundGroups().decrypt(outbound.encrypt(b"never shared"))


def test_every_flipped_byte_in_the_body_is_an_error_never_a_wrong_plaintext() -> None:
    outbound = OutboundGroup.create(now=0.0)
    inbound = shared(outbound)
    ciphertext = outbound.encrypt(b"the real text")
    size = len(base64.b64decode(ciphertext))
    for position in range(32, size):  # past the 32-byte session id: the Megolm message
        with pytest.raises(MegolmError):
            inbound.decrypt(flipped(ciphertext, position))
    assert inbound.decrypt(ciphertext).plaintext == b"the real text"


def test_a_flipped_byte_in_the_session_id_names_an_unknown_session() -> None:
    outbound = OutboundGroup.create(now=0.0)
    inbound = shared(outbound)
    with pytest.raises(MegolmError):
        inbound.decrypt(flipped(outbound.encrypt(b"x"), 0))


def test_a_message_relabelled_with_another_known_session_id_does_not_open() -> None:
    one, other = OutboundGroup.create(now=0.0), OutboundGroup.create(now=0.0)
    inbound = shared(one)
    inbound.add(other.session_id, other.session_key())
    _, body = split_group_message(one.encrypt(b"from one"))
    relabelled = base64.b64encode(base64.b64decode(other.session_id + "=") + body).decode()
    with pytest.raises(MegolmError, match="did not decrypt"):
        inbound.decrypt(relabelled)


@pytest.mark.parametrize(
    "ciphertext",
    [
        "",
        "not base64!",
        "QUJD=QUJD",
        "ünïcode",
        base64.b64encode(b"\x00" * 32).decode(),  # a session id and no message
        base64.b64encode(b"\x00" * 10).decode(),
    ],
    ids=["empty", "not-base64", "bad-padding", "non-ascii", "id-only", "too-short"],
)
def test_a_malformed_wire_form_is_an_error(ciphertext: str) -> None:
    with pytest.raises(MegolmError, match="not a group message"):
        split_group_message(ciphertext)
    with pytest.raises(MegolmError):
        InboundGroups().decrypt(ciphertext)


def test_a_known_session_with_a_garbage_body_is_an_error() -> None:
    outbound = OutboundGroup.create(now=0.0)
    inbound = shared(outbound)
    session_id_bytes = base64.b64decode(outbound.session_id + "=")
    garbage = base64.b64encode(session_id_bytes + b"\x03garbage").decode()
    with pytest.raises(MegolmError, match="did not decrypt"):
        inbound.decrypt(garbage)


def test_a_replayed_message_opens_again_megolm_leaves_replays_to_the_caller() -> None:
    # Documented: an inbound session opens the same index any number of times; the engine
    # tracks the indices it has seen (state.Stream) to drop replays.
    outbound = OutboundGroup.create(now=0.0)
    inbound = shared(outbound)
    ciphertext = outbound.encrypt(b"once")
    first, again = inbound.decrypt(ciphertext), inbound.decrypt(ciphertext)
    assert first == again
    assert again.message_index == 0


# Persistence


def test_pickled_sessions_keep_working_after_a_round_trip() -> None:
    key = secrets.token_bytes(32)
    outbound = OutboundGroup.create(now=42.0)
    inbound = shared(outbound)
    inbound.decrypt(outbound.encrypt(b"before"))

    outbound = OutboundGroup.from_pickle(outbound.pickle(key), key, created_at=42.0)
    inbound = InboundGroups.from_pickle(inbound.pickle(key), key)

    assert outbound.created_at == 42.0
    assert outbound.message_index == 1
    assert outbound.session_id in inbound
    opened = inbound.decrypt(outbound.encrypt(b"after"))
    assert (opened.plaintext, opened.message_index) == (b"after", 1)


def test_a_pickled_inbound_session_keeps_its_first_index() -> None:
    key = secrets.token_bytes(32)
    outbound = OutboundGroup.create(now=0.0)
    outbound.encrypt(b"x")
    restored = InboundGroups.from_pickle(shared(outbound).pickle(key), key)
    assert restored.first_index(outbound.session_id) == 1


def test_a_pickle_does_not_contain_the_session_key() -> None:
    key = secrets.token_bytes(32)
    outbound = OutboundGroup.create(now=0.0)
    pickled = outbound.pickle(key) + "".join(shared(outbound).pickle(key).values())
    assert outbound.session_key() not in pickled


def test_a_pickle_opened_with_another_key_fails() -> None:
    outbound = OutboundGroup.create(now=0.0)
    pickled = outbound.pickle(secrets.token_bytes(32))
    with pytest.raises(vodozemac.PickleException):
        OutboundGroup.from_pickle(pickled, secrets.token_bytes(32), created_at=0.0)
