"""The transparency log's storage on real SQLite and PostgreSQL: appends take consecutive
indices and store a signed head per size; heads are read back as signed, never re-signed;
racing appends never share an index."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from samizdat.crypto.signing_keys import SigningKey
from samizdat.protocol.errors import InternalError, Unavailable
from samizdat.store.database import Database, StoreConflict
from samizdat.store.engine import open_engines, sqlite_url
from samizdat.store.migrate import migrate
from samizdat.store.tables import transparency_heads, transparency_leaves
from samizdat.store.transparency import TransparencyStore
from samizdat.transparency.heads import verify_head
from samizdat.transparency.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from tests.harness import IN_CI, create_pg_database, drop_pg_database, postgres_available

NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return SigningKey.create(tmp_path_factory.mktemp("log") / "log.key")


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "dc.sqlite3")
        return
    if not postgres_available():
        if IN_CI:
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is required when CI=true")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not running")
    name = create_pg_database()
    yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    drop_pg_database(name)


@pytest.fixture
async def store(url: str) -> AsyncIterator[TransparencyStore]:
    engines = open_engines(url)
    await migrate(engines)
    db = Database(engines)
    yield TransparencyStore(db)
    await db.close()


def leaves(n: int) -> list[bytes]:
    return [b'{"request":%d}' % i for i in range(n)]


async def test_an_empty_log_has_no_head_and_no_entries(store: TransparencyStore) -> None:
    assert await store.head() is None
    assert await store.head_at(0) is None
    assert await store.size() == 0
    assert await store.entries(0, 10) == []
    assert await store.leaf_hashes(10) == []


async def test_appends_take_consecutive_indices_and_sign_a_head_over_every_leaf(
    store: TransparencyStore, key: SigningKey
) -> None:
    written = leaves(5)
    for i, leaf in enumerate(written):
        index, head = await store.append(leaf, sign=key.sign, now=NOW + i)
        assert index == i
        assert head.tree_size == i + 1
        assert head.timestamp_ms == int((NOW + i) * 1000)
        assert head.root() == root_hash([leaf_hash(x) for x in written[: i + 1]])
        verify_head(head, key.public)
    assert await store.size() == 5
    assert await store.head() == head
    assert await store.entries(0, 5) == written
    assert await store.entries(1, 3) == written[1:3]
    assert await store.entries(4, 100) == written[4:]
    assert await store.leaf_hashes(3) == [leaf_hash(x) for x in written[:3]]


async def test_every_size_keeps_its_own_head_and_proofs_link_them(
    store: TransparencyStore, key: SigningKey
) -> None:
    for i, leaf in enumerate(leaves(7)):
        await store.append(leaf, sign=key.sign, now=NOW + i)
    hashes = await store.leaf_hashes(7)
    third, latest = await store.head_at(3), await store.head()
    assert third is not None
    assert latest is not None
    verify_head(third, key.public)
    verify_consistency(3, 7, third.root(), latest.root(), consistency_proof(3, hashes))
    for index in range(7):
        verify_inclusion(index, 7, hashes[index], inclusion_proof(index, hashes), latest.root())
    assert await store.head_at(8) is None


async def test_heads_are_read_back_as_signed_not_re_signed(
    store: TransparencyStore, key: SigningKey
) -> None:
    await store.append(b"one", sign=key.sign, now=NOW)
    async with store.db.write() as conn:
        await conn.execute(update(transparency_heads).values(root_hash=b"\x00" * 32))
    head = await store.head()
    assert head is not None
    assert head.root() == b"\x00" * 32
    with pytest.raises(ValueError, match="signature"):
        verify_head(head, key.public)


async def test_racing_appends_never_share_an_index(
    store: TransparencyStore, key: SigningKey
) -> None:
    written = leaves(20)
    placed = await asyncio.gather(*(store.append(leaf, sign=key.sign, now=NOW) for leaf in written))
    assert sorted(index for index, _ in placed) == list(range(20))
    stored = await store.entries(0, 20)
    assert sorted(stored) == sorted(written)
    head = await store.head()
    assert head is not None
    assert head.root() == root_hash([leaf_hash(x) for x in stored])


async def test_two_nodes_racing_on_one_database_never_give_out_the_same_index(
    url: str, store: TransparencyStore, key: SigningKey
) -> None:
    # A second Database is a second node: its own write lock, only the database in common,
    # so only the primary key stands between two appends computing the same next index.
    other = TransparencyStore(Database(open_engines(url)))
    try:
        attempts = [
            (node, b"node %d leaf %d" % (n, i))
            for i in range(15)
            for n, node in enumerate((store, other))
        ]
        outcomes = await asyncio.gather(
            *(node.append(leaf, sign=key.sign, now=NOW) for node, leaf in attempts),
            return_exceptions=True,
        )
    finally:
        await other.db.close()
    kept: dict[int, bytes] = {}
    for (_, leaf), outcome in zip(attempts, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            # The loser of a race is told to retry; its leaf is not stored.
            assert isinstance(outcome, StoreConflict | Unavailable), outcome
            continue
        index, _ = outcome
        assert index not in kept
        kept[index] = leaf
    assert sorted(kept) == list(range(len(kept)))
    assert await store.entries(0, 100) == [kept[i] for i in range(len(kept))]
    head = await store.head()
    assert head is not None
    assert head.tree_size == len(kept)
    assert head.root() == root_hash([leaf_hash(kept[i]) for i in range(len(kept))])


async def test_a_gap_in_the_stored_indices_stops_appends(
    store: TransparencyStore, key: SigningKey
) -> None:
    for leaf in leaves(3):
        await store.append(leaf, sign=key.sign, now=NOW)
    async with store.db.write() as conn:
        await conn.execute(transparency_leaves.delete().where(transparency_leaves.c.idx == 1))
    with pytest.raises(InternalError):
        await store.append(b"next", sign=key.sign, now=NOW)
    async with store.db.read() as conn:
        indices = (await conn.execute(select(transparency_leaves.c.idx))).scalars().all()
    assert sorted(indices) == [0, 2]
