"""Device tokens: 256 random bits shown once to the client; the server keeps only a digest.

A SHA-256 digest is the right tool here (not argon2): the token has 256 bits of entropy, so
there is nothing to brute-force, and lookups must be fast. Lookup by digest means the token
itself is never compared, and a leaked table grants nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from samizdat.crypto.private_files import write_private

TOKEN_BYTES = 32


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class AdminToken:
    """The operator's token for admin endpoints (key rotation), in ``DATA/admin.token``.

    Whoever can read the data directory is the operator; the token grants no key material,
    only the right to start operations such as a rotation."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            write_private(path, new_token().encode())
        self._digest = token_digest(path.read_text().strip())

    def matches(self, presented: str) -> bool:
        return hmac.compare_digest(self._digest, token_digest(presented))


__all__ = ["TOKEN_BYTES", "AdminToken", "new_token", "token_digest"]
