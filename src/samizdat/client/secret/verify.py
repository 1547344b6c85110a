"""Running a verification with a peer over the secret chat, and safety numbers.

``verify`` answers a waiting request from the peer, or sends one to every device of the
peer and goes on with the first that accepts. When both people start at once, the device
with the smaller (user, device) pair stays the initiator and the other accepts its
request, so the two runs merge into one.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from samizdat.client.secret.engine import SecretChats
from samizdat.client.secret.outbox import Outgoing, plan
from samizdat.client.secret.payloads import SasAccept, SasBody, SasCancel, SasStart
from samizdat.client.secret.state import KnownDevice
from samizdat.client.secret.verification import Me, Step, Verification, VerificationFailed
from samizdat.crypto.verification import SasCodes, safety_number
from samizdat.protocol.errors import ErrorCode, NotFound

#: A peer's request older than this is not answered (the person has long stopped waiting).
REQUEST_FRESH_FOR = 600.0

ShowCodes = Callable[[SasCodes, KnownDevice], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Fingerprint:
    device: KnownDevice
    safety_number: str


async def peer_user(secret: SecretChats, peer: str | int) -> int:
    """The user to verify: ``@username``, ``+phone`` or a user id (your own too: your other
    devices), or the user of a 1:1 secret chat."""
    if isinstance(peer, int) or peer.isdigit() or peer.startswith(("@", "+")):
        return await secret.client.user_id_of(peer)
    chat = await secret.resolve(peer)
    if chat.peer is None:
        raise NotFound("verification is with a user, not a group", code=ErrorCode.CHAT_NOT_FOUND)
    return chat.peer


async def fingerprints(secret: SecretChats, peer: str | int) -> list[Fingerprint]:
    """The safety number of this device with each of the peer's devices (fresh list)."""
    user = await peer_user(secret, peer)
    async with secret._lock:
        devices, changes = await secret.directory.devices_of([user], refresh=True)
        secret._note_changes(changes)
    await secret.flush()
    mine = secret.keys.identity_key
    return [
        Fingerprint(d, safety_number(secret.user_id, mine, d.user_id, d.identity_key))
        for d in devices
        if d.user_id == user
    ]


async def _send_to(secret: SecretChats, device: KnownDevice, body: SasBody) -> None:
    async with secret._lock:
        otks = await secret.directory.one_time_keys([device])
        outgoing = Outgoing(recipients=[], olm=[(device, secret._seal(device, otks, body, None))])
        await secret._save()  # write-ahead, as every send
        for params in plan(outgoing):
            await secret.client.send_secret(**params)


async def verify(
    secret: SecretChats, peer: str | int, show: ShowCodes, *, patience: float = 300.0
) -> KnownDevice:
    """Compare emoji with one of the peer's devices; ``show`` displays the codes and says
    whether the person confirmed they match. Returns the device, now verified; raises
    VerificationFailed (mismatch, cancel, bad MAC) or TimeoutError after ``patience``
    seconds."""
    user = await peer_user(secret, peer)
    me = _me(secret)
    inbox: asyncio.Queue[tuple[Any, KnownDevice]] = asyncio.Queue()
    secret._sas_watch[user] = inbox
    try:
        async with asyncio.timeout(patience):
            await secret.sync()
            run = await _begin(secret, user, me, inbox)
            return await _drive(secret, run, inbox, show)
    finally:
        secret._sas_watch.pop(user, None)


def _me(secret: SecretChats) -> Me:
    return Me(
        secret.user_id, secret.device_id, secret.keys.identity_key, secret.keys.device.signing_key
    )


@dataclass(slots=True)
class _Run:
    txn: str
    verification: Verification | None  # None while the initiator waits for an accept


async def _begin(
    secret: SecretChats, user: int, me: Me, inbox: asyncio.Queue[tuple[Any, KnownDevice]]
) -> _Run:
    now = secret.clock()
    waiting = sorted(
        (
            (req.at, txn, req)
            for txn, req in secret.state.verification_requests.items()
            if req.user_id == user and now - req.at < REQUEST_FRESH_FOR
        ),
        reverse=True,
    )
    for _, txn, request in waiting:
        device = secret.state.devices.get(user, {}).get(request.device_id)
        secret.state.verification_requests.pop(txn, None)
        if device is not None and not device.gone:
            return await _accept(secret, me, device, SasStart(txn=txn))
    txn = secrets.token_hex(16)
    async with secret._lock:
        devices, changes = await secret.directory.devices_of([user], refresh=True)
        secret._note_changes(changes)
    peers = [d for d in devices if d.user_id == user]
    if not peers:
        raise NotFound("that user has no device to verify", code=ErrorCode.DEVICE_NOT_FOUND)
    for device in peers:
        await _send_to(secret, device, SasStart(txn=txn))
    return _Run(txn, None)


async def _accept(secret: SecretChats, me: Me, device: KnownDevice, start: SasStart) -> _Run:
    verification = Verification(me, device, start, initiator=False)
    await _send_to(secret, device, verification.accept())
    return _Run(start.txn, verification)


async def _drive(
    secret: SecretChats,
    run: _Run,
    inbox: asyncio.Queue[tuple[Any, KnownDevice]],
    show: ShowCodes,
) -> KnownDevice:
    me = _me(secret)
    asked = False
    while True:
        body, sender = await inbox.get()
        v = run.verification
        if isinstance(body, SasStart):
            # The peer started too: the smaller (user, device) stays the initiator.
            if v is None and (sender.user_id, sender.device_id) < (me.user_id, me.device_id):
                run = await _accept(secret, me, sender, body)
            continue
        if body.txn != run.txn:
            continue
        if v is None:
            if isinstance(body, SasCancel):
                raise VerificationFailed(f"the other side cancelled: {body.reason}")
            if not isinstance(body, SasAccept):
                continue
            v = Verification(me, sender, SasStart(txn=run.txn), initiator=True)
            run.verification = v
        elif sender.device_id != v.peer.device_id or sender.user_id != v.peer.user_id:
            continue  # another of the peer's devices; this run is with one
        try:
            reply = v.receive(body)
        except VerificationFailed as exc:
            if not isinstance(body, SasCancel):
                await _send_to(secret, v.peer, SasCancel(txn=run.txn, reason=str(exc)[:200]))
            raise
        if reply is not None:
            await _send_to(secret, v.peer, reply)
        if v.step is Step.SHOWING and not asked:
            asked = True
            if not await show(v.codes(), v.peer):
                await _send_to(secret, v.peer, v.reject())
                raise VerificationFailed(
                    "you said the emoji do not match: do not trust this device"
                )
            confirmation = v.confirm()  # checks their MAC too if it came first
            await _send_to(secret, v.peer, confirmation)
        if v.verified:
            async with secret._lock:
                secret.state.mark_verified(v.peer)
                secret._dirty = True
            await secret.flush()
            return v.peer


__all__ = ["REQUEST_FRESH_FOR", "Fingerprint", "fingerprints", "peer_user", "verify"]
