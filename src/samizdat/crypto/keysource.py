"""Where a DC key comes from. Today a local key file; issue #4 replaces it with custodians.

The rest of the system sees only ``KeySource.load()``, so swapping the source changes no caller.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Protocol

from samizdat.protocol.errors import Unavailable

DC_KEY_BYTES = 32


class DcKey:
    """Opaque holder of a DC key; its bytes never leave samizdat.crypto."""

    __slots__ = ("_key", "key_id")

    def __init__(self, key: bytes, key_id: str) -> None:
        if len(key) != DC_KEY_BYTES:
            raise ValueError("a DC key is 32 bytes")
        self._key = key
        self.key_id = key_id

    def material(self) -> bytes:
        """For samizdat.crypto only."""
        return self._key

    def __repr__(self) -> str:
        return f"DcKey(key_id={self.key_id!r})"


class KeySource(Protocol):
    def load(self) -> DcKey:
        """Return the DC key or raise Unavailable (the DC stays sealed)."""
        ...


class FileKeySource:
    """A 32-byte key in a file readable only by its owner, created on first use."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        self.create = create

    def load(self) -> DcKey:
        if not self.path.exists():
            if not self.create:
                raise Unavailable(f"DC key file {self.path} is missing")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(DC_KEY_BYTES))
        key = self.path.read_bytes()
        if len(key) != DC_KEY_BYTES:
            raise Unavailable(f"DC key file {self.path} is not a 32-byte key")
        return DcKey(key, key_id="file:1")


__all__ = ["DC_KEY_BYTES", "DcKey", "FileKeySource", "KeySource"]
