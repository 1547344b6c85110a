"""Relaying secret-chat ciphertexts between devices: the server queues, pushes, forgets.

Clients encrypt with Olm once per recipient device, or with Megolm once for a whole group
(see ``samizdat.crypto.e2ee``); the server stores each ciphertext for its device only until
that device acknowledges it (or the retention time passes) and never holds a key to open it.
"""

from __future__ import annotations

import base64
import binascii

from samizdat.bus.events import DevicePush
from samizdat.core.ids import DeviceId, UserId
from samizdat.protocol.errors import ErrorCode, ProtocolError
from samizdat.protocol.methods import AckSecretParams, PendingSecretParams, SendSecretParams
from samizdat.protocol.models import OLM_TYPE_MEGOLM
from samizdat.server import wire
from samizdat.server.deps import Caller, Deps
from samizdat.store.secret_inbox import Envelope


def envelope_json(e: Envelope) -> wire.Json:
    return {
        "type": "secret_message",
        "id": e.id,
        "sender_user_id": e.sender_user_id,
        "sender_device_id": e.sender_device_id,
        "olm_type": e.olm_type,
        "ciphertext": base64.b64encode(e.ciphertext).decode(),
        "sent_at": e.sent_at,
    }


def _decode(ciphertext: str) -> bytes:
    try:
        return base64.b64decode(ciphertext, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(
            "ciphertext must be standard, padded base64", code=ErrorCode.INVALID_PARAMS
        ) from None


class SecretService:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def send(self, caller: Caller, p: SendSecretParams) -> wire.Json:
        """Queue and push every ciphertext, all or nothing.

        Raises INVALID_PARAMS for a ciphertext that is not base64, DEVICE_NOT_FOUND if an
        addressed device does not exist or is logged out, and DEVICE_LIST_CHANGED if a
        ``recipients`` user has a device with published keys (other than the caller's) that
        the request does not address: the sender's view of their devices is stale.
        """
        store = await self.deps.dcs.user_store(caller.user_id)
        # (device, olm_type, body) in request order; a group's rows share one body.
        rows = [(DeviceId(m.device_id), m.olm_type, _decode(m.ciphertext)) for m in p.messages]
        if p.group is not None:
            body = _decode(p.group.ciphertext)
            rows += [(DeviceId(d), OLM_TYPE_MEGOLM, body) for d in p.group.device_ids]
        now = self.deps.clock.now()
        envelopes = [
            Envelope(
                self.deps.new_id(), device, caller.user_id, caller.device_id, olm_type, body, now
            )
            for device, olm_type, body in rows
        ]
        await self.deps.dcs.deliver_secrets(
            store, envelopes, [UserId(u) for u in p.recipients], caller.device_id
        )
        for e in envelopes:
            await self.deps.publish(DevicePush(wire.dumps(envelope_json(e)), (e.device_id,)))
        return {"ids": [e.id for e in envelopes]}

    async def pending(self, caller: Caller, p: PendingSecretParams) -> wire.Json:
        found = await self.deps.dcs.pending_secrets(caller.device_id, p.limit)
        return {"messages": [envelope_json(e) for e in found]}

    async def ack(self, caller: Caller, p: AckSecretParams) -> wire.Json:
        return {"deleted": await self.deps.dcs.ack_secrets(caller.device_id, p.ids)}


__all__ = ["SecretService", "envelope_json"]
