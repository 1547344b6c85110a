"""The end-to-end key directory: devices' public keys, one-time keys and fallback keys.

Only public keys are stored (with the device's signatures over them); the server cannot read
any secret chat with what is here. Claiming a one-time key deletes it in the claiming
transaction and checks that the delete took the row, so no key is handed out twice, whether
the claims race on one node or on several.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from samizdat.core.ids import DeviceId, UserId
from samizdat.protocol.errors import Conflict, ErrorCode
from samizdat.store.database import Database, StoreConflict
from samizdat.store.tables import device_keys, devices, fallback_keys, one_time_keys

_CLAIM_RETRIES = 5


@dataclass(frozen=True, slots=True)
class DeviceKeys:
    user_id: UserId
    device_id: DeviceId
    identity_key: str
    signing_key: str
    signature: str


@dataclass(frozen=True, slots=True)
class SignedKey:
    key_id: str
    key: str
    signature: str


@dataclass(frozen=True, slots=True)
class ClaimedKey:
    device_id: DeviceId
    key: SignedKey
    fallback: bool


def published_keys(user_ids: Iterable[UserId]) -> Select[Any]:
    """The published keys of the users' devices that are still logged in."""
    return (
        select(device_keys)
        .join(devices, devices.c.id == device_keys.c.device_id)
        .where(device_keys.c.user_id.in_(list(set(user_ids))), devices.c.revoked_at.is_(None))
    )


def keys_invalid(message: str) -> Conflict:
    return Conflict(message, code=ErrorCode.KEYS_INVALID)


class KeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def device_keys(self, device_id: DeviceId) -> DeviceKeys | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(select(device_keys).where(device_keys.c.device_id == device_id))
            ).first()
        if row is None:
            return None
        return DeviceKeys(
            UserId(row.user_id),
            DeviceId(row.device_id),
            row.identity_key,
            row.signing_key,
            row.signature,
        )

    async def publish(
        self,
        published: DeviceKeys,
        one_time: Sequence[SignedKey],
        fallback: SignedKey | None,
        *,
        now: float,
        max_one_time_keys: int,
    ) -> tuple[int, bool]:
        """Store a device's (already verified) keys, all or nothing; returns the new counts.

        Raises KEYS_INVALID if the device already published other identity or signing keys,
        if a one-time key id is already held, or if the device would hold too many.
        """
        try:
            return await self._publish(published, one_time, fallback, now, max_one_time_keys)
        except StoreConflict as exc:  # another node stored the same key id (or device) first
            raise keys_invalid("a key with that id was published at the same moment") from exc

    async def _publish(
        self,
        published: DeviceKeys,
        one_time: Sequence[SignedKey],
        fallback: SignedKey | None,
        now: float,
        max_one_time_keys: int,
    ) -> tuple[int, bool]:
        device_id = published.device_id
        async with self.db.write() as conn:
            known = (
                await conn.execute(select(device_keys).where(device_keys.c.device_id == device_id))
            ).first()
            if known is None:
                await conn.execute(
                    insert(device_keys).values(
                        device_id=device_id,
                        user_id=published.user_id,
                        identity_key=published.identity_key,
                        signing_key=published.signing_key,
                        signature=published.signature,
                        uploaded_at=now,
                    )
                )
            elif (known.identity_key, known.signing_key) != (
                published.identity_key,
                published.signing_key,
            ):
                raise keys_invalid("this device already published other keys; sign in anew")
            ids = [k.key_id for k in one_time]
            if len(set(ids)) != len(ids):
                raise keys_invalid("one-time key ids repeat within the upload")
            if ids:
                taken = await conn.execute(
                    select(one_time_keys.c.key_id).where(
                        one_time_keys.c.device_id == device_id, one_time_keys.c.key_id.in_(ids)
                    )
                )
                if taken.first() is not None:
                    raise keys_invalid("a one-time key with that id is already published")
                held = await self._count(conn, device_id)
                if held + len(ids) > max_one_time_keys:
                    raise keys_invalid(f"a device holds at most {max_one_time_keys} one-time keys")
                await conn.execute(
                    insert(one_time_keys),
                    [
                        {
                            "device_id": device_id,
                            "key_id": k.key_id,
                            "public_key": k.key,
                            "signature": k.signature,
                        }
                        for k in one_time
                    ],
                )
            if fallback is not None:
                await conn.execute(
                    delete(fallback_keys).where(fallback_keys.c.device_id == device_id)
                )
                await conn.execute(
                    insert(fallback_keys).values(
                        device_id=device_id,
                        key_id=fallback.key_id,
                        public_key=fallback.key,
                        signature=fallback.signature,
                        used=False,
                    )
                )
            return await self._count(conn, device_id), await self._has_fallback(conn, device_id)

    async def counts(self, device_id: DeviceId) -> tuple[int, bool]:
        async with self.db.read() as conn:
            return await self._count(conn, device_id), await self._has_fallback(conn, device_id)

    @staticmethod
    async def _count(conn: AsyncConnection, device_id: DeviceId) -> int:
        result = await conn.execute(
            select(func.count()).where(one_time_keys.c.device_id == device_id)
        )
        return int(result.scalar_one())

    @staticmethod
    async def _has_fallback(conn: AsyncConnection, device_id: DeviceId) -> bool:
        """Whether the device has a fallback key nobody has been given yet (time to rotate
        it once this turns false)."""
        result = await conn.execute(
            select(fallback_keys.c.device_id).where(
                fallback_keys.c.device_id == device_id, fallback_keys.c.used.is_(False)
            )
        )
        return result.first() is not None

    async def query(self, user_ids: Iterable[UserId]) -> list[DeviceKeys]:
        """Published keys of the users' devices that are still logged in."""
        async with self.db.read() as conn:
            result = await conn.execute(
                published_keys(user_ids).order_by(device_keys.c.user_id, device_keys.c.device_id)
            )
            return [
                DeviceKeys(
                    UserId(r.user_id),
                    DeviceId(r.device_id),
                    r.identity_key,
                    r.signing_key,
                    r.signature,
                )
                for r in result
            ]

    async def claim(self, device_ids: Iterable[DeviceId]) -> list[ClaimedKey]:
        """One key per device: a one-time key, consumed; else its fallback key, kept."""
        claimed: list[ClaimedKey] = []
        async with self.db.write() as conn:
            live = await conn.execute(
                select(device_keys.c.device_id)
                .join(devices, devices.c.id == device_keys.c.device_id)
                .where(
                    device_keys.c.device_id.in_(list(set(device_ids))),
                    devices.c.revoked_at.is_(None),
                )
                .order_by(device_keys.c.device_id)
            )
            for (device_id,) in live.all():
                found = None
                for _ in range(_CLAIM_RETRIES):
                    row = (
                        await conn.execute(
                            select(one_time_keys)
                            .where(one_time_keys.c.device_id == device_id)
                            .order_by(one_time_keys.c.key_id)
                            .limit(1)
                        )
                    ).first()
                    if row is None:
                        break
                    taken = await conn.execute(
                        delete(one_time_keys).where(
                            one_time_keys.c.device_id == device_id,
                            one_time_keys.c.key_id == row.key_id,
                        )
                    )
                    if taken.rowcount == 1:  # ours; on another node someone may have won
                        found = ClaimedKey(
                            DeviceId(device_id),
                            SignedKey(row.key_id, row.public_key, row.signature),
                            fallback=False,
                        )
                        break
                if found is None:
                    row = (
                        await conn.execute(
                            select(fallback_keys).where(fallback_keys.c.device_id == device_id)
                        )
                    ).first()
                    if row is not None:
                        await conn.execute(
                            update(fallback_keys)
                            .where(fallback_keys.c.device_id == device_id)
                            .values(used=True)
                        )
                        found = ClaimedKey(
                            DeviceId(device_id),
                            SignedKey(row.key_id, row.public_key, row.signature),
                            fallback=True,
                        )
                if found is not None:
                    claimed.append(found)
        return claimed


__all__ = ["ClaimedKey", "DeviceKeys", "KeyStore", "SignedKey", "keys_invalid", "published_keys"]
