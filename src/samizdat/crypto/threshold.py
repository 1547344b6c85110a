"""Threshold envelopes: a secret that opens only when k of n custodians each give their share.

Composition (every piece an established primitive, nothing invented)::

    payload ──AES-256-GCM(fresh key, AD = header)──▶ ciphertext
    fresh key = left ‖ right (16 bytes each); each half split k-of-n with Shamir (pycryptodome,
                GF(2^128)); custodian i gets index i and both halves' shares (32 bytes)
    share i ──HPKE base mode, X25519 / HKDF-SHA256 / AES-256-GCM──▶ custodian i's public key,
                info = "samizdat/v1/share" ‖ SHA-256(header ‖ nonce ‖ ciphertext)

The header names the purpose (``dc-key`` or ``identity``), the owner (``dc:eu``,
``dc:eu/user:42/phone``...), k, and the custodians in share order. Because each share's HPKE
``info`` commits to the header and the ciphertext, a custodian that opens its share knows the
purpose and owner it reads in the header are the ones the envelope was sealed with: relabelling
an identity record as a DC key, or moving a share to another envelope, makes HPKE fail. Fewer
than k shares reveal nothing about the key (Shamir), and a wrong share yields a wrong key that
AES-GCM refuses, so nothing ever decrypts to a wrong plaintext.

Wire format (all lengths big-endian)::

    "SZTE" | version=1 | k | n | len8 purpose | len16 owner | n x (len8 custodian id | index)
    | nonce(12) | n x (len16 share ciphertext) | ciphertext
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from Crypto.Protocol.SecretSharing import Shamir
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from samizdat.protocol.errors import InternalError

MAGIC = b"SZTE"
VERSION = 1
MAX_CUSTODIANS = 16
MAX_PAYLOAD = 64 * 1024
KEY_BYTES = 32
SHARE_BYTES = 1 + KEY_BYTES  # index ‖ left share ‖ right share
_NONCE = 12
_HALF = 16
SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_SHARE_INFO = b"samizdat/v1/share\x00"


class EnvelopeError(InternalError):
    """An envelope or a share is malformed, was tampered with, or does not open."""


@dataclass(frozen=True, slots=True)
class Recipient:
    """One custodian as an envelope names it: an id and an X25519 public key (32 bytes)."""

    custodian_id: str
    public_key: bytes


@dataclass(frozen=True, slots=True)
class Share:
    """One custodian's opened share. Secret: it never leaves samizdat.crypto in the clear."""

    index: int
    value: bytes = b""

    def __repr__(self) -> str:
        return f"Share(index={self.index})"


@dataclass(frozen=True, slots=True)
class Envelope:
    purpose: str
    owner: str
    threshold: int
    custodians: tuple[str, ...]
    nonce: bytes
    sealed_shares: tuple[bytes, ...]
    ciphertext: bytes

    # encoding -----------------------------------------------------------------------------
    def header(self) -> bytes:
        """The authenticated header: everything but the nonce, the shares and the payload."""
        purpose, owner = self.purpose.encode(), self.owner.encode()
        out = bytearray(MAGIC)
        out += struct.pack(">BBBB", VERSION, self.threshold, len(self.custodians), len(purpose))
        out += purpose + struct.pack(">H", len(owner)) + owner
        for index, custodian in enumerate(self.custodians, start=1):
            cid = custodian.encode()
            out += struct.pack(">B", len(cid)) + cid + struct.pack(">B", index)
        return bytes(out)

    def digest(self) -> bytes:
        """What every share's HPKE info commits to (header, nonce and ciphertext)."""
        return hashlib.sha256(self.header() + self.nonce + self.ciphertext).digest()

    def to_bytes(self) -> bytes:
        out = bytearray(self.header())
        out += self.nonce
        for sealed in self.sealed_shares:
            out += struct.pack(">H", len(sealed)) + sealed
        out += self.ciphertext
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        """Parse strictly; raise EnvelopeError on anything malformed (never IndexError etc.)."""
        reader = _Reader(data)
        if reader.take(4) != MAGIC:
            raise EnvelopeError("not a threshold envelope")
        version, k, n, purpose_len = struct.unpack(">BBBB", reader.take(4))
        if version != VERSION:
            raise EnvelopeError(f"unsupported envelope version {version}")
        if not 1 <= k <= n <= MAX_CUSTODIANS:
            raise EnvelopeError("envelope threshold is out of range")
        purpose = reader.text(purpose_len)
        owner = reader.text(struct.unpack(">H", reader.take(2))[0])
        custodians = []
        for expected in range(1, n + 1):
            cid = reader.text(reader.take(1)[0])
            if reader.take(1)[0] != expected or not cid:
                raise EnvelopeError("envelope custodian list is malformed")
            custodians.append(cid)
        if len(set(custodians)) != n:
            raise EnvelopeError("envelope names a custodian twice")
        nonce = reader.take(_NONCE)
        shares = tuple(reader.take(struct.unpack(">H", reader.take(2))[0]) for _ in range(n))
        ciphertext = reader.rest()
        if len(ciphertext) < 16:
            raise EnvelopeError("envelope ciphertext is truncated")
        return cls(purpose, owner, k, tuple(custodians), nonce, shares, ciphertext)

    def share_for(self, custodian_id: str) -> tuple[int, bytes]:
        """The (index, sealed share) addressed to ``custodian_id``."""
        try:
            position = self.custodians.index(custodian_id)
        except ValueError:
            raise EnvelopeError("this envelope holds no share for that custodian") from None
        return position + 1, self.sealed_shares[position]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def take(self, count: int) -> bytes:
        end = self.pos + count
        if end > len(self.data):
            raise EnvelopeError("envelope is truncated")
        chunk = bytes(self.data[self.pos : end])
        self.pos = end
        return chunk

    def text(self, count: int) -> str:
        try:
            return self.take(count).decode("ascii")
        except UnicodeDecodeError:
            raise EnvelopeError("envelope text field is not ASCII") from None

    def rest(self) -> bytes:
        chunk = bytes(self.data[self.pos :])
        self.pos = len(self.data)
        return chunk


