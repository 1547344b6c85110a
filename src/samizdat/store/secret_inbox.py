"""The secret-message relay queue: Olm ciphertexts waiting for their device.

The server keeps a ciphertext only until its device acknowledges it, or until the retention
time passes; it never holds a key that could open one. Delivering (the checks and the insert)
and acknowledging are each one synchronous transaction through ``Database.run_write``, the
path the cloud messages' group commit takes: on SQLite it runs on the event loop with no
thread hop per statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from samizdat.core.ids import DeviceId, UserId
from samizdat.protocol.errors import Conflict, ErrorCode, NotFound
from samizdat.store.database import Database
from samizdat.store.keys import published_keys
from samizdat.store.tables import device_keys, devices, secret_inbox


@dataclass(frozen=True, slots=True)
class Envelope:
    id: int
    device_id: DeviceId
    sender_user_id: UserId
    sender_device_id: DeviceId
    olm_type: int
    ciphertext: bytes
    sent_at: float


def live_devices_sync(conn: Connection, wanted: Iterable[DeviceId]) -> set[DeviceId]:
    return set(
        conn.execute(
            select(devices.c.id).where(
                devices.c.id.in_(list(wanted)), devices.c.revoked_at.is_(None)
            )
        ).scalars()
    )


def published_devices_sync(conn: Connection, recipients: Sequence[UserId]) -> set[DeviceId]:
    return set(
        conn.execute(
            published_keys(recipients).with_only_columns(device_keys.c.device_id)
        ).scalars()
    )


def check_addressed(
    wanted: set[DeviceId],
    live: set[DeviceId],
    published: set[DeviceId],
    sender_device: DeviceId,
) -> None:
    """Raise DEVICE_NOT_FOUND for an addressed device that is gone, DEVICE_LIST_CHANGED for a
    recipient's device with published keys that nothing addresses."""
    if wanted - live:
        raise NotFound(
            "no such device (or it was logged out): fetch the user's devices again",
            code=ErrorCode.DEVICE_NOT_FOUND,
        )
    missing = published - wanted - {sender_device}
    if missing:
        raise Conflict(
            "a recipient's devices have changed: query their keys again, "
            "encrypt for every device and send again",
            code=ErrorCode.DEVICE_LIST_CHANGED,
            debug_context={"missing_devices": len(missing)},
        )


class SecretInbox:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def deliver(
        self,
        envelopes: Sequence[Envelope],
        *,
        recipients: Sequence[UserId] = (),
        sender_device: DeviceId,
        verified: bool = False,
    ) -> None:
        """Queue the envelopes, all or nothing, in one transaction that first checks them
        (unless the caller has ``verified`` them against every DC, see ``check_addressed``).

        Raises DEVICE_NOT_FOUND if an addressed device does not exist or is logged out, and
        DEVICE_LIST_CHANGED if a ``recipients`` user has a device with published keys (other
        than ``sender_device``) that no envelope addresses.
        """

        def work(conn: Connection) -> None:
            if not verified:
                wanted = {e.device_id for e in envelopes}
                check_addressed(
                    wanted,
                    live_devices_sync(conn, wanted),
                    published_devices_sync(conn, recipients) if recipients else set(),
                    sender_device,
                )
            conn.execute(
                insert(secret_inbox),
                [
                    {
                        "id": e.id,
                        "device_id": e.device_id,
                        "sender_user_id": e.sender_user_id,
                        "sender_device_id": e.sender_device_id,
                        "olm_type": e.olm_type,
                        "ciphertext": e.ciphertext,
                        "created_at": e.sent_at,
                    }
                    for e in envelopes
                ],
            )

        await self.db.run_write(work)

    async def live_devices(self, wanted: Iterable[DeviceId]) -> set[DeviceId]:
        async with self.db.read() as conn:
            return await conn.run_sync(live_devices_sync, wanted)

    async def published_devices(self, recipients: Sequence[UserId]) -> set[DeviceId]:
        async with self.db.read() as conn:
            return await conn.run_sync(published_devices_sync, recipients)

    async def pending(self, device_id: DeviceId, limit: int) -> list[Envelope]:
        async with self.db.read() as conn:
            result = await conn.execute(
                select(secret_inbox)
                .where(secret_inbox.c.device_id == device_id)
                .order_by(secret_inbox.c.id)
                .limit(limit)
            )
            return [
                Envelope(
                    r.id,
                    DeviceId(r.device_id),
                    UserId(r.sender_user_id),
                    DeviceId(r.sender_device_id),
                    r.olm_type,
                    bytes(r.ciphertext),
                    r.created_at,
                )
                for r in result
            ]

    async def ack(self, device_id: DeviceId, ids: Sequence[int]) -> int:
        """Delete the device's own ciphertexts among ``ids``; others' are untouched."""

        def work(conn: Connection) -> int:
            result = conn.execute(
                delete(secret_inbox).where(
                    secret_inbox.c.device_id == device_id, secret_inbox.c.id.in_(list(ids))
                )
            )
            return int(result.rowcount)

        return await self.db.run_write(work)

    async def expire(self, before: float) -> int:
        async with self.db.write() as conn:
            result = await conn.execute(
                delete(secret_inbox).where(secret_inbox.c.created_at < before)
            )
            return int(result.rowcount)

    async def drop_for_devices(self, device_ids: Sequence[DeviceId]) -> None:
        """A revoked device will never fetch its queue: its ciphertexts go at once."""
        async with self.db.write() as conn:
            await conn.execute(
                delete(secret_inbox).where(secret_inbox.c.device_id.in_(list(device_ids)))
            )


__all__ = ["Envelope", "SecretInbox"]
