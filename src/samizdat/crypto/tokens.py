"""Device tokens: 256 random bits shown once to the client; the server keeps only a digest.

A SHA-256 digest is the right tool here (not argon2): the token has 256 bits of entropy, so
there is nothing to brute-force, and lookups must be fast. Lookup by digest means the token
itself is never compared, and a leaked table grants nothing.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 32


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


__all__ = ["TOKEN_BYTES", "new_token", "token_digest"]
