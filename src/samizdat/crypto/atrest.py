"""At-rest sealing for one DC: message text under per-chat data keys, phone numbers.

Key hierarchy (all derived or wrapped here; nothing else sees key bytes)::

    DC key (from a KeySource)
     ├─ HKDF "wrap"          wraps each chat's random 256-bit data key (AES-GCM, AD = chat id)
     │    └─ chat data key   seals each message text (AES-GCM, AD = chat id + message id)
     ├─ HKDF "phone-lookup"  HMAC-SHA256 of the E.164 number: an index that a disk alone
     │                       cannot brute-force, because the key is not on the disk
     ├─ HKDF "phone-seal"    AES-GCM of the number (AD = user id)
     └─ HKDF "login-code"    HMAC of a login code bound to its number

AD binding means a ciphertext moved to another chat, message or user fails to open.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections import OrderedDict

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from samizdat.crypto.keysource import DcKey
from samizdat.protocol.errors import InternalError

_VERSION = b"\x01"
_NONCE = 12


class SealError(InternalError):
    """A stored ciphertext failed to open: tampering, a wrong key, or a moved record."""


def _derive(key: bytes, label: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"samizdat/v1/{label}".encode()
    ).derive(key)


def _seal(aead: AESGCM, plaintext: bytes, ad: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return _VERSION + nonce + aead.encrypt(nonce, plaintext, ad)


def _open(aead: AESGCM, sealed: bytes, ad: bytes) -> bytes:
    if len(sealed) < 1 + _NONCE + 16 or sealed[:1] != _VERSION:
        raise SealError("stored ciphertext is malformed")
    try:
        return aead.decrypt(sealed[1 : 1 + _NONCE], sealed[1 + _NONCE :], ad)
    except InvalidTag as exc:
        raise SealError("stored ciphertext failed authentication") from exc


class Keyring:
    """Everything the store needs to seal and open, with no key bytes exposed."""

    def __init__(self, dc_key: DcKey, *, cache_size: int = 100_000) -> None:
        material = dc_key.material()
        self.key_id = dc_key.key_id
        self._wrap = AESGCM(_derive(material, "wrap"))
        self._phone_lookup = _derive(material, "phone-lookup")
        self._phone_seal = AESGCM(_derive(material, "phone-seal"))
        self._login_code = _derive(material, "login-code")
        self._chat_aeads: OrderedDict[int, AESGCM] = OrderedDict()
        self._cache_size = cache_size

    # chat data keys ----------------------------------------------------------------------
    def new_chat_key(self, chat_id: int) -> bytes:
        """Make a fresh data key for a chat and return it wrapped, ready to store."""
        key = AESGCM.generate_key(bit_length=256)
        self._remember(chat_id, AESGCM(key))
        return _seal(self._wrap, key, b"chat-key:%d" % chat_id)

    def load_chat_key(self, chat_id: int, wrapped: bytes) -> None:
        if chat_id not in self._chat_aeads:
            self._remember(chat_id, AESGCM(_open(self._wrap, wrapped, b"chat-key:%d" % chat_id)))

    def has_chat_key(self, chat_id: int) -> bool:
        return chat_id in self._chat_aeads

    def _remember(self, chat_id: int, aead: AESGCM) -> None:
        self._chat_aeads[chat_id] = aead
        if len(self._chat_aeads) > self._cache_size:
            self._chat_aeads.popitem(last=False)

    def _chat(self, chat_id: int) -> AESGCM:
        try:
            return self._chat_aeads[chat_id]
        except KeyError:
            raise SealError("chat key not loaded", debug_context={"chat_id": chat_id}) from None

    # messages ----------------------------------------------------------------------------
    def seal_text(self, chat_id: int, message_id: int, text: str) -> bytes:
        return _seal(self._chat(chat_id), text.encode(), b"msg:%d:%d" % (chat_id, message_id))

    def open_text(self, chat_id: int, message_id: int, sealed: bytes) -> str:
        return _open(self._chat(chat_id), sealed, b"msg:%d:%d" % (chat_id, message_id)).decode()

    # phone numbers -----------------------------------------------------------------------
    def phone_lookup(self, e164: str) -> bytes:
        return hmac.new(self._phone_lookup, e164.encode(), hashlib.sha256).digest()

    def seal_phone(self, user_id: int, e164: str) -> bytes:
        return _seal(self._phone_seal, e164.encode(), b"phone:%d" % user_id)

    def open_phone(self, user_id: int, sealed: bytes) -> str:
        return _open(self._phone_seal, sealed, b"phone:%d" % user_id).decode()

    # login codes -------------------------------------------------------------------------
    def code_digest(self, e164: str, code: str) -> bytes:
        """Keyed digest of a login code bound to its number (compare with hmac.compare_digest)."""
        return hmac.new(self._login_code, f"{e164}\x00{code}".encode(), hashlib.sha256).digest()


__all__ = ["Keyring", "SealError"]
