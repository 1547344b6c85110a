"""A DC key: the secret that unlocks one DC's stored data, held only in a node's memory.

Its threshold-envelope payload is two random 32-byte keys:

- the **wrap key**, which wraps every chat's data key; rotating the DC key replaces it and
  re-wraps the chat keys (``samizdat dc rotate-key``);
- the **index key**, from which the keyed hashes of phone numbers (lookups) and login codes
  are derived. It survives rotations, because a phone number's lookup cannot be recomputed:
  the number itself is sealed to the custodians.

A DcKey comes into being either freshly generated (first start of a DC, rotation) or rebuilt
from custodians' shares; it is never written to disk.
"""

from __future__ import annotations

import secrets

from samizdat.crypto.threshold import EnvelopeError

DC_KEY_BYTES = 32
PAYLOAD_BYTES = 2 * DC_KEY_BYTES


class DcKey:
    """Opaque holder of a DC key; its bytes never leave samizdat.crypto."""

    __slots__ = ("_index", "_wrap", "key_id")

    def __init__(self, wrap: bytes, index: bytes, key_id: str) -> None:
        if len(wrap) != DC_KEY_BYTES or len(index) != DC_KEY_BYTES:
            raise ValueError("a DC key is two 32-byte keys")
        self._wrap = wrap
        self._index = index
        self.key_id = key_id

    @classmethod
    def generate(cls, key_id: str, *, keep_index_of: DcKey | None = None) -> DcKey:
        """A fresh DC key; on rotation, pass the old key so the index key carries over."""
        index = keep_index_of._index if keep_index_of else secrets.token_bytes(DC_KEY_BYTES)
        return cls(secrets.token_bytes(DC_KEY_BYTES), index, key_id)

    @classmethod
    def from_payload(cls, payload: bytes, key_id: str) -> DcKey:
        if len(payload) != PAYLOAD_BYTES:
            raise EnvelopeError("a DC key envelope must hold 64 bytes")
        return cls(payload[:DC_KEY_BYTES], payload[DC_KEY_BYTES:], key_id)

    def payload(self) -> bytes:
        """For sealing into a threshold envelope (samizdat.crypto only)."""
        return self._wrap + self._index

    def wrap_material(self) -> bytes:
        return self._wrap

    def index_material(self) -> bytes:
        return self._index

    def same_index(self, other: DcKey) -> bool:
        return secrets.compare_digest(self._index, other._index)

    def __repr__(self) -> str:
        return f"DcKey(key_id={self.key_id!r})"


__all__ = ["DC_KEY_BYTES", "DcKey"]
