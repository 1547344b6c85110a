"""The DC's key envelopes, and re-wrapping chat keys when the DC key rotates.

``dc_keys`` holds each DC key sealed in a threshold envelope; the newest live row is the
active key. A rotation adds a row, re-wraps every chat key in small transactions (so the
server keeps serving), then marks the old row retired. Each re-wrap is compare-and-set on
(key id, wrapped bytes), so a chat created or re-wrapped meanwhile is never clobbered.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, insert, select, update

from samizdat.crypto import Keyring
from samizdat.store.database import Database
from samizdat.store.tables import chats, dc_keys


@dataclass(frozen=True, slots=True)
class KeyRow:
    key_id: str
    envelope: bytes
    created_at: float


class DcKeyTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def live(self) -> list[KeyRow]:
        """Live (not retired) key envelopes, oldest first; the last is the active one."""
        async with self.db.read() as conn:
            result = await conn.execute(
                select(dc_keys.c.key_id, dc_keys.c.envelope, dc_keys.c.created_at)
                .where(dc_keys.c.retired_at.is_(None))
                .order_by(dc_keys.c.created_at, dc_keys.c.key_id)
            )
            return [KeyRow(r.key_id, bytes(r.envelope), float(r.created_at)) for r in result]

    async def count(self) -> int:
        async with self.db.read() as conn:
            return int((await conn.execute(select(func.count()).select_from(dc_keys))).scalar_one())

    async def insert(self, key_id: str, envelope: bytes, now: float) -> None:
        """Raises StoreConflict if another node inserted this key id first."""
        async with self.db.write() as conn:
            await conn.execute(
                insert(dc_keys).values(key_id=key_id, envelope=envelope, created_at=now)
            )

    async def retire(self, key_id: str, now: float) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                update(dc_keys).where(dc_keys.c.key_id == key_id).values(retired_at=now)
            )

    async def chat_count(self) -> int:
        async with self.db.read() as conn:
            return int((await conn.execute(select(func.count()).select_from(chats))).scalar_one())

    async def chats_not_under(self, key_id: str) -> int:
        async with self.db.read() as conn:
            result = await conn.execute(
                select(func.count()).select_from(chats).where(chats.c.key_id != key_id)
            )
            return int(result.scalar_one())

    async def rewrap_batch(self, keyring: Keyring, *, limit: int = 500) -> int:
        """Re-wrap up to ``limit`` chat keys not under the active key; returns how many."""
        active = keyring.key_id
        async with self.db.read() as conn:
            batch = (
                await conn.execute(
                    select(chats.c.id, chats.c.wrapped_key, chats.c.key_id)
                    .where(chats.c.key_id != active)
                    .limit(limit)
                )
            ).all()
        if not batch:
            return 0
        async with self.db.write() as conn:
            for chat_id, wrapped, key_id in batch:
                await conn.execute(
                    update(chats)
                    .where(
                        chats.c.id == chat_id,
                        chats.c.key_id == key_id,
                        chats.c.wrapped_key == wrapped,
                    )
                    .values(
                        wrapped_key=keyring.rewrap_chat_key(chat_id, bytes(wrapped), key_id),
                        key_id=active,
                    )
                )
        return len(batch)


__all__ = ["DcKeyTable", "KeyRow"]
