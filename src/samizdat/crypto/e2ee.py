"""A device's end-to-end identity: a vodozemac (Olm) account, and what it publishes.

The account's private keys never leave this object (and this package). What it hands out is
public: the Curve25519 identity key, the Ed25519 signing key, and signed Curve25519 one-time
and fallback keys for others to start Olm sessions with.
"""

from __future__ import annotations

import base64
from typing import Any

import vodozemac

from samizdat.protocol.keys import device_keys_message, one_time_key_message


class DeviceCrypto:
    def __init__(self, account: vodozemac.Account, device_id: int = 0) -> None:
        self._account = account
        self.device_id = device_id

    @classmethod
    def create(cls, device_id: int = 0) -> DeviceCrypto:
        return cls(vodozemac.Account(), device_id)

    def pickle(self, key: bytes) -> str:
        """The account, encrypted by vodozemac under ``key`` (for ``samizdat.crypto.vault``)."""
        return str(self._account.pickle(key))

    @classmethod
    def from_pickle(cls, pickled: str, key: bytes, device_id: int) -> DeviceCrypto:
        return cls(vodozemac.Account.from_pickle(pickled, key), device_id)

    @property
    def identity_key(self) -> str:
        return str(self._account.curve25519_key.to_base64())

    @property
    def signing_key(self) -> str:
        return str(self._account.ed25519_key.to_base64())

    def sign(self, message: bytes) -> str:
        return str(self._account.sign(message).to_base64())

    def device_keys_upload(self, user_id: int, device_id: int) -> dict[str, Any]:
        """The signed device keys, as ``keys.upload`` parameters."""
        self.device_id = device_id
        message = device_keys_message(user_id, device_id, self.identity_key, self.signing_key)
        return {
            "identity_key": self.identity_key,
            "signing_key": self.signing_key,
            "signature": self.sign(message),
        }

    def new_one_time_keys(self, count: int) -> list[dict[str, str]]:
        """Make ``count`` fresh one-time keys, signed, and mark them published."""
        self._account.generate_one_time_keys(count)
        keys = self._signed(self._account.one_time_keys, fallback=False)
        self._account.mark_keys_as_published()
        return keys

    def new_fallback_key(self) -> dict[str, str]:
        # vodozemac 0.10's type stubs omit the fallback-key API that the module provides.
        self._account.generate_fallback_key()  # type: ignore[attr-defined]
        (key,) = self._signed(self._account.fallback_key, fallback=True)  # type: ignore[attr-defined]
        self._account.mark_keys_as_published()
        return key

    def _signed(self, keys: dict[str, Any], *, fallback: bool) -> list[dict[str, str]]:
        if not self.device_id:
            # Signed for "device 0" the server would refuse them, and they would be wasted.
            raise ValueError("call device_keys_upload (or set device_id) before making keys")
        out = []
        for key_id, public in keys.items():
            key = public.to_base64()
            message = one_time_key_message(self.device_id, key_id, key, fallback=fallback)
            out.append({"key_id": key_id, "key": key, "signature": self.sign(message)})
        return out


class OlmError(ValueError):
    """A secret message failed to decrypt: tampered, replayed, reordered past what Olm
    tolerates, or not meant for this device. Never a wrong plaintext."""


