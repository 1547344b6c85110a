"""Key verification: two honest devices see the same emoji and accept each other's MACs; a man
in the middle, a changed key or a broken commitment shows; safety numbers match on both sides."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from samizdat.crypto.verification import (
    SAS_EMOJI,
    SasExchange,
    VerificationError,
    commitment,
    commitment_matches,
    mac_info,
    safety_number,
    sas_info,
)

ALICE, BOB = 1001, 2002
START_CONTENT = b'{"method":"m.sas.v1","transaction_id":"txn-1"}'


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


KEY_A = b64(bytes(range(32)))
KEY_B = b64(bytes(range(32, 64)))
KEY_C = b64(bytes(range(64, 96)))


def established_pair() -> tuple[SasExchange, SasExchange]:
    alice, bob = SasExchange(), SasExchange()
    alice.establish(bob.public_key)
    bob.establish(alice.public_key)
    return alice, bob


def info_for(alice: SasExchange, bob: SasExchange, transaction_id: str = "txn-1") -> str:
    return sas_info(
        initiator_user=ALICE,
        initiator_device=1,
        initiator_key=alice.public_key,
        acceptor_user=BOB,
        acceptor_device=2,
        acceptor_key=bob.public_key,
        transaction_id=transaction_id,
    )


MAC_INFO = mac_info(
    sender_user=ALICE,
    sender_device=1,
    receiver_user=BOB,
    receiver_device=2,
    transaction_id="txn-1",
    key_id="ed25519:1",
)


# SAS codes


def test_both_sides_see_the_same_codes_for_the_same_info() -> None:
    alice, bob = established_pair()
    info = info_for(alice, bob)
    assert alice.codes(info) == bob.codes(info)


def test_a_different_info_gives_different_codes() -> None:
    alice, bob = established_pair()
    assert alice.codes(info_for(alice, bob, "txn-1")) != bob.codes(info_for(alice, bob, "txn-2"))


def test_a_man_in_the_middle_shows_different_codes_on_each_side() -> None:
    alice, bob = SasExchange(), SasExchange()
    mallory_to_alice, mallory_to_bob = SasExchange(), SasExchange()
    alice.establish(mallory_to_alice.public_key)
    mallory_to_alice.establish(alice.public_key)
    bob.establish(mallory_to_bob.public_key)
    mallory_to_bob.establish(bob.public_key)
    info = info_for(alice, bob)
    assert alice.codes(info) != bob.codes(info)


def test_codes_are_seven_table_emoji_and_three_numbers_from_1000_to_9191() -> None:
    for _ in range(50):
        alice, bob = established_pair()
        codes = alice.codes(info_for(alice, bob))
        assert len(codes.emoji) == 7
        assert all(entry in SAS_EMOJI for entry in codes.emoji)
        assert len(codes.decimals) == 3
        assert all(1000 <= number <= 9191 for number in codes.decimals)


def test_the_emoji_table_is_the_specs_64_distinct_entries_from_dog_to_pin() -> None:
    assert len(SAS_EMOJI) == 64
    assert len(set(SAS_EMOJI)) == 64
    assert len({emoji for emoji, _ in SAS_EMOJI}) == 64
    assert len({name for _, name in SAS_EMOJI}) == 64
    assert SAS_EMOJI[0] == ("🐶", "Dog")
    assert SAS_EMOJI[21] == ("\u2601\ufe0f", "Cloud")
    assert SAS_EMOJI[36] == ("👍", "Thumbs Up")
    assert SAS_EMOJI[63] == ("📌", "Pin")


# MACs


def test_a_mac_from_one_side_validates_on_the_other() -> None:
    alice, bob = established_pair()
    tag = alice.mac(KEY_A, MAC_INFO)
    assert bob.mac_valid(KEY_A, MAC_INFO, tag)


def unchanged(tag: str) -> str:
    return tag


def altered(tag: str) -> str:
    # Change the first character: the last one may carry only padding bits.
    return ("B" if tag[0] == "A" else "A") + tag[1:]


@pytest.mark.parametrize(
    ("message", "info", "tamper"),
    [
        pytest.param(KEY_B, MAC_INFO, unchanged, id="altered message"),
        pytest.param(KEY_A, MAC_INFO, altered, id="altered tag"),
        pytest.param(KEY_A, MAC_INFO.replace("ed25519:1", "ed25519:2"), unchanged, id="wrong info"),
        pytest.param(KEY_A, MAC_INFO, lambda tag: "!!not base64!!", id="malformed tag"),
        pytest.param(KEY_A, MAC_INFO, lambda tag: "", id="empty tag"),
        pytest.param(KEY_A, MAC_INFO, lambda tag: tag[:-1], id="truncated tag"),
    ],
)
def test_a_mac_fails_for_anything_but_the_message_info_and_tag_sent(
    message: str, info: str, tamper: Callable[[str], str]
) -> None:
    alice, bob = established_pair()
    tag = alice.mac(KEY_A, MAC_INFO)
    assert not bob.mac_valid(message, info, tamper(tag))


def test_a_mac_under_another_exchange_fails() -> None:
    alice, _ = established_pair()
    _, other_bob = established_pair()
    assert not other_bob.mac_valid(KEY_A, MAC_INFO, alice.mac(KEY_A, MAC_INFO))


# Exchange lifecycle


def test_codes_and_macs_before_establish_raise() -> None:
    exchange = SasExchange()
    with pytest.raises(VerificationError):
        exchange.codes("info")
    with pytest.raises(VerificationError):
        exchange.mac(KEY_A, MAC_INFO)
    with pytest.raises(VerificationError):
        exchange.mac_valid(KEY_A, MAC_INFO, "tag")


@pytest.mark.parametrize("key", ["", "not base64!", b64(bytes(31)), b64(bytes(33))])
def test_a_malformed_public_key_is_refused_and_the_exchange_stays_usable(key: str) -> None:
    alice, bob = SasExchange(), SasExchange()
    with pytest.raises(VerificationError):
        alice.establish(key)
    alice.establish(bob.public_key)
    bob.establish(alice.public_key)
    assert alice.codes("info") == bob.codes("info")


def test_a_low_order_public_key_is_refused() -> None:
    with pytest.raises(VerificationError):
        SasExchange().establish(b64(bytes(32)))


def test_an_exchange_establishes_only_once() -> None:
    alice, bob = established_pair()
    with pytest.raises(VerificationError):
        alice.establish(bob.public_key)
    assert alice.codes("info") == bob.codes("info")


def test_each_exchange_has_a_fresh_32_byte_public_key() -> None:
    keys = {SasExchange().public_key for _ in range(10)}
    assert len(keys) == 10
    assert all(len(base64.b64decode(key + "=")) == 32 for key in keys)


# Info strings


def test_info_strings_join_their_fields_in_order_under_a_versioned_prefix() -> None:
    assert (
        sas_info(
            initiator_user=1,
            initiator_device=2,
            initiator_key="ka",
            acceptor_user=3,
            acceptor_device=4,
            acceptor_key="kb",
            transaction_id="t",
        )
        == "SAMIZDAT_SAS_V1|1|2|ka|3|4|kb|t"
    )
    assert (
        mac_info(
            sender_user=1,
            sender_device=2,
            receiver_user=3,
            receiver_device=4,
            transaction_id="t",
            key_id="ed25519:2",
        )
        == "SAMIZDAT_SAS_MAC_V1|1|2|3|4|t|ed25519:2"
    )


def test_an_info_field_containing_the_separator_is_refused() -> None:
    with pytest.raises(VerificationError):
        mac_info(
            sender_user=1,
            sender_device=2,
            receiver_user=3,
            receiver_device=4,
            transaction_id="t|5",
            key_id="k",
        )


# Commitment


def test_a_commitment_is_unpadded_base64_of_sha256_of_key_then_start_content() -> None:
    expected = b64(hashlib.sha256(KEY_A.encode() + START_CONTENT).digest())
    assert commitment(KEY_A, START_CONTENT) == expected
    assert "=" not in expected


def test_a_commitment_matches_the_key_and_content_it_was_made_from() -> None:
    assert commitment_matches(commitment(KEY_A, START_CONTENT), KEY_A, START_CONTENT)


def test_a_commitment_fails_for_a_different_key_or_content() -> None:
    committed = commitment(KEY_A, START_CONTENT)
    assert not commitment_matches(committed, KEY_B, START_CONTENT)
    assert not commitment_matches(committed, KEY_A, START_CONTENT + b" ")
    assert not commitment_matches("not a commitment é", KEY_A, START_CONTENT)


# Safety numbers


def test_the_safety_number_is_the_same_from_either_side() -> None:
    assert safety_number(ALICE, KEY_A, BOB, KEY_B) == safety_number(BOB, KEY_B, ALICE, KEY_A)


def test_the_safety_number_is_twelve_groups_of_five_digits() -> None:
    assert re.fullmatch(r"\d{5}( \d{5}){11}", safety_number(ALICE, KEY_A, BOB, KEY_B))


def test_the_safety_number_changes_with_either_key_or_user_id() -> None:
    number = safety_number(ALICE, KEY_A, BOB, KEY_B)
    assert safety_number(ALICE, KEY_C, BOB, KEY_B) != number
    assert safety_number(ALICE, KEY_A, BOB, KEY_C) != number
    assert safety_number(ALICE + 1, KEY_A, BOB, KEY_B) != number
    assert safety_number(ALICE, KEY_A, BOB + 1, KEY_B) != number


def spec_fingerprint(user_id: int, key: str) -> str:
    """One party's 30 digits, written straight from the spec in the module's docstring."""
    raw = base64.b64decode(key + "=")
    digest = hashlib.sha512(b"\x00\x00" + raw + str(user_id).encode()).digest()
    for _ in range(5199):
        digest = hashlib.sha512(digest + raw).digest()
    return "".join(
        str(int.from_bytes(digest[i : i + 5], "big") % 100000).zfill(5) for i in range(0, 30, 5)
    )


def test_the_safety_number_is_both_fingerprints_smaller_first() -> None:
    halves = sorted([spec_fingerprint(ALICE, KEY_A), spec_fingerprint(BOB, KEY_B)])
    assert safety_number(ALICE, KEY_A, BOB, KEY_B).replace(" ", "") == "".join(halves)


def test_the_safety_number_accepts_padded_keys() -> None:
    assert safety_number(ALICE, KEY_A + "=", BOB, KEY_B) == safety_number(ALICE, KEY_A, BOB, KEY_B)


@pytest.mark.parametrize("bad", ["", "not base64!", b64(bytes(31)), b64(bytes(33)), "A" * 44])
def test_the_safety_number_refuses_a_key_that_is_not_32_bytes_of_base64(bad: str) -> None:
    with pytest.raises(VerificationError):
        safety_number(ALICE, bad, BOB, KEY_B)
    with pytest.raises(VerificationError):
        safety_number(ALICE, KEY_A, BOB, bad)


@settings(max_examples=30, deadline=None)
@given(
    user_a=st.integers(min_value=1, max_value=2**63 - 1),
    key_a=st.binary(min_size=32, max_size=32),
    user_b=st.integers(min_value=1, max_value=2**63 - 1),
    key_b=st.binary(min_size=32, max_size=32),
)
def test_the_safety_number_is_symmetric_for_any_keys(
    user_a: int, key_a: bytes, user_b: int, key_b: bytes
) -> None:
    assert safety_number(user_a, b64(key_a), user_b, b64(key_b)) == safety_number(
        user_b, b64(key_b), user_a, b64(key_a)
    )
