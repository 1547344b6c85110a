"""The requesting authority's key: a disclosure package is sealed to it.

A court order may name the key of the authority that will receive the result
(``samizdat legal recipient keygen`` makes one). The server then seals the package to it
with HPKE (X25519, HKDF-SHA256, AES-256-GCM: the suite threshold envelopes use), bound to the
case, so whoever merely holds or intercepts the orders, or reads the server's answer, learns
nothing. Public keys travel as ``szr1:`` + base64url; the private key stays in a 0600 file
and inside ``RecipientKey``.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from samizdat.crypto.custody_keys import (
    KeyFormatError,
    b64,
    create_private_key,
    read_private_key,
    unb64,
)
from samizdat.crypto.threshold import SUITE

RECIPIENT_PREFIX = "szr1:"
_INFO = b"samizdat/v1/disclosure\x00"
_RAW_PUBLIC = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
_RAW_PRIVATE = (
    serialization.Encoding.Raw,
    serialization.PrivateFormat.Raw,
    serialization.NoEncryption(),
)


class SealedPackageError(ValueError):
    """A sealed package does not open with this key for this case."""


def decode_recipient(text: str) -> bytes:
    """An ``szr1:`` X25519 public key; KeyFormatError unless it is one."""
    if not text.startswith(RECIPIENT_PREFIX):
        raise KeyFormatError(f"a recipient key starts with {RECIPIENT_PREFIX}")
    raw = unb64(text[len(RECIPIENT_PREFIX) :])
    if len(raw) != 32:
        raise KeyFormatError("a recipient key holds 32 bytes")
    return raw


def seal_package(recipient: str, case: str, package: bytes) -> bytes:
    """``package`` sealed to ``recipient`` (``szr1:...``), bound to ``case``."""
    public = X25519PublicKey.from_public_bytes(decode_recipient(recipient))
    try:
        return SUITE.encrypt(package, public, _INFO + case.encode())
    except ValueError as exc:  # a low-order point: no shared secret
        raise KeyFormatError("the recipient key is not a usable X25519 key") from exc


class RecipientKey:
    """An authority's X25519 key in one file (mode 0600)."""

    def __init__(self, key: X25519PrivateKey) -> None:
        self._key = key
        self.public = key.public_key().public_bytes(*_RAW_PUBLIC)

    @classmethod
    def create(cls, path: Path) -> RecipientKey:
        key = X25519PrivateKey.generate()
        create_private_key(path, key.private_bytes(*_RAW_PRIVATE))
        return cls(key)

    @classmethod
    def load(cls, path: Path) -> RecipientKey:
        return cls(X25519PrivateKey.from_private_bytes(read_private_key(path, 32)))

    def public_text(self) -> str:
        return RECIPIENT_PREFIX + b64(self.public)

    def open_package(self, case: str, sealed: bytes) -> bytes:
        try:
            return SUITE.decrypt(sealed, self._key, _INFO + case.encode())
        except (InvalidTag, ValueError) as exc:
            raise SealedPackageError("the package does not open with this key") from exc

    def __repr__(self) -> str:
        return f"RecipientKey(public={self.public_text()!r})"


__all__ = [
    "RECIPIENT_PREFIX",
    "RecipientKey",
    "SealedPackageError",
    "decode_recipient",
    "seal_package",
]
