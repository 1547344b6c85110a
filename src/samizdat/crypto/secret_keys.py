"""All of one device's secret-chat key material, behind one object.

The Olm account (identity), the Olm sessions with other devices, this device's outbound
Megolm sessions (one per secret group) and the inbound ones it was given. Callers pass
payloads in and get payloads out; group session keys travel inside Olm payloads but are
added and taken out here, so no key ever passes through client code. ``to_bytes`` is the
plaintext the vault seals: it never goes anywhere else.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson
import vodozemac

from samizdat.crypto.e2ee import DeviceCrypto, OlmError, OlmSessions
from samizdat.crypto.megolm import GroupPlaintext, InboundGroups, MegolmError, OutboundGroup

#: Payload keys this module owns: a caller's payload may not set them.
_KEY_FIELD = "session_key"
_SESSION_FIELD = "group_session_id"


@dataclass(frozen=True, slots=True)
class SharedGroupKey:
    """A group session key that arrived in an Olm payload, held until the caller has
    checked who sent it (``SecretKeys.accept``). Its repr shows only the session id."""

    session_id: str
    _key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class DevicePayload:
    """A decrypted Olm payload (without any key material), and the group key it carried."""

    payload: dict[str, Any]
    group_key: SharedGroupKey | None


class SecretKeys:
    def __init__(
        self,
        device: DeviceCrypto,
        olm: OlmSessions | None = None,
        inbound: InboundGroups | None = None,
    ) -> None:
        self.device = device
        self.olm = olm or OlmSessions(device)
        self.inbound = inbound or InboundGroups()
        self._outbound: dict[str, OutboundGroup] = {}

    @classmethod
    def create(cls, device_id: int = 0) -> SecretKeys:
        return cls(DeviceCrypto.create(device_id))

    @property
    def identity_key(self) -> str:
        return self.device.identity_key

    # --- Olm ---------------------------------------------------------------------------------
    def encrypt_to_device(
        self,
        peer_identity_key: str,
        peer_one_time_key: str | None,
        payload: dict[str, Any],
        *,
        group_key_of: str | None = None,
    ) -> dict[str, Any]:
        """Olm-encrypt ``payload`` (JSON) for one device; with ``group_key_of`` (a group id),
        the current key of this device's outbound session for that group goes along."""
        if _KEY_FIELD in payload or _SESSION_FIELD in payload:
            raise ValueError(f"{_KEY_FIELD!r} and {_SESSION_FIELD!r} are set by SecretKeys only")
        body = payload
        if group_key_of is not None:
            outbound = self._outbound[group_key_of]
            body = {
                **payload,
                _SESSION_FIELD: outbound.session_id,
                _KEY_FIELD: outbound.session_key(),
            }
        return self.olm.encrypt(peer_identity_key, peer_one_time_key, orjson.dumps(body))

    def decrypt_from_device(
        self, sender_identity_key: str, olm_type: int, ciphertext: str
    ) -> DevicePayload:
        """Open an Olm message into its JSON object; OlmError if it does not open or is not
        a JSON object."""
        plaintext = self.olm.decrypt(sender_identity_key, olm_type, ciphertext)
        try:
            payload = orjson.loads(plaintext)
        except orjson.JSONDecodeError as exc:
            raise OlmError("the secret message is not a Samizdat payload") from exc
        if not isinstance(payload, dict):
            raise OlmError("the secret message is not a Samizdat payload")
        key = payload.pop(_KEY_FIELD, None)
        session_id = payload.pop(_SESSION_FIELD, None)
        if key is None and session_id is None:
            return DevicePayload(payload, None)
        if not isinstance(key, str) or not isinstance(session_id, str):
            raise OlmError("a malformed group key")
        return DevicePayload(payload, SharedGroupKey(session_id, key))

    # --- Megolm ------------------------------------------------------------------------------
    def accept(self, shared: SharedGroupKey) -> None:
        """Take a shared group key into the inbound sessions (after checking its sender);
        MegolmError if it is malformed or not the key of the session it names."""
        self.inbound.add(shared.session_id, shared._key)

    def outbound(self, group_id: str) -> OutboundGroup | None:
        return self._outbound.get(group_id)

    def new_outbound(self, group_id: str, now: float) -> OutboundGroup:
        """A fresh sending session for the group (rotation); this device can read its own."""
        session = OutboundGroup.create(now)
        self._outbound[group_id] = session
        self.inbound.add(session.session_id, session.session_key())
        return session

    def drop_outbound(self, group_id: str) -> None:
        self._outbound.pop(group_id, None)

    def encrypt_group(self, group_id: str, payload: dict[str, Any]) -> str:
        return self._outbound[group_id].encrypt(orjson.dumps(payload))

    def decrypt_group(self, ciphertext: str) -> tuple[GroupPlaintext, dict[str, Any]]:
        """Open a group message into its JSON object; MegolmError if it does not open."""
        opened = self.inbound.decrypt(ciphertext)
        try:
            payload = orjson.loads(opened.plaintext)
        except orjson.JSONDecodeError as exc:
            raise MegolmError("the group message is not a Samizdat payload") from exc
        if not isinstance(payload, dict):
            raise MegolmError("the group message is not a Samizdat payload")
        return opened, payload

    # --- persistence (for samizdat.crypto.vault only) ----------------------------------------
    def to_bytes(self) -> bytes:
        pickle_key = secrets.token_bytes(32)
        return orjson.dumps(
            {
                "pickle_key": base64.b64encode(pickle_key).decode(),
                "device_id": self.device.device_id,
                "account": self.device.pickle(pickle_key),
                "olm": self.olm.pickle(pickle_key),
                "inbound": self.inbound.pickle(pickle_key),
                "outbound": {
                    group: {"pickle": s.pickle(pickle_key), "created_at": s.created_at}
                    for group, s in self._outbound.items()
                },
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SecretKeys:
        """Raises ValueError (or a vodozemac PickleException, also a ValueError) if damaged."""
        try:
            document = orjson.loads(data)
            pickle_key = base64.b64decode(document["pickle_key"])
            device = DeviceCrypto.from_pickle(
                document["account"], pickle_key, document["device_id"]
            )
            keys = cls(
                device,
                OlmSessions.from_pickle(device, document["olm"], pickle_key),
                InboundGroups.from_pickle(document["inbound"], pickle_key),
            )
            for group, stored in document["outbound"].items():
                keys._outbound[group] = OutboundGroup.from_pickle(
                    stored["pickle"], pickle_key, float(stored["created_at"])
                )
        except (
            KeyError,
            TypeError,
            AttributeError,
            orjson.JSONDecodeError,
            vodozemac.PickleException,
        ) as exc:
            raise ValueError("the stored secret-chat keys are damaged") from exc
        return keys


__all__ = ["DevicePayload", "SecretKeys", "SharedGroupKey"]
