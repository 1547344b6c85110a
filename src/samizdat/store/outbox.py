"""Updates for members homed in another DC: queued with the change, then moved once.

A change to a chat is one transaction in the chat's DC. Members homed there get their
updates numbered in that transaction; for members homed elsewhere the same transaction
queues an outbox row. Moving a row is a transaction in the member's home DC that numbers it
and records ``(source DC, outbox id)`` as applied, followed by deleting the row at the
source. A crash between the two commits leaves the row queued; the next move finds it
applied and only deletes it: nothing is lost and nothing is numbered twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from samizdat.core.ids import UserId
from samizdat.core.updates import Delivery, UpdateRef
from samizdat.store import rows
from samizdat.store.batch import RemoteTargets, append_updates_sync, insert_many, queue_sync
from samizdat.store.database import Database
from samizdat.store.tables import outbox, outbox_applied, update_seqs


@dataclass(frozen=True, slots=True)
class Queued:
    id: int
    target_dc: str
    user_id: UserId
    ref: UpdateRef


async def queue(conn: AsyncConnection, remote: RemoteTargets) -> None:
    """Queue updates for members homed elsewhere, inside the caller's transaction."""
    if remote:
        await conn.run_sync(queue_sync, remote)


class Outbox:
    """One DC's side of cross-DC updates: what it queued, and what it applied from others."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def queued(self, target_dc: str, limit: int = 2000) -> list[Queued]:
        """The oldest rows bound for one DC (``ix_outbox_target``)."""
        async with self.db.read() as conn:
            result = await conn.execute(
                select(outbox)
                .where(outbox.c.target_dc == target_dc)
                .order_by(outbox.c.id)
                .limit(limit)
            )
            return [
                Queued(r["id"], r["target_dc"], UserId(r["user_id"]), rows.update_ref(r))
                for r in result.mappings()
            ]

    async def forget(self, ids: Sequence[int]) -> None:
        """Delete rows the target DC has applied."""
        async with self.db.write() as conn:
            await conn.execute(delete(outbox).where(outbox.c.id.in_(list(ids))))

    async def apply(self, source_dc: str, items: Sequence[Queued], now: float) -> list[Delivery]:
        """Number ``items`` from ``source_dc`` into this DC's update logs, each at most once."""

        def work(conn: Connection) -> list[Delivery]:
            ids = [i.id for i in items]
            done = set(
                conn.execute(
                    select(outbox_applied.c.outbox_id).where(
                        outbox_applied.c.source_dc == source_dc,
                        outbox_applied.c.outbox_id.in_(ids),
                    )
                ).scalars()
            )
            fresh = [i for i in items if i.id not in done]
            if not fresh:
                return []
            homed = set(
                conn.execute(
                    select(update_seqs.c.user_id).where(
                        update_seqs.c.user_id.in_(list({i.user_id for i in fresh}))
                    )
                ).scalars()
            )
            deliveries = append_updates_sync(
                conn, [(i.user_id, i.ref) for i in fresh if i.user_id in homed]
            )
            insert_many(
                conn,
                outbox_applied,
                [{"source_dc": source_dc, "outbox_id": i.id, "applied_at": now} for i in fresh],
            )
            return deliveries

        return await self.db.run_write(work)

    async def prune_applied(self, before: float) -> None:
        """Forget old applied marks: a queued row is deleted seconds after it is applied."""
        async with self.db.write() as conn:
            await conn.execute(delete(outbox_applied).where(outbox_applied.c.applied_at < before))


__all__ = ["Outbox", "Queued", "RemoteTargets", "queue"]
