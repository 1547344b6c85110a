"""The only place that touches key material: at-rest sealing, tokens, key sources."""

from samizdat.crypto.atrest import Keyring, SealError
from samizdat.crypto.keysource import DcKey, FileKeySource, KeySource
from samizdat.crypto.tokens import new_token, token_digest

__all__ = [
    "DcKey",
    "FileKeySource",
    "KeySource",
    "Keyring",
    "SealError",
    "new_token",
    "token_digest",
]
