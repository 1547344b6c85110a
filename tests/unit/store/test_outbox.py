"""Moving updates between two DCs' databases: each queued row is numbered exactly once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from samizdat.core.ids import ChatId, MessageId, UserId
from samizdat.core.updates import UpdateKind, UpdateRef
from samizdat.store.database import Database
from samizdat.store.engine import open_engines, sqlite_url
from samizdat.store.migrate import migrate
from samizdat.store.outbox import Outbox, queue
from samizdat.store.tables import update_seqs, updates

HOMED = UserId(7)
REF = UpdateRef(UpdateKind.NEW_MESSAGE, ChatId(1), (MessageId(2),))


async def _outbox(path: Path) -> Outbox:
    engines = open_engines(sqlite_url(path))
    await migrate(engines)
    return Outbox(Database(engines))


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Outbox, Outbox]]:
    source, target = await _outbox(tmp_path / "a.sqlite3"), await _outbox(tmp_path / "b.sqlite3")
    async with target.db.write() as conn:
        await conn.execute(insert(update_seqs).values(user_id=HOMED, seq=0))
    yield source, target
    await source.db.close()
    await target.db.close()


async def numbered(target: Outbox) -> list[tuple[int, int]]:
    async with target.db.read() as conn:
        result = await conn.execute(select(updates.c.user_id, updates.c.seq))
        return [(r.user_id, r.seq) for r in result]


async def test_a_move_repeated_after_a_crash_numbers_nothing_twice(
    pair: tuple[Outbox, Outbox],
) -> None:
    source, target = pair
    async with source.db.write() as conn:
        await queue(conn, [("b", HOMED, REF), ("b", HOMED, REF)])
    queued = await source.queued("b")
    assert [q.user_id for q in queued] == [HOMED, HOMED]
    first = await target.apply("a", queued, now=1.0)
    assert [d.seq for d in first] == [1, 2]
    # The source crashed before forgetting the rows: the next move finds them applied.
    assert await target.apply("a", await source.queued("b"), now=2.0) == []
    await source.forget([q.id for q in queued])
    assert await source.queued("b") == []
    assert await numbered(target) == [(HOMED, 1), (HOMED, 2)]


async def test_outbox_ids_are_never_reused_once_the_table_empties(
    pair: tuple[Outbox, Outbox],
) -> None:
    source, target = pair
    async with source.db.write() as conn:
        await queue(conn, [("b", HOMED, REF)])
    first = await source.queued("b")
    await target.apply("a", first, now=1.0)
    await source.forget([q.id for q in first])
    async with source.db.write() as conn:
        await queue(conn, [("b", HOMED, REF)])
    second = await source.queued("b")
    assert second[0].id > first[0].id  # else the applied mark would swallow the new row
    assert [d.seq for d in await target.apply("a", second, now=2.0)] == [2]


async def test_an_update_for_a_user_not_homed_in_the_target_is_dropped_not_crashing(
    pair: tuple[Outbox, Outbox],
) -> None:
    source, target = pair
    async with source.db.write() as conn:
        await queue(conn, [("b", UserId(99), REF), ("b", HOMED, REF)])
    moved = await target.apply("a", await source.queued("b"), now=1.0)
    assert [(d.user_id, d.seq) for d in moved] == [(HOMED, 1)]


async def test_rows_for_a_dc_that_cannot_take_them_do_not_hold_back_another_dcs(
    pair: tuple[Outbox, Outbox],
) -> None:
    source, _ = pair
    async with source.db.write() as conn:
        await queue(conn, [("down", HOMED, REF)] * 3 + [("b", HOMED, REF)])
    assert [q.target_dc for q in await source.queued("b")] == ["b"]
    assert len(await source.queued("down")) == 3
