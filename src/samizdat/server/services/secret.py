"""Relaying secret-chat ciphertexts between devices: the server queues, pushes, forgets.

Clients encrypt with Olm once per recipient device (see ``samizdat.crypto.e2ee``); the server
stores each ciphertext for its device only until that device acknowledges it (or the
retention time passes) and never holds a key to open it.
"""

from __future__ import annotations

import base64
import binascii

from samizdat.bus.events import DevicePush
from samizdat.core.ids import DeviceId
from samizdat.protocol.errors import ErrorCode, NotFound, ProtocolError
from samizdat.protocol.methods import AckSecretParams, PendingSecretParams, SendSecretParams
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


class SecretService:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def send(self, caller: Caller, p: SendSecretParams) -> wire.Json:
        store = self.deps.store
        wanted = {DeviceId(m.device_id) for m in p.messages}
        live = {d.id for d in await store.list_devices_by_id(list(wanted)) if not d.revoked}
        if wanted - live:
            raise NotFound(
                "no such device (or it was logged out): fetch the user's devices again",
                code=ErrorCode.DEVICE_NOT_FOUND,
            )
        now = self.deps.clock.now()
        envelopes = []
        for m in p.messages:
            try:
                ciphertext = base64.b64decode(m.ciphertext, validate=True)
            except (binascii.Error, ValueError):
                raise ProtocolError(
                    "ciphertext must be standard base64", code=ErrorCode.INVALID_PARAMS
                ) from None
            envelopes.append(
                Envelope(
                    self.deps.new_id(),
                    DeviceId(m.device_id),
                    caller.user_id,
                    caller.device_id,
                    m.olm_type,
                    ciphertext,
                    now,
                )
            )
        await store.secrets.put(envelopes)
        for e in envelopes:
            await self.deps.publish(DevicePush(wire.dumps(envelope_json(e)), (e.device_id,)))
        return {"ids": [e.id for e in envelopes]}

    async def pending(self, caller: Caller, p: PendingSecretParams) -> wire.Json:
        found = await self.deps.store.secrets.pending(caller.device_id, p.limit)
        return {"messages": [envelope_json(e) for e in found]}

    async def ack(self, caller: Caller, p: AckSecretParams) -> wire.Json:
        return {"deleted": await self.deps.store.secrets.ack(caller.device_id, p.ids)}


__all__ = ["SecretService", "envelope_json"]
