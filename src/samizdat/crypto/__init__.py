"""The only place that touches key material: at-rest sealing, threshold envelopes, tokens."""

from samizdat.crypto.atrest import DcSealed, Keyring, SealError
from samizdat.crypto.keysource import DcKey
from samizdat.crypto.threshold import EnvelopeError
from samizdat.crypto.tokens import new_token, token_digest

__all__ = [
    "DcKey",
    "DcSealed",
    "EnvelopeError",
    "Keyring",
    "SealError",
    "new_token",
    "token_digest",
]
