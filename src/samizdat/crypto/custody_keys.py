"""Keys of the custody protocol: custodians, DC nodes, and the one-time keys shares travel to.

- A **custodian** holds an X25519 key (shares are sealed to it) and an Ed25519 key (it signs
  every answer, so a node can tell a real grant from a forged one). Its public identity is one
  string, ``szc1:`` + base64url(X25519 public ‖ Ed25519 public).
- A **node** (a server serving a DC) holds an Ed25519 key, ``szn1:`` + base64url(public),
  enrolled with each custodian; it signs every unseal request.
- A **requester** makes a fresh X25519 key per request; the custodian seals the share to it
  (HPKE, info bound to the request digest), so a grant is useless to anyone who replays or
  intercepts it.

Private keys live in files readable only by their owner and never leave this module's objects.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from pydantic import BaseModel

from samizdat.crypto.private_files import write_private
from samizdat.crypto.threshold import (
    SUITE,
    Envelope,
    EnvelopeError,
    Recipient,
    Share,
    open_share,
    share_from_bytes,
    share_to_bytes,
)

CUSTODIAN_PREFIX = "szc1:"
NODE_PREFIX = "szn1:"
_GRANT_INFO = b"samizdat/v1/grant\x00"
_RAW = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
_RAW_PRIVATE = (
    serialization.Encoding.Raw,
    serialization.PrivateFormat.Raw,
    serialization.NoEncryption(),
)


class KeyFormatError(ValueError):
    """A public key string or key file is malformed; the message says which."""


def b64(data: bytes) -> str:
    """base64url without padding (keys, envelopes and signatures on the wire)."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    """Inverse of b64; raises KeyFormatError (a ValueError) on bad input."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise KeyFormatError("not base64url") from exc


def canonical(model: BaseModel) -> bytes:
    """A model's canonical JSON (sorted keys, orjson): the bytes that are signed or committed
    to, recomputed by the receiver from the parsed model, so whitespace or key order on the
    wire changes nothing."""
    return orjson.dumps(model.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)


