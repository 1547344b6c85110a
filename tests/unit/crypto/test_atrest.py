"""At-rest sealing: what a seized disk holds cannot be read or moved without the DC key."""

from __future__ import annotations

import pytest

from samizdat.crypto import DcKey, FileKeySource, Keyring, SealError


def keyring(byte: int = 1) -> Keyring:
    return Keyring(DcKey(bytes([byte]) * 32, key_id="test"))


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
    later.load_chat_key(10, wrapped)
    assert later.open_text(10, 1, sealed) == "hello"
    with pytest.raises(SealError):
        keyring(2).load_chat_key(10, wrapped)
    with pytest.raises(SealError):
        keyring(1).load_chat_key(11, wrapped)


def test_phone_lookup_is_keyed_and_the_sealed_number_is_bound_to_its_user() -> None:
    ring = keyring(1)
    assert ring.phone_lookup("+15550000000") == keyring(1).phone_lookup("+15550000000")
    assert ring.phone_lookup("+15550000000") != keyring(2).phone_lookup("+15550000000")
    sealed = ring.seal_phone(7, "+15550000000")
    assert b"5550000000" not in sealed
    assert ring.open_phone(7, sealed) == "+15550000000"
    with pytest.raises(SealError):
        ring.open_phone(8, sealed)


def test_login_code_digest_is_bound_to_the_number() -> None:
    ring = keyring()
    assert ring.code_digest("+1555", "12345") != ring.code_digest("+1556", "12345")
    assert ring.code_digest("+1555", "12345") == ring.code_digest("+1555", "12345")


def test_key_file_is_created_private_and_reused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "dc.key"
    first = FileKeySource(path).load()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert FileKeySource(path).load().material() == first.material()
    assert "material" not in repr(first)
    assert first.material().hex() not in repr(first)
