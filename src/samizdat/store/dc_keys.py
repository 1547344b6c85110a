"""The DC's key envelopes, and re-wrapping chat keys when the DC key rotates.

``dc_keys`` holds each DC key sealed in a threshold envelope; the highest key number is the
active key. A rotation adds a row, re-wraps every chat key in small transactions (so the
server keeps serving), then deletes the old row once no chat refers to it. Each re-wrap is
compare-and-set on (key id, wrapped bytes), so a chat created or re-wrapped meanwhile is never
clobbered.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, delete, func, insert, select, update

from samizdat.crypto import Keyring
from samizdat.store.database import Database
from samizdat.store.tables import chats, dc_keys


def key_number(key_id: str) -> int:
    """Order of a key id: ``file:1`` (imported pre-custody key) 0, ``kN`` N, anything else -1.

    Keys are ordered by this number, never by wall-clock times (nodes' clocks differ)."""
    if key_id == "file:1":
        return 0
    if key_id.startswith("k") and key_id[1:].isdigit():
        return int(key_id[1:])
    return -1


@dataclass(frozen=True, slots=True)
class KeyRow:
    key_id: str
    envelope: bytes


_LIVE = dc_keys.c.retired_at.is_(None)
_REWRAP = (
    update(chats)
    .where(
        chats.c.id == bindparam("chat"),
        chats.c.key_id == bindparam("old_key"),
        chats.c.wrapped_key == bindparam("old_wrapped"),
    )
    .values(wrapped_key=bindparam("new_wrapped"), key_id=bindparam("new_key"))
)


class DcKeyTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def live(self) -> list[KeyRow]:
        """Live key envelopes, oldest first; the last is the active one."""
        async with self.db.read() as conn:
            result = await conn.execute(select(dc_keys.c.key_id, dc_keys.c.envelope).where(_LIVE))
            found = [KeyRow(r.key_id, bytes(r.envelope)) for r in result]
        return sorted(found, key=lambda row: key_number(row.key_id))

    async def live_ids(self) -> list[str]:
        """The ids of ``live()``, in its order, without fetching the envelopes."""
        async with self.db.read() as conn:
            found = list((await conn.execute(select(dc_keys.c.key_id).where(_LIVE))).scalars())
        return sorted(found, key=key_number)

    async def insert(self, key_id: str, envelope: bytes, now: float) -> None:
        """Raises StoreConflict if another node inserted this key id first."""
        async with self.db.write() as conn:
            await conn.execute(
                insert(dc_keys).values(key_id=key_id, envelope=envelope, created_at=now)
            )

    async def forget(self, key_id: str) -> bool:
        """Delete a replaced key's envelope, in one statement, only if no chat refers to it;
        True if it is gone. (A kept envelope would stay openable by its old custodians.)"""
        in_use = select(chats.c.id).where(chats.c.key_id == key_id).exists()
        async with self.db.write() as conn:
            result = await conn.execute(delete(dc_keys).where(dc_keys.c.key_id == key_id, ~in_use))
        return bool(result.rowcount)

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
        values = [
            {
                "chat": chat_id,
                "old_key": key_id,
                "old_wrapped": wrapped,
                "new_wrapped": keyring.rewrap_chat_key(chat_id, bytes(wrapped), key_id),
                "new_key": active,
            }
            for chat_id, wrapped, key_id in batch
        ]
        async with self.db.write() as conn:
            await conn.execute(_REWRAP, values)
        return len(batch)


__all__ = ["DcKeyTable", "KeyRow", "key_number"]