def read_private_key(path: Path, size: int) -> bytes:
    """A raw private key file of exactly ``size`` bytes; KeyFormatError otherwise."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFormatError(f"cannot read key file {path}: {exc.strerror}") from exc
    if len(data) != size:
        raise KeyFormatError(f"key file {path} is not a {size}-byte key")
    return data


def create_private_key(path: Path, raw: bytes) -> None:
    """Write a new raw private key file (mode 0600); KeyFormatError if one is there: a key
    is never overwritten."""
    try:
        write_private(path, raw, exclusive=True)
    except FileExistsError:
        raise KeyFormatError(f"{path} exists; it is not overwritten") from None


def verify_signature(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


# custodians -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CustodianPublic:
    """What a server (and everyone else) knows about a custodian."""

    encryption_key: bytes  # X25519, 32 bytes
    signing_key: bytes  # Ed25519, 32 bytes

    def encode(self) -> str:
        return CUSTODIAN_PREFIX + b64(self.encryption_key + self.signing_key)

    @classmethod
    def decode(cls, text: str) -> CustodianPublic:
        if not text.startswith(CUSTODIAN_PREFIX):
            raise KeyFormatError(f"a custodian public key starts with {CUSTODIAN_PREFIX}")
        raw = unb64(text[len(CUSTODIAN_PREFIX) :])
        if len(raw) != 64:
            raise KeyFormatError("a custodian public key holds 64 bytes")
        return cls(raw[:32], raw[32:])

    def recipient(self, custodian_id: str) -> Recipient:
        return Recipient(custodian_id, self.encryption_key)

    def verify(self, signature: bytes, message: bytes) -> bool:
        return verify_signature(self.signing_key, signature, message)


class CustodianKeys:
    """A custodian's two private keys (one file of 64 bytes)."""

    FILE_BYTES = 64

    def __init__(self, encryption: X25519PrivateKey, signing: Ed25519PrivateKey) -> None:
        self._encryption = encryption
        self._signing = signing
        self.public = CustodianPublic(
            encryption.public_key().public_bytes(*_RAW), signing.public_key().public_bytes(*_RAW)
        )

    @classmethod
    def generate(cls) -> CustodianKeys:
        return cls(X25519PrivateKey.generate(), Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> CustodianKeys:
        raw = read_private_key(path, cls.FILE_BYTES)
        return cls(
            X25519PrivateKey.from_private_bytes(raw[:32]),
            Ed25519PrivateKey.from_private_bytes(raw[32:]),
        )

    def save(self, path: Path) -> None:
        write_private(
            path,
            self._encryption.private_bytes(*_RAW_PRIVATE)
            + self._signing.private_bytes(*_RAW_PRIVATE),
            exclusive=True,
        )

    def open_share(self, envelope: Envelope, custodian_id: str) -> Share:
        return open_share(envelope, custodian_id, self._encryption)

    def sign(self, message: bytes) -> bytes:
        return self._signing.sign(message)

    def __repr__(self) -> str:
        return f"CustodianKeys(public={self.public.encode()!r})"


def grant_share(share: Share, requester_key: bytes, request_digest: bytes) -> bytes:
    """Seal ``share`` to a requester's one-time X25519 key, bound to its request."""
    try:
        public = X25519PublicKey.from_public_bytes(requester_key)
    except ValueError as exc:
        raise EnvelopeError("the requester key is not an X25519 public key") from exc
    plain = share_to_bytes(share)
    try:
        return SUITE.encrypt(plain, public, _GRANT_INFO + request_digest)
    except ValueError as exc:  # a low-order point: the X25519 shared secret is all zeros
        raise EnvelopeError("the requester key is not a usable X25519 public key") from exc


# nodes ------------------------------------------------------------------------------------
def encode_node_key(public: bytes) -> str:
    return NODE_PREFIX + b64(public)


def decode_node_key(text: str) -> bytes:
    if not text.startswith(NODE_PREFIX):
        raise KeyFormatError(f"a node public key starts with {NODE_PREFIX}")
    raw = unb64(text[len(NODE_PREFIX) :])
    if len(raw) != 32:
        raise KeyFormatError("a node public key holds 32 bytes")
    return raw


class NodeKey:
    """A DC node's Ed25519 identity, enrolled with the custodians; created on first use."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public = key.public_key().public_bytes(*_RAW)

    @classmethod
    def load_or_create(cls, path: Path) -> NodeKey:
        if not path.exists():
            key = Ed25519PrivateKey.generate()
            write_private(path, key.private_bytes(*_RAW_PRIVATE), exclusive=True)
            return cls(key)
        return cls(Ed25519PrivateKey.from_private_bytes(read_private_key(path, 32)))

    def encoded(self) -> str:
        return encode_node_key(self.public)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"NodeKey({self.encoded()!r})"


class RequesterKey:
    """A one-time X25519 key for one request; dropped when the request is done."""

    def __init__(self) -> None:
        self._key = X25519PrivateKey.generate()
        self.public = self._key.public_key().public_bytes(*_RAW)

    def open_grant(self, grant: bytes, request_digest: bytes, *, expected_index: int) -> Share:
        try:
            plain = SUITE.decrypt(grant, self._key, _GRANT_INFO + request_digest)
        except (InvalidTag, ValueError) as exc:
            raise EnvelopeError("a custodian's grant does not open") from exc
        return share_from_bytes(plain, expected_index=expected_index)


def digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


__all__ = [
    "CustodianKeys",
    "CustodianPublic",
    "KeyFormatError",
    "NodeKey",
    "RequesterKey",
    "b64",
    "canonical",
    "create_private_key",
    "decode_node_key",
    "digest",
    "encode_node_key",
    "grant_share",
    "read_private_key",
    "unb64",
    "verify_signature",
]
