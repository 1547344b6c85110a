"""A disclosure package sealed to the requesting authority's key opens only with that key,
only for its case, and only unaltered."""

from __future__ import annotations

from pathlib import Path

import pytest

from samizdat.crypto.custody_keys import KeyFormatError
from samizdat.crypto.recipient_keys import (
    RecipientKey,
    SealedPackageError,
    decode_recipient,
    seal_package,
)

PACKAGE = b'{"phone": "+999661234567", "ips": []}'


@pytest.fixture
def key(tmp_path: Path) -> RecipientKey:
    return RecipientKey.create(tmp_path / "authority.key")


def test_a_sealed_package_opens_with_the_key_for_its_case(key: RecipientKey) -> None:
    sealed = seal_package(key.public_text(), "C-1", PACKAGE)
    assert PACKAGE not in sealed
    assert key.open_package("C-1", sealed) == PACKAGE


def test_another_case_another_key_or_a_changed_byte_does_not_open(
    key: RecipientKey, tmp_path: Path
) -> None:
    sealed = seal_package(key.public_text(), "C-1", PACKAGE)
    other = RecipientKey.create(tmp_path / "other.key")
    with pytest.raises(SealedPackageError):
        key.open_package("C-2", sealed)
    with pytest.raises(SealedPackageError):
        other.open_package("C-1", sealed)
    for index in (0, len(sealed) // 2, len(sealed) - 1):
        changed = bytearray(sealed)
        changed[index] ^= 1
        with pytest.raises(SealedPackageError):
            key.open_package("C-1", bytes(changed))
    with pytest.raises(SealedPackageError):
        key.open_package("C-1", sealed[:20])


def test_the_key_file_is_private_reloads_and_is_never_overwritten(
    key: RecipientKey, tmp_path: Path
) -> None:
    path = tmp_path / "authority.key"
    assert path.stat().st_mode & 0o777 == 0o600
    again = RecipientKey.load(path)
    assert again.public_text() == key.public_text()
    with pytest.raises(KeyFormatError, match="not overwritten"):
        RecipientKey.create(path)
    assert RecipientKey.load(path).public_text() == key.public_text()


@pytest.mark.parametrize(
    "text",
    ["", "szr1:", "szk1:" + "A" * 43, "szr1:" + "A" * 42, "szr1:" + "!" * 43, "A" * 48],
)
def test_a_malformed_recipient_key_is_refused(text: str) -> None:
    with pytest.raises(KeyFormatError):
        decode_recipient(text)


def test_a_low_order_point_cannot_be_sealed_to() -> None:
    zero = "szr1:" + "A" * 43  # the all-zero X25519 point
    with pytest.raises(KeyFormatError):
        seal_package(zero, "C-1", PACKAGE)
