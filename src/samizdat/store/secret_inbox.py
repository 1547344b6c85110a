"""The secret-message relay queue: Olm ciphertexts waiting for their device.

The server keeps a ciphertext only until its device acknowledges it, or until the retention
time passes; it never holds a key that could open one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, insert, select

from samizdat.core.ids import DeviceId, UserId
from samizdat.store.database import Database
from samizdat.store.tables import secret_inbox


@dataclass(frozen=True, slots=True)
class Envelope:
    id: int
    device_id: DeviceId
    sender_user_id: UserId
    sender_device_id: DeviceId
    olm_type: int
    ciphertext: bytes
    sent_at: float


class SecretInbox:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(self, envelopes: Sequence[Envelope]) -> None:
        async with self.db.write() as conn:
            await conn.execute(
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
        async with self.db.write() as conn:
            result = await conn.execute(
                delete(secret_inbox).where(
                    secret_inbox.c.device_id == device_id, secret_inbox.c.id.in_(list(ids))
                )
            )
            return int(result.rowcount)

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
