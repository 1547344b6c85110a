"""Ed25519 keys that sign documents others verify: court orders and transparency tree heads.

A court signs its orders (``samizdat legal court keygen`` makes its key, for courts and
tests); the operator's transparency log signs its tree heads. Public keys travel as
``szk1:`` + base64url of the raw 32 bytes (the bare base64url is read too). The private
key lives in a file readable only by its owner and never leaves the ``SigningKey`` object.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from samizdat.crypto.custody_keys import (
    KeyFormatError,
    b64,
    create_private_key,
    read_private_key,
    unb64,
    verify_signature,
)

PUBLIC_KEY_BYTES = 32
#: Public keys are written with this prefix: base64url may begin with "-", which a command
#: line would take for an option.
PUBLIC_PREFIX = "szk1:"
_RAW_PUBLIC = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
_RAW_PRIVATE = (
    serialization.Encoding.Raw,
    serialization.PrivateFormat.Raw,
    serialization.NoEncryption(),
)


class SigningKey:
    """An Ed25519 private key kept in one file (mode 0600)."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public = key.public_key().public_bytes(*_RAW_PUBLIC)

    @classmethod
    def create(cls, path: Path) -> SigningKey:
        """A new key written to ``path``; refuses to overwrite an existing file."""
        key = Ed25519PrivateKey.generate()
        create_private_key(path, key.private_bytes(*_RAW_PRIVATE))
        return cls(key)

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        return cls(Ed25519PrivateKey.from_private_bytes(read_private_key(path, 32)))

    @classmethod
    def load_or_create(cls, path: Path) -> SigningKey:
        return cls.load(path) if path.exists() else cls.create(path)

    def public_text(self) -> str:
        return encode_public_key(self.public)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"SigningKey(public={self.public_text()!r})"


def encode_public_key(public: bytes) -> str:
    return PUBLIC_PREFIX + b64(public)


def decode_public_key(text: str) -> bytes:
    """An Ed25519 public key, ``szk1:``-prefixed or bare base64url; KeyFormatError unless it
    is 32 bytes."""
    raw = unb64(text.strip().removeprefix(PUBLIC_PREFIX))
    if len(raw) != PUBLIC_KEY_BYTES:
        raise KeyFormatError("an Ed25519 public key is 32 bytes, base64url")
    return raw


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is ``public_key``'s over ``message`` (never raises)."""
    return verify_signature(public_key, signature, message)


__all__ = [
    "PUBLIC_KEY_BYTES",
    "PUBLIC_PREFIX",
    "SigningKey",
    "decode_public_key",
    "encode_public_key",
    "verify",
]
