"""A device's end-to-end keys: what DeviceCrypto publishes is signed over exactly the protocol's
messages, so any change to a signed field, or a signature moved to another purpose, fails."""

from __future__ import annotations

import pytest
import vodozemac

from samizdat.crypto.e2ee import DeviceCrypto
from samizdat.protocol.keys import device_keys_message, one_time_key_message

USER_ID = 1234
DEVICE_ID = 5678


def verifies(signing_key: str, message: bytes, signature: str) -> bool:
    public = vodozemac.Ed25519PublicKey.from_base64(signing_key)
    try:
        public.verify_signature(message, vodozemac.Ed25519Signature.from_base64(signature))
    except vodozemac.SignatureException:
        return False
    return True


@pytest.fixture
def crypto() -> DeviceCrypto:
    device = DeviceCrypto.create()
    device.device_keys_upload(USER_ID, DEVICE_ID)  # tells it which device it is
    return device


def test_public_keys_are_the_accounts_curve25519_and_ed25519_keys(crypto: DeviceCrypto) -> None:
    assert vodozemac.Curve25519PublicKey.from_base64(crypto.identity_key).to_base64() == (
        crypto.identity_key
    )
    assert vodozemac.Ed25519PublicKey.from_base64(crypto.signing_key).to_base64() == (
        crypto.signing_key
    )
    other = DeviceCrypto.create()
    assert other.identity_key != crypto.identity_key
    assert other.signing_key != crypto.signing_key


def test_the_device_keys_signature_verifies_against_the_message_builder(
    crypto: DeviceCrypto,
) -> None:
    params = crypto.device_keys_upload(USER_ID, DEVICE_ID)
    assert params["identity_key"] == crypto.identity_key
    assert params["signing_key"] == crypto.signing_key
    message = device_keys_message(USER_ID, DEVICE_ID, crypto.identity_key, crypto.signing_key)
    assert verifies(crypto.signing_key, message, params["signature"])


def test_altering_any_signed_device_field_breaks_verification(crypto: DeviceCrypto) -> None:
    signature = crypto.device_keys_upload(USER_ID, DEVICE_ID)["signature"]
    other = DeviceCrypto.create()
    altered = [
        (USER_ID + 1, DEVICE_ID, crypto.identity_key, crypto.signing_key),
        (USER_ID, DEVICE_ID + 1, crypto.identity_key, crypto.signing_key),
        (DEVICE_ID, USER_ID, crypto.identity_key, crypto.signing_key),
        (USER_ID, DEVICE_ID, other.identity_key, crypto.signing_key),
        (USER_ID, DEVICE_ID, crypto.identity_key, other.signing_key),
        (USER_ID, DEVICE_ID, crypto.signing_key, crypto.identity_key),
    ]
    for fields in altered:
        assert not verifies(crypto.signing_key, device_keys_message(*fields), signature), fields
    # Nor does anyone else's key verify it.
    message = device_keys_message(USER_ID, DEVICE_ID, crypto.identity_key, crypto.signing_key)
    assert not verifies(other.signing_key, message, signature)


def test_one_time_and_fallback_key_signatures_verify_against_the_message_builder(
    crypto: DeviceCrypto,
) -> None:
    keys = crypto.new_one_time_keys(5)
    assert len(keys) == 5
    for key in keys:
        assert set(key) == {"key_id", "key", "signature"}
        vodozemac.Curve25519PublicKey.from_base64(key["key"])
        message = one_time_key_message(DEVICE_ID, key["key_id"], key["key"], fallback=False)
        assert verifies(crypto.signing_key, message, key["signature"])

    fallback = crypto.new_fallback_key()
    assert set(fallback) == {"key_id", "key", "signature"}
    vodozemac.Curve25519PublicKey.from_base64(fallback["key"])
    message = one_time_key_message(DEVICE_ID, fallback["key_id"], fallback["key"], fallback=True)
    assert verifies(crypto.signing_key, message, fallback["signature"])


def test_altering_any_signed_one_time_key_field_breaks_verification(
    crypto: DeviceCrypto,
) -> None:
    # (vodozemac numbers fallback and one-time keys separately, so ids can coincide.)
    first, second = crypto.new_one_time_keys(2)
    fallback = crypto.new_fallback_key()
    for key, is_fallback in ((first, False), (fallback, True)):
        altered = [
            (DEVICE_ID + 1, key["key_id"], key["key"], is_fallback),
            (DEVICE_ID, key["key_id"] + "A", key["key"], is_fallback),
            (DEVICE_ID, key["key_id"], second["key"], is_fallback),
            (DEVICE_ID, key["key_id"], key["key"], not is_fallback),
        ]
        for device_id, key_id, public, flag in altered:
            message = one_time_key_message(device_id, key_id, public, fallback=flag)
            assert not verifies(crypto.signing_key, message, key["signature"])
    # A one-time key's signature is not a device-keys signature, nor the reverse.
    device_signature = crypto.device_keys_upload(USER_ID, DEVICE_ID)["signature"]
    otk_message = one_time_key_message(DEVICE_ID, first["key_id"], first["key"], fallback=False)
    assert not verifies(crypto.signing_key, otk_message, device_signature)


def test_one_time_keys_are_distinct_within_and_across_batches(crypto: DeviceCrypto) -> None:
    batches = [crypto.new_one_time_keys(20) for _ in range(3)]
    keys = [key for batch in batches for key in batch]
    assert all(len(batch) == 20 for batch in batches)
    assert len({k["key_id"] for k in keys}) == 60
    assert len({k["key"] for k in keys}) == 60
    fallbacks = [crypto.new_fallback_key(), crypto.new_fallback_key()]
    assert fallbacks[0]["key"] != fallbacks[1]["key"]
    assert not {f["key"] for f in fallbacks} & {k["key"] for k in keys}


def test_messages_are_unambiguous() -> None:
    key = DeviceCrypto.create()
    ik, sk = key.identity_key, key.signing_key
    assert device_keys_message(1, 23, ik, sk) != device_keys_message(12, 3, ik, sk)
    assert device_keys_message(1, 2, ik, sk) != device_keys_message(1, 2, sk, ik)
    assert one_time_key_message(1, "AB", "CD", fallback=False) != one_time_key_message(
        1, "ABC", "D", fallback=False
    )
    assert one_time_key_message(12, "A", ik, fallback=False) != one_time_key_message(
        1, "2A", ik, fallback=False
    )
    assert one_time_key_message(1, "A", ik, fallback=False) != one_time_key_message(
        1, "A", ik, fallback=True
    )
    # Neither kind of message can stand for the other.
    device_messages = {device_keys_message(1, 2, ik, sk)}
    assert one_time_key_message(1, "2", ik, fallback=False) not in device_messages
