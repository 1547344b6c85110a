"""At-rest sealing for one DC: message text under per-chat data keys, keyed lookups.

Key hierarchy (all derived or wrapped here; nothing else sees key bytes)::

    DC key (rebuilt from custodians' shares, memory only; see keysource.py)
     ├─ wrap key (per key id)  wraps each chat's random 256-bit data key (AES-GCM, AD = chat id)
     │    └─ chat data key     seals each message text (AES-GCM, AD = chat id + message id)
     └─ index key (survives rotation)
          ├─ HKDF "phone-lookup"   HMAC-SHA256 of the E.164 number: an index that a disk alone
          │                        cannot brute-force, because the key is not on the disk
          ├─ HKDF "phone-seal"     AES-GCM of the number a user chose to show (AD = user id)
          ├─ HKDF "login-code"     HMAC of a login code bound to its number
          └─ HKDF "ip-dedupe"      HMAC that spots an address already logged today

AD binding means a ciphertext moved to another chat, message or user fails to open. Until a
DC key is installed the keyring is *sealed*: every operation raises ``DcSealed``, which
clients see as a typed UNAVAILABLE error ("temporarily unavailable").
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections import OrderedDict
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from samizdat.crypto.keysource import DcKey
from samizdat.protocol.errors import InternalError, Unavailable

_VERSION = b"\x01"
_NONCE = 12


class SealError(InternalError):
    """A stored ciphertext failed to open: tampering, a wrong key, or a moved record."""


class DcSealed(Unavailable):
    """The DC's key is not in memory: too few custodians have answered yet."""


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


class _Unlocked:
    """What an installed DC key gives: wrap AEADs per key id and the index-derived keys."""

    def __init__(self, keys: Sequence[DcKey], active: str) -> None:
        self.active = active
        self.wraps = {k.key_id: AESGCM(_derive(k.wrap_material(), "wrap")) for k in keys}
        index = next(k for k in keys if k.key_id == active).index_material()
        self.phone_lookup = _derive(index, "phone-lookup")
        self.phone_profile = AESGCM(_derive(index, "phone-seal"))
        self.login_code = _derive(index, "login-code")
        self.ip_dedupe = _derive(index, "ip-dedupe")


class Keyring:
    """Everything the store needs to seal and open, with no key bytes exposed."""

    def __init__(self, dc_id: str = "dc", *, cache_size: int = 100_000) -> None:
        self.dc_id = dc_id
        self._unlocked: _Unlocked | None = None
        self._holding = False
        self._chat_aeads: OrderedDict[int, AESGCM] = OrderedDict()
        self._cache_size = cache_size

    # sealed / unsealed ---------------------------------------------------------------------
    def install(self, keys: Sequence[DcKey], active_key_id: str) -> None:
        """Unseal with every live DC key (old ones still open chats not yet re-wrapped)."""
        if not any(k.key_id == active_key_id for k in keys):
            raise ValueError("the active key must be among the installed keys")
        first = keys[0]
        if not all(first.same_index(k) for k in keys):
            raise SealError("DC keys of one DC must share their index key")
        self._unlocked = _Unlocked(keys, active_key_id)
        self._holding = False

    def hold_new_chats(self, holding: bool) -> None:
        """While a newer DC key exists that this node has not opened yet, make no chat keys
        under an older one (it is about to be replaced): creating a chat is refused with a
        transient UNAVAILABLE until ``install`` brings the new key."""
        self._holding = holding

    def seal(self) -> None:
        """Forget every key (the DC is sealed again until custodians answer)."""
        self._unlocked = None
        self._chat_aeads.clear()

    @property
    def unsealed(self) -> bool:
        return self._unlocked is not None

    def require_unsealed(self) -> None:
        """Raise DcSealed (UNAVAILABLE, "temporarily unavailable") unless unsealed."""
        self._keys()

    def _keys(self) -> _Unlocked:
        unlocked = self._unlocked
        if unlocked is None:
            raise DcSealed(
                f"data centre {self.dc_id} is temporarily unavailable: its key custodians have "
                "not answered yet; try again in a minute"
            )
        return unlocked

    @property
    def key_id(self) -> str:
        """The key id new chat keys are wrapped with."""
        return self._keys().active

    # chat data keys ----------------------------------------------------------------------
    def new_chat_key(self, chat_id: int) -> bytes:
        """Make a fresh data key for a chat and return it wrapped (under ``key_id``)."""
        keys = self._keys()
        if self._holding:
            raise DcSealed(
                f"data centre {self.dc_id} is being re-keyed; try again in a few seconds"
            )
        key = AESGCM.generate_key(bit_length=256)
        self._remember(chat_id, AESGCM(key))
        return _seal(keys.wraps[keys.active], key, b"chat-key:%d" % chat_id)

    def load_chat_key(self, chat_id: int, wrapped: bytes, key_id: str) -> None:
        if chat_id not in self._chat_aeads:
            self._remember(chat_id, AESGCM(self.unwrap_chat_key(chat_id, wrapped, key_id)))

    def unwrap_chat_key(self, chat_id: int, wrapped: bytes, key_id: str) -> bytes:
        wrap = self._keys().wraps.get(key_id)
        if wrap is None:
            raise DcSealed(
                f"data centre {self.dc_id} is being re-keyed; try again in a few seconds",
                debug_context={"key_id": key_id},
            )
        return _open(wrap, wrapped, b"chat-key:%d" % chat_id)

    def rewrap_chat_key(self, chat_id: int, wrapped: bytes, key_id: str) -> bytes:
        """Re-wrap a chat key under the active DC key (rotation); the chat key is unchanged."""
        keys = self._keys()
        plain = self.unwrap_chat_key(chat_id, wrapped, key_id)
        return _seal(keys.wraps[keys.active], plain, b"chat-key:%d" % chat_id)

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
        return hmac.new(self._keys().phone_lookup, e164.encode(), hashlib.sha256).digest()

    def seal_phone(self, user_id: int, e164: str) -> bytes:
        """The profile copy of a number its owner chose to show (cloud data, DC key)."""
        return _seal(self._keys().phone_profile, e164.encode(), b"phone:%d" % user_id)

    def open_phone(self, user_id: int, sealed: bytes) -> str:
        return _open(self._keys().phone_profile, sealed, b"phone:%d" % user_id).decode()

    def ip_seen_digest(self, device_id: int, ip: str, day: int) -> bytes:
        """Keyed digest of (device, address, day): logs an address once a day per device."""
        material = f"{device_id}\x00{ip}\x00{day}".encode()
        return hmac.new(self._keys().ip_dedupe, material, hashlib.sha256).digest()

    # login codes -------------------------------------------------------------------------
    def code_digest(self, e164: str, code: str) -> bytes:
        """Keyed digest of a login code bound to its number (compare with hmac.compare_digest)."""
        return hmac.new(
            self._keys().login_code, f"{e164}\x00{code}".encode(), hashlib.sha256
        ).digest()


__all__ = ["DcSealed", "Keyring", "SealError"]