class OlmSessions:
    """This device's Olm sessions, by the peer device's identity key.

    A peer may hold several sessions with us: when both devices start one at the same time,
    each side ends up with its own outbound session and the other's inbound one. Every known
    session is tried when decrypting, and a device always sends over the session it last
    received on (or created), so both sides converge on one. At most ``MAX_PER_PEER`` are
    kept, least recently used dropped first.
    """

    MAX_PER_PEER = 4

    def __init__(self, crypto: DeviceCrypto) -> None:
        self._crypto = crypto
        self._sessions: dict[str, list[vodozemac.Session]] = {}  # most recently used first

    def has_session(self, peer_identity_key: str) -> bool:
        return bool(self._sessions.get(peer_identity_key))

    def pickle(self, key: bytes) -> dict[str, list[str]]:
        return {
            peer: [str(session.pickle(key)) for session in sessions]
            for peer, sessions in self._sessions.items()
        }

    @classmethod
    def from_pickle(
        cls, crypto: DeviceCrypto, pickled: dict[str, list[str]], key: bytes
    ) -> OlmSessions:
        restored = cls(crypto)
        for peer, sessions in pickled.items():
            restored._sessions[peer] = [vodozemac.Session.from_pickle(d, key) for d in sessions]
        return restored

    def _use(self, peer: str, session: vodozemac.Session) -> None:
        others = [s for s in self._sessions.get(peer, []) if s is not session]
        self._sessions[peer] = [session, *others][: self.MAX_PER_PEER]

    def encrypt(
        self, peer_identity_key: str, peer_one_time_key: str | None, plaintext: bytes
    ) -> dict[str, Any]:
        """Encrypt for one peer device; ``peer_one_time_key`` (a claimed key) is needed only
        when there is no session yet. Returns ``olm_type`` and base64 ``ciphertext``."""
        known = self._sessions.get(peer_identity_key)
        if known:
            session = known[0]
        else:
            if peer_one_time_key is None:
                raise ValueError("no Olm session with that device yet: claim one of its keys")
            session = self._crypto._account.create_outbound_session(
                vodozemac.Curve25519PublicKey.from_base64(peer_identity_key),
                vodozemac.Curve25519PublicKey.from_base64(peer_one_time_key),
            )
            self._use(peer_identity_key, session)
        olm_type, body = session.encrypt(plaintext).to_parts()
        return {"olm_type": olm_type, "ciphertext": base64.b64encode(body).decode()}

    def decrypt(self, sender_identity_key: str, olm_type: int, ciphertext: str) -> bytes:
        """Decrypt a message from the device with ``sender_identity_key``; raises OlmError."""
        try:
            message = vodozemac.AnyOlmMessage.from_parts(olm_type, base64.b64decode(ciphertext))
            pre_key = message.to_pre_key() if olm_type == 0 else None
            for session in list(self._sessions.get(sender_identity_key, [])):
                matches = pre_key is not None and session.session_matches(pre_key)
                if pre_key is not None and not matches:
                    continue
                try:
                    plaintext = bytes(session.decrypt(message))
                except vodozemac.OlmDecryptionException:
                    if matches:
                        # A pre-key message of a session we already have that no longer
                        # opens is a replay: never let it start a second session (on a
                        # fallback key it would, and push the real one aside).
                        raise OlmError("a replayed or altered message") from None
                    continue
                self._use(sender_identity_key, session)
                return plaintext
            if olm_type != 0:
                raise OlmError("no session with that device opens this message")
            if pre_key is None:
                raise OlmError("not a pre-key message")
            session, opened = self._crypto._account.create_inbound_session(
                vodozemac.Curve25519PublicKey.from_base64(sender_identity_key), pre_key
            )
        except OlmError:
            raise
        except Exception as exc:  # vodozemac raises several types; all mean "did not open"
            raise OlmError("the secret message did not decrypt") from exc
        self._use(sender_identity_key, session)
        return bytes(opened)


def signature_valid(signing_key: str, message: bytes, signature: str) -> bool:
    """Whether ``signature`` is ``signing_key``'s Ed25519 signature of ``message``; malformed
    keys or signatures are simply invalid."""
    try:
        public = vodozemac.Ed25519PublicKey.from_base64(signing_key)
        public.verify_signature(message, vodozemac.Ed25519Signature.from_base64(signature))
    except (
        vodozemac.KeyException,
        vodozemac.SignatureException,
        vodozemac.DecodeException,
        ValueError,
        TypeError,
    ):
        return False
    return True


def curve25519_valid(key: str) -> bool:
    try:
        vodozemac.Curve25519PublicKey.from_base64(key)
    except (vodozemac.KeyException, vodozemac.DecodeException, ValueError, TypeError):
        return False
    return True


__all__ = ["DeviceCrypto", "OlmError", "OlmSessions", "curve25519_valid", "signature_valid"]