def _share_info(envelope: Envelope) -> bytes:
    return _SHARE_INFO + envelope.digest()


def seal(
    payload: bytes, *, purpose: str, owner: str, recipients: Sequence[Recipient], threshold: int
) -> Envelope:
    """Seal ``payload`` so that any ``threshold`` of ``recipients`` can open it together."""
    n = len(recipients)
    if not 1 <= threshold <= n <= MAX_CUSTODIANS:
        raise ValueError("need 1 <= threshold <= custodians <= 16")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("threshold envelopes carry at most 64 KiB")
    if len({r.custodian_id for r in recipients}) != n:
        raise ValueError("each custodian may appear once")
    # from_bytes reads these back as ASCII behind 8/16-bit lengths (custodian ids non-empty):
    # refuse here rather than seal a secret whose envelope can never be parsed again
    labels = [(purpose, 0xFF), (owner, 0xFFFF), *((r.custodian_id, 0xFF) for r in recipients)]
    if any(not text.isascii() or len(text) > limit for text, limit in labels) or not all(
        r.custodian_id for r in recipients
    ):
        raise ValueError("purpose, owner and custodian ids must be ASCII and fit their lengths")
    key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(_NONCE)
    unsealed = Envelope(
        purpose, owner, threshold, tuple(r.custodian_id for r in recipients), nonce, (), b""
    )
    ciphertext = AESGCM(key).encrypt(nonce, payload, unsealed.header())
    envelope = Envelope(purpose, owner, threshold, unsealed.custodians, nonce, (), ciphertext)
    left = Shamir.split(threshold, n, key[:_HALF])
    right = Shamir.split(threshold, n, key[_HALF:])
    info = _share_info(envelope)
    sealed_shares = []
    for recipient, (index, left_share), (_, right_share) in zip(
        recipients, left, right, strict=True
    ):
        plain = bytes([index]) + left_share + right_share
        public = X25519PublicKey.from_public_bytes(recipient.public_key)
        sealed_shares.append(SUITE.encrypt(plain, public, info))
    return Envelope(
        purpose, owner, threshold, envelope.custodians, nonce, tuple(sealed_shares), ciphertext
    )


def open_share(envelope: Envelope, custodian_id: str, private_key: X25519PrivateKey) -> Share:
    """A custodian opens the share addressed to it (only after its policy said yes)."""
    index, sealed = envelope.share_for(custodian_id)
    try:
        plain = SUITE.decrypt(sealed, private_key, _share_info(envelope))
    except (InvalidTag, ValueError) as exc:
        raise EnvelopeError("this share does not open with this custodian's key") from exc
    return share_from_bytes(plain, expected_index=index)


def share_from_bytes(plain: bytes, *, expected_index: int | None = None) -> Share:
    if len(plain) != SHARE_BYTES:
        raise EnvelopeError("a share must be 33 bytes")
    if plain[0] == 0 or (expected_index is not None and plain[0] != expected_index):
        raise EnvelopeError("share index does not match its place in the envelope")
    return Share(plain[0], plain[1:])


def share_to_bytes(share: Share) -> bytes:
    return bytes([share.index]) + share.value


def open_envelope(envelope: Envelope, shares: Sequence[Share]) -> bytes:
    """Rebuild the key from ``threshold`` distinct shares and open the payload.

    Raises EnvelopeError if there are too few distinct shares or if any share is wrong (the
    rebuilt key then fails AES-GCM, so a forged share never yields a plaintext).
    """
    distinct: dict[int, Share] = {}
    for share in shares:
        if not 1 <= share.index <= len(envelope.custodians) or len(share.value) != KEY_BYTES:
            raise EnvelopeError("a share does not belong to this envelope")
        distinct.setdefault(share.index, share)
    chosen = list(distinct.values())[: envelope.threshold]
    if len(chosen) < envelope.threshold:
        raise EnvelopeError(
            f"{len(chosen)} of the {envelope.threshold} shares needed to open this envelope"
        )
    left = Shamir.combine([(s.index, s.value[:_HALF]) for s in chosen])
    right = Shamir.combine([(s.index, s.value[_HALF:]) for s in chosen])
    try:
        return AESGCM(left + right).decrypt(envelope.nonce, envelope.ciphertext, envelope.header())
    except InvalidTag as exc:
        raise EnvelopeError("the envelope does not open with these shares") from exc


__all__ = [
    "Envelope",
    "EnvelopeError",
    "Recipient",
    "Share",
    "open_envelope",
    "open_share",
    "seal",
    "share_from_bytes",
    "share_to_bytes",
]
