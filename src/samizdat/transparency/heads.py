"""Signed tree heads: the log's key vouching for one (size, time, root) of the Merkle tree.

A root proves nothing about which tree it belongs to until something signs it together with
the tree size (see ``merkle``), so clients trust only signed heads. The signed bytes are
``b"samizdat/v1/tree-head\\x00"`` followed by the canonical JSON of the three fields; the
prefix keeps a head signature from passing for anything else the same key might sign.

Two heads signed by the same key that are not consistent (neither tree a prefix of the
other) are proof that the log showed different histories to different people: a split view.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from samizdat.crypto.custody_keys import KeyFormatError, b64, canonical, unb64
from samizdat.crypto.signing_keys import verify
from samizdat.transparency.merkle import HASH_SIZE

__all__ = [
    "HEAD_PREFIX",
    "HeadError",
    "TreeHead",
    "head_message",
    "parse_head",
    "sign_head",
    "verify_head",
]

HEAD_PREFIX = b"samizdat/v1/tree-head\x00"
SIGNATURE_BYTES = 64  # Ed25519

B64 = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]*$", max_length=128)]
# Sizes and times are stored in signed 64-bit columns.
Count = Annotated[int, Field(ge=0, lt=2**63)]


class HeadError(ValueError):
    """A tree head is malformed or its signature does not verify; the message says which."""


class _Signed(BaseModel):
    """Exactly what a head signature covers."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    tree_size: Count
    timestamp_ms: Count
    root_hash: B64


class TreeHead(_Signed):
    """A signed tree head as stored and served; ``root_hash`` and ``signature`` are base64url.

    Constructing one checks the encodings and lengths, never the signature (``verify_head``).
    """

    signature: B64

    @field_validator("root_hash")
    @classmethod
    def _a_hash(cls, value: str) -> str:
        _decode(value, HASH_SIZE, "root_hash")
        return value

    @field_validator("signature")
    @classmethod
    def _a_signature(cls, value: str) -> str:
        _decode(value, SIGNATURE_BYTES, "signature")
        return value

    def root(self) -> bytes:
        return unb64(self.root_hash)

    def signature_bytes(self) -> bytes:
        return unb64(self.signature)


def _decode(value: str, size: int, name: str) -> bytes:
    try:
        raw = unb64(value)
    except KeyFormatError:
        raise ValueError(f"{name} is not base64url") from None
    if len(raw) != size:
        raise ValueError(f"{name} is not {size} bytes")
    return raw


def head_message(tree_size: int, timestamp_ms: int, root: bytes) -> bytes:
    """The bytes a head's signature covers.

    Raises:
        HeadError: a size or time is out of range, or ``root`` is not ``HASH_SIZE`` bytes.
    """
    if len(root) != HASH_SIZE:
        raise HeadError(f"a root hash is {HASH_SIZE} bytes")
    try:
        body = _Signed(tree_size=tree_size, timestamp_ms=timestamp_ms, root_hash=b64(root))
    except ValidationError as exc:
        raise HeadError(_first_error(exc)) from None
    return HEAD_PREFIX + canonical(body)


def sign_head(
    tree_size: int, timestamp_ms: int, root: bytes, sign: Callable[[bytes], bytes]
) -> TreeHead:
    """A head for the tree of ``tree_size`` leaves with ``root``, signed by ``sign``
    (e.g. ``SigningKey.sign``)."""
    signature = sign(head_message(tree_size, timestamp_ms, root))
    return TreeHead(
        tree_size=tree_size,
        timestamp_ms=timestamp_ms,
        root_hash=b64(root),
        signature=b64(signature),
    )


def verify_head(head: TreeHead, public_key: bytes) -> None:
    """Check that ``public_key`` (raw Ed25519, 32 bytes) signed ``head``.

    Raises:
        HeadError: the signature does not verify, or a field is malformed.
    """
    try:
        root = _decode(head.root_hash, HASH_SIZE, "root_hash")
        signature = _decode(head.signature, SIGNATURE_BYTES, "signature")
    except ValueError as exc:
        raise HeadError(str(exc)) from None
    message = head_message(head.tree_size, head.timestamp_ms, root)
    if not verify(public_key, signature, message):
        raise HeadError(f"the signature on the tree head of size {head.tree_size} is not the log's")


def parse_head(data: Any) -> TreeHead:
    """A head from parsed JSON (a dict with the four fields; other keys such as ``log_key``
    are ignored, so a head copied from ``/transparency/head`` parses as it is).

    Raises:
        HeadError: ``data`` is not an object with four well-formed fields.
    """
    if not isinstance(data, dict):
        raise HeadError("a tree head is a JSON object")
    fields = {name: data.get(name) for name in TreeHead.model_fields}
    try:
        return TreeHead.model_validate(fields)
    except ValidationError as exc:
        raise HeadError(_first_error(exc)) from None


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])
