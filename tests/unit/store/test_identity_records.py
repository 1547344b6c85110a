"""Identity records on a real SQLite database: sealed to custodians, deduplicated, expired."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import insert, select

from samizdat.crypto import DcKey, Keyring
from samizdat.crypto.custody_keys import CustodianKeys
from samizdat.crypto.threshold import Envelope, EnvelopeError
from samizdat.store.database import Database
from samizdat.store.engine import open_engines, sqlite_url
from samizdat.store.identity import DAY, Custody, IdentityRecords
from samizdat.store.migrate import migrate
from samizdat.store.tables import ip_log, users
from tests.custody_state import open_with

CUSTODIANS = {cid: CustodianKeys.generate() for cid in ("c-xb", "c-xc", "c-xd")}


def held_by(*ids: str) -> dict[str, CustodianKeys]:
    return {cid: CUSTODIANS[cid] for cid in ids}


@pytest.fixture
async def records(tmp_path: Path) -> AsyncIterator[IdentityRecords]:
    engines = open_engines(sqlite_url(tmp_path / "dc.sqlite3"))
    await migrate(engines)
    db = Database(engines)
    ring = Keyring("xa")
    ring.install([DcKey.generate("k1")], "k1")
    custody = Custody(
        "xa", tuple(k.public.recipient(c) for c, k in CUSTODIANS.items()), threshold=2
    )
    yield IdentityRecords(db, ring, custody, ip_retention_seconds=30 * DAY)
    await db.close()


async def stored_ips(records: IdentityRecords) -> list[tuple[int, float, bytes]]:
    async with records.db.read() as conn:
        rows = await conn.execute(select(ip_log.c.user_id, ip_log.c.at, ip_log.c.envelope))
        return [(r.user_id, r.at, bytes(r.envelope)) for r in rows]


async def test_an_address_is_logged_once_a_day_per_device_and_only_k_custodians_can_read_it(
    records: IdentityRecords,
) -> None:
    now = 1_800_000_000.0
    records.note_ip(1, 10, "203.0.113.7", now)
    records.note_ip(1, 10, "203.0.113.7", now + 60)  # same device, address and day
    records.note_ip(1, 11, "203.0.113.7", now + 60)  # another device
    records.note_ip(1, 10, "198.51.100.2", now + 120)  # another address
    records.note_ip(1, 10, "203.0.113.7", now + DAY)  # the next day
    assert await records.flush() == 4
    stored = await stored_ips(records)
    assert len(stored) == 4
    opened = [orjson.loads(open_with(sealed, held_by("c-xb", "c-xd"))) for _, _, sealed in stored]
    assert {(r["ip"], r["device"]) for r in opened} == {
        ("203.0.113.7", 10),
        ("203.0.113.7", 11),
        ("198.51.100.2", 10),
    }
    for _, _, sealed in stored:
        assert b"203.0.113.7" not in sealed
        with pytest.raises(EnvelopeError):
            open_with(sealed, held_by("c-xc"))


async def test_addresses_older_than_the_retention_are_erased(records: IdentityRecords) -> None:
    now = 1_800_000_000.0
    records.note_ip(1, 10, "203.0.113.7", now - 31 * DAY)
    records.note_ip(2, 20, "203.0.113.8", now - 29 * DAY)
    await records.flush()
    assert await records.expire(now) == 1
    assert [user for user, _, _ in await stored_ips(records)] == [2]


async def test_a_phone_envelope_names_its_user_and_field(records: IdentityRecords) -> None:
    sealed = records.seal_phone(42, "+999661234567")
    envelope = Envelope.from_bytes(sealed)
    assert (envelope.purpose, envelope.owner) == ("identity", "dc:xa/user:42/phone")
    assert open_with(sealed, held_by("c-xb", "c-xc")) == b"+999661234567"


@pytest.mark.parametrize("batch", [1, 500])
async def test_legacy_numbers_are_sealed_to_custodians_and_hidden_ones_lose_their_copy(
    records: IdentityRecords, batch: int
) -> None:
    ring = records.keyring
    async with records.db.write() as conn:
        for user_id, visibility in ((1, "nobody"), (2, "everybody")):
            await conn.execute(
                insert(users).values(
                    id=user_id,
                    display_name="old",
                    phone_lookup=ring.phone_lookup(f"+99966100000{user_id}"),
                    phone_shown=ring.seal_phone(user_id, f"+99966100000{user_id}"),
                    phone_visibility=visibility,
                    created_at=0.0,
                )
            )
    assert await records.seal_legacy_phones(batch=batch) == 2
    assert await records.seal_legacy_phones(batch=batch) == 0
    async with records.db.read() as conn:
        rows = {r.id: r for r in await conn.execute(select(users))}
    assert rows[1].phone_shown is None
    assert ring.open_phone(2, rows[2].phone_shown) == "+999661000002"
    for user_id in (1, 2):
        sealed = bytes(rows[user_id].phone_envelope)
        assert open_with(sealed, held_by("c-xc", "c-xd")) == f"+99966100000{user_id}".encode()


async def test_a_device_hopping_addresses_is_logged_at_most_64_times_a_day(
    records: IdentityRecords,
) -> None:
    now = 1_800_000_000.0
    for n in range(100):
        records.note_ip(1, 10, f"2001:db8::{n:x}", now)
    records.note_ip(1, 11, "2001:db8::1", now)  # another device still gets its record
    assert await records.flush() == 65
