"""At-rest sealing: what a seized disk holds cannot be read or moved without the DC key."""

from __future__ import annotations

import pytest

from samizdat.crypto import DcKey, DcSealed, Keyring, SealError


def dc_key(byte: int = 1, key_id: str = "k1", index: int = 9) -> DcKey:
    return DcKey(bytes([byte]) * 32, bytes([index]) * 32, key_id)


def keyring(byte: int = 1) -> Keyring:
    ring = Keyring("test")
    ring.install([dc_key(byte)], "k1")
    return ring


def test_message_text_round_trips_and_is_not_in_the_ciphertext() -> None:
    ring = keyring()
    wrapped = ring.new_chat_key(10)
    sealed = ring.seal_text(10, 99, "meet at the old bridge")
    assert b"bridge" not in sealed
    assert b"bridge" not in wrapped
    assert ring.open_text(10, 99, sealed) == "meet at the old bridge"


def test_a_ciphertext_moved_to_another_message_or_chat_fails_to_open() -> None:
    ring = keyring()
    ring.new_chat_key(10)
    ring.new_chat_key(11)
    sealed = ring.seal_text(10, 99, "secret")
    with pytest.raises(SealError):
        ring.open_text(10, 100, sealed)
    with pytest.raises(SealError):
        ring.open_text(11, 99, sealed)


def test_a_tampered_ciphertext_fails_to_open() -> None:
    ring = keyring()
    ring.new_chat_key(10)
    sealed = bytearray(ring.seal_text(10, 1, "secret"))
    sealed[-1] ^= 1
    with pytest.raises(SealError):
        ring.open_text(10, 1, bytes(sealed))
    with pytest.raises(SealError):
        ring.open_text(10, 1, b"\x01short")


def test_chat_keys_unwrap_only_with_the_same_dc_key_and_chat() -> None:
    first = keyring(1)
    wrapped = first.new_chat_key(10)
    sealed = first.seal_text(10, 1, "hello")
    later = keyring(1)  # a restarted node: same DC key, empty cache
    later.load_chat_key(10, wrapped, "k1")
    assert later.open_text(10, 1, sealed) == "hello"
    with pytest.raises(SealError):
        keyring(2).load_chat_key(10, wrapped, "k1")
    with pytest.raises(SealError):
        keyring(1).load_chat_key(11, wrapped, "k1")


def test_phone_lookup_is_keyed_by_the_index_key_and_the_shown_number_is_bound_to_its_user() -> None:
    ring = keyring(1)
    assert ring.phone_lookup("+15550000000") == keyring(2).phone_lookup("+15550000000")
    other_index = Keyring("test")
    other_index.install([dc_key(1, index=8)], "k1")
    assert ring.phone_lookup("+15550000000") != other_index.phone_lookup("+15550000000")
    sealed = ring.seal_phone(7, "+15550000000")
    assert b"5550000000" not in sealed
    assert ring.open_phone(7, sealed) == "+15550000000"
    with pytest.raises(SealError):
        ring.open_phone(8, sealed)


def test_login_code_digest_is_bound_to_the_number() -> None:
    ring = keyring()
    assert ring.code_digest("+1555", "12345") != ring.code_digest("+1556", "12345")
    assert ring.code_digest("+1555", "12345") == ring.code_digest("+1555", "12345")


def test_a_sealed_keyring_refuses_everything_with_a_typed_unavailable_error() -> None:
    ring = Keyring("eu")
    assert not ring.unsealed
    for attempt in (
        lambda: ring.new_chat_key(1),
        lambda: ring.phone_lookup("+15550000000"),
        lambda: ring.code_digest("+1555", "12345"),
        ring.require_unsealed,
    ):
        with pytest.raises(DcSealed, match="temporarily unavailable"):
            attempt()
    ring.install([dc_key()], "k1")
    wrapped = ring.new_chat_key(1)
    ring.seal()
    with pytest.raises(DcSealed):
        ring.load_chat_key(1, wrapped, "k1")
    with pytest.raises(SealError):
        ring.seal_text(1, 1, "no key in memory after sealing")


def test_rotation_rewraps_chat_keys_and_keeps_lookups() -> None:
    old = dc_key(1, "k1")
    new = DcKey.generate("k2", keep_index_of=old)
    ring = Keyring("eu")
    ring.install([old], "k1")
    wrapped = ring.new_chat_key(5)
    sealed = ring.seal_text(5, 1, "survives rotation")
    lookup = ring.phone_lookup("+15550000000")

    ring.install([old, new], "k2")
    rewrapped = ring.rewrap_chat_key(5, wrapped, "k1")
    assert ring.key_id == "k2"
    after = Keyring("eu")
    after.install([new], "k2")
    after.load_chat_key(5, rewrapped, "k2")
    assert after.open_text(5, 1, sealed) == "survives rotation"
    assert after.phone_lookup("+15550000000") == lookup
    with pytest.raises(DcSealed, match="re-keyed"):
        after.load_chat_key(6, wrapped, "k1")


def test_keys_of_one_dc_must_share_their_index_key() -> None:
    ring = Keyring("eu")
    with pytest.raises(SealError):
        ring.install([dc_key(1, "k1", index=1), dc_key(2, "k2", index=2)], "k2")
    with pytest.raises(ValueError, match="active key"):
        ring.install([dc_key(1, "k1")], "k9")


def test_dc_key_repr_shows_no_key_bytes() -> None:
    key = DcKey.generate("k1")
    assert key.wrap_material().hex() not in repr(key)
    assert key.index_material().hex() not in repr(key)
    assert DcKey.from_payload(key.payload(), "k1").same_index(key)


def test_data_sealed_under_a_pre_custody_key_file_opens_after_its_import() -> None:
    """The server imports an old ``dc.key`` as DcKey(file, file, "file:1"); everything the
    old single-key keyring wrote (HKDF labels "wrap", "phone-lookup", "phone-seal") must
    still open. The old derivation is written out here as it was (commit 9a4c5db)."""
    import hashlib
    import hmac
    import os

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    def old_derive(key: bytes, label: str) -> bytes:
        info = f"samizdat/v1/{label}".encode()
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)

    def old_seal(key: bytes, plaintext: bytes, ad: bytes) -> bytes:
        nonce = os.urandom(12)
        return b"\x01" + nonce + AESGCM(key).encrypt(nonce, plaintext, ad)

    file_key = os.urandom(32)
    chat_key = AESGCM.generate_key(bit_length=256)
    wrapped = old_seal(old_derive(file_key, "wrap"), chat_key, b"chat-key:7")
    text = old_seal(chat_key, b"written before custody", b"msg:7:70")
    phone = old_seal(old_derive(file_key, "phone-seal"), b"+15550000000", b"phone:3")
    lookup = hmac.new(
        old_derive(file_key, "phone-lookup"), b"+15550000000", hashlib.sha256
    ).digest()

    ring = Keyring("local")
    ring.install([DcKey(file_key, file_key, "file:1")], "file:1")
    ring.load_chat_key(7, wrapped, "file:1")
    assert ring.open_text(7, 70, text) == "written before custody"
    assert ring.open_phone(3, phone) == "+15550000000"
    assert ring.phone_lookup("+15550000000") == lookup


def test_a_node_that_has_not_opened_a_newer_key_makes_no_chat_keys_until_it_has() -> None:
    ring = keyring()
    ring.hold_new_chats(True)
    with pytest.raises(DcSealed, match="re-keyed"):
        ring.new_chat_key(1)
    ring.install([dc_key(), DcKey.generate("k2", keep_index_of=dc_key())], "k2")
    assert ring.new_chat_key(1)  # installing the new key lifts the hold
