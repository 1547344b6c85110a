"""Several DCs served by one node: users homed by number, chats in their creator's DC.

Three DCs in three jurisdictions, each kept by the custodians of the other two (threshold 2),
each with its own database. On SQLite this is the embedded default, with no configuration
at all (``dc-xa.sqlite3``, ...); on PostgreSQL the same topology written out, with three
PostgreSQL databases. Test numbers carry no country; ``+999662…`` are homed in ``xb`` and
``+999663…`` in ``xc`` by prefix, everyone else in the default ``xa``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from samizdat.client import Client
from samizdat.protocol.errors import ErrorCode, SamizdatError
from samizdat.protocol.models import ChatUpdatedUpdate, Message, NewMessageUpdate, Wire
from tests.conftest import BACKENDS, _require_backend
from tests.custodians import server_status
from tests.harness import (
    TEST_LIMITS,
    ServerProcess,
    create_pg_database,
    dc_states,
    drop_pg_database,
    signed_in,
    sql,
    wait_until,
)
from tests.inbox import Inbox, private_chat, uid
from tests.raw_socket import token_of
from tests.secret_devices import another_device_of, open_device

#: Seconds for a few rounds of the background relay (it runs every second).
RELAY_ROUNDS = 3.0
DCS = {"xa": ("XA", 1), "xb": ("XB", 2), "xc": ("XC", 3)}  # id: (jurisdiction, digit)


def topology(databases: dict[str, str], *, prefixes: bool = True) -> str:
    """The embedded default written out, with a database of its own for each DC."""
    lines = []
    for place in ("XA", "XB", "XC"):
        lines += [
            "[[custodians]]",
            f'id = "custodian-{place.lower()}"',
            f'jurisdiction = "{place}"',
        ]
    for dc, (place, _) in DCS.items():
        others = [f'"custodian-{p.lower()}"' for p, _ in DCS.values() if p != place]
        lines += ["[[dcs]]", f'id = "{dc}"', f'jurisdiction = "{place}"']
        lines += [f"custodians = [{', '.join(others)}]", "threshold = 2"]
        lines.append(f'database_url = "{databases[dc]}"')
    lines += ["[homing]", 'default_dc = "xa"']
    if prefixes:
        lines += ["[homing.prefixes]", '"+999662" = "xb"', '"+999663" = "xc"']
    return "\n".join(lines) + "\n"


class MultiDc:
    def __init__(self, root: Path, backend: str) -> None:
        self.backend = backend
        self.pg: dict[str, str] = {}
        self.server = ServerProcess(root, backend="sqlite")
        if backend == "postgres":
            self.pg = {dc: create_pg_database() for dc in DCS}
            self.server.extra_config += "\n" + topology(self.databases)

    @property
    def databases(self) -> dict[str, str]:
        return {
            dc: f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
            for dc, name in self.pg.items()
        }

    def drop_homing_prefixes(self) -> None:
        """Change the homing rules (for the next start): everyone to ``xa``."""
        if self.backend == "postgres":
            self.server.extra_config = TEST_LIMITS + topology(self.databases, prefixes=False)
        else:
            self.server.extra_config = TEST_LIMITS + '[homing]\ndefault_dc = "xa"\n'

    async def rows(self, dc: str, statement: str, *args: Any) -> list[Any]:
        """SQL on one DC's own database, behind the server's back."""
        if self.backend == "postgres":
            return await sql(self.server, statement, *args, pg_database=self.pg[dc])
        path = self.server.data_dir / f"dc-{dc}.sqlite3"
        return await sql(self.server, statement, *args, sqlite_path=path)

    def cleanup(self) -> None:
        self.server.cleanup()
        for name in self.pg.values():
            drop_pg_database(name)


@pytest.fixture(params=BACKENDS)
def dcs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MultiDc]:
    _require_backend(request.param)
    made = MultiDc(tmp_path / "node", request.param)
    made.server.start()
    yield made
    made.cleanup()


async def homed_in(url: str, dc: str, name: str) -> Client:
    return await signed_in(url, name, digit=DCS[dc][1])


@contextlib.asynccontextmanager
async def back_online(url: str, session: Any) -> AsyncIterator[tuple[Client, list[Wire]]]:
    """A device that was away, reconnected: the client and what its catch-up delivered."""
    client = Client(url, session=session)
    inbox = Inbox(client)
    await client.connect()  # catches up before it returns
    try:
        yield client, inbox.taken_now()
    finally:
        await client.close()


#: Where an account's own records are: each must be in its home DC's database only.
ACCOUNT_TABLES = {
    "users": "id",
    "devices": "user_id",
    "update_seqs": "user_id",
    "ip_log": "user_id",
    "device_keys": "user_id",
}


async def user_dcs(dcs: MultiDc, user_id: int, table: str = "users") -> list[str]:
    """The DCs whose database has a row of ``table`` for this account."""
    column = ACCOUNT_TABLES[table]
    query = f"SELECT {column} FROM {table} WHERE {column} = $1"
    return [dc for dc in DCS if await dcs.rows(dc, query, user_id)]


async def wait_for_ip_records(dcs: MultiDc, user_id: int) -> None:
    """The IP log is written once a second: wait until the account's first row is there."""

    async def written() -> bool:
        return bool(await user_dcs(dcs, user_id, "ip_log"))

    await wait_until(written, what="the account's first IP record")


async def test_users_are_homed_by_number_and_a_group_lives_in_its_creators_dc(
    dcs: MultiDc,
) -> None:
    url = dcs.server.url
    alice = await homed_in(url, "xa", "Alice")
    bob = await homed_in(url, "xb", "Bob")
    carol = await homed_in(url, "xc", "Carol")
    try:
        for client, dc in ((alice, "xa"), (bob, "xb"), (carol, "xc")):
            await wait_for_ip_records(dcs, uid(client))
            for table in ("users", "devices", "update_seqs", "ip_log"):
                assert await user_dcs(dcs, uid(client), table) == [dc], table
        bob_inbox, carol_inbox = Inbox(bob), Inbox(carol)

        group = await bob.create_group("three places", [uid(alice), uid(carol)])
        sent = await alice.call(
            "messages.send", chat_id=group.id, text="from xa into xb's chat", random_id=7
        )
        # Alice's own number for her message comes back, from her own DC's log.
        logged = await dcs.rows(
            "xa", "SELECT seq, kind FROM updates WHERE user_id = $1", uid(alice)
        )
        assert (sent["seq"], "new_message") in [tuple(r) for r in logged]
        sent = Message.model_validate(sent["message"])
        for inbox in (bob_inbox, carol_inbox):
            received = await inbox.next_of(NewMessageUpdate)
            assert received.message.text == "from xa into xb's chat"

        # The chat and its message are in xb's database only.
        for dc in DCS:
            chats = await dcs.rows(dc, "SELECT id FROM chats WHERE id = $1", group.id)
            found = await dcs.rows(dc, "SELECT id FROM messages WHERE id = $1", sent.id)
            assert (len(chats), len(found)) == ((1, 1) if dc == "xb" else (0, 0)), dc
        # Each member's updates are in their own DC's update log, and nothing is left queued.
        for client, dc in ((alice, "xa"), (bob, "xb"), (carol, "xc")):
            logged = await dcs.rows(dc, "SELECT seq FROM updates WHERE user_id = $1", uid(client))
            assert len(logged) == 2, dc  # joined the group; the message
        for dc in DCS:
            assert await dcs.rows(dc, "SELECT id FROM outbox") == [], dc
        assert [m.text for m in await carol.history(group.id)] == ["from xa into xb's chat"]
        assert group.id in [d.chat.id for d in await alice.dialogs()]
    finally:
        for client in (alice, bob, carol):
            await client.close()


async def test_private_chats_across_dcs_work_both_ways_and_sync_after_a_crash(
    dcs: MultiDc,
) -> None:
    url = dcs.server.url
    alice = await homed_in(url, "xa", "Alice")
    carol = await homed_in(url, "xc", "Carol")
    saved = carol.session
    try:
        opened = await asyncio.gather(private_chat(carol, alice), private_chat(alice, carol))
        assert opened[0] == opened[1]  # one chat, whoever opens it, even at the same moment
        chat_id = opened[0]
        lower = "xa" if uid(alice) < uid(carol) else "xc"
        for dc in DCS:
            held = await dcs.rows(dc, "SELECT id FROM chats WHERE id = $1", chat_id)
            assert len(held) == (1 if dc == lower else 0), dc
        await carol.close()
        first = await alice.send_message(chat_id, "hello from xa")
        reply = await alice.send_message(chat_id, "second")
        await alice.edit_message(chat_id, reply.id, "second, edited")
    finally:
        await alice.close()
    dcs.server.kill9()
    dcs.server.start()
    # The catch-up reads xc's log and the messages from the chat's DC.
    async with back_online(url, saved) as (resumed, taken):
        got = [u for u in taken if isinstance(u, NewMessageUpdate)]
        assert [(u.message.id, u.message.text) for u in got] == [
            (first.id, "hello from xa"),
            (reply.id, "second, edited"),
        ]
        back = await resumed.send_message(chat_id, "hello from xc")
        assert back.text == "hello from xc"


async def test_a_sealed_dc_refuses_its_users_while_the_others_serve_then_unseals_itself(
    dcs: MultiDc,
) -> None:
    url = dcs.server.url
    alice = await homed_in(url, "xa", "Alice")
    bob = await homed_in(url, "xb", "Bob")
    chat_id = await private_chat(alice, bob)
    alice_saved, bob_saved = alice.session, bob.session
    bob_token = token_of(bob)
    await alice.close()
    # While Alice is away, Bob writes in a group of his DC: after xb is sealed, her catch-up
    # must stop before it (not report it gone), and deliver it once xb is back.
    group = await bob.create_group("in xb", [uid(alice)])
    from_b = await bob.send_message(group.id, "written in xb")
    await bob.close()

    # Custodian XA holds a share of xb and xc (2 of 2): without it those two stay sealed.
    dcs.server.stop()
    custodians = dcs.server.data_dir / "custodians"
    shutil.move(custodians / "custodian-xa", dcs.server.data_dir / "custodian-xa.away")
    dcs.server.start(wait_unsealed=False)  # xa serves; xb and xc stay sealed
    await wait_until(lambda: dc_states(url)["xa"] == "unsealed", what="xa unsealed")
    async with httpx.AsyncClient(base_url=url) as http:
        health = await http.get("/health")
    states = dc_states(url)
    assert (states["xa"], states["xb"] != "unsealed", states["xc"] != "unsealed") == (
        "unsealed",
        True,
        True,
    )
    assert health.status_code == 200
    assert set(health.json()["sealed"]) == {"xb", "xc"}
    status = server_status(url)  # what the operator sees: exit 2, and why
    assert status.code == 2, status.err
    reachable = {
        dc["id"]: (
            dc["state"] == "unsealed",  # a sealed DC may show "unsealing": trying again
            dc["threshold"],
            {c["id"]: c["reachable"] for c in dc["custodians"]},
        )
        for dc in status.records
    }
    assert reachable == {
        "xa": (True, 2, {"custodian-xb": True, "custodian-xc": True}),
        "xb": (False, 2, {"custodian-xa": False, "custodian-xc": True}),
        "xc": (False, 2, {"custodian-xa": False, "custodian-xb": True}),
    }

    with pytest.raises(SamizdatError) as refused:
        await homed_in(url, "xb", "Dave")
    assert refused.value.code is ErrorCode.UNAVAILABLE
    async with httpx.AsyncClient(base_url=url) as http:  # bob's own DC is sealed
        reply = await http.post(
            "/api/updates.state", json={}, headers={"authorization": f"Bearer {bob_token}"}
        )
    assert reply.json()["error"]["code"] == ErrorCode.UNAVAILABLE.value
    # Her own DC serves; her catch-up holds back what is in xb.
    async with back_online(url, alice_saved) as (alice, taken):
        assert taken == []
        sent = await alice.send_message(chat_id, "while xb is sealed")  # xa serves
        newcomer = await homed_in(url, "xa", "Erin")
        await newcomer.close()

    shutil.move(dcs.server.data_dir / "custodian-xa.away", custodians / "custodian-xa")
    await wait_until(
        lambda: set(dc_states(url).values()) == {"unsealed"}, what="xb and xc unsealed"
    )
    async with back_online(url, bob_saved) as (_, taken):
        got = [u for u in taken if isinstance(u, NewMessageUpdate)]
        assert [u.message.id for u in got] == [sent.id]
    # In order: the group, its message, then her own send from the sealed time (held back
    # with everything after the first update she could not be given).
    async with back_online(url, alice_saved) as (_, taken):
        assert [type(u) for u in taken] == [ChatUpdatedUpdate, NewMessageUpdate, NewMessageUpdate]
        assert [u.message.id for u in taken[1:]] == [from_b.id, sent.id]  # type: ignore[attr-defined]


async def test_an_account_stays_in_its_dc_when_the_homing_rules_change(dcs: MultiDc) -> None:
    bob = await homed_in(dcs.server.url, "xb", "Bob")
    bob_id, phone = uid(bob), bob.test_phone  # type: ignore[attr-defined]
    await bob.close()
    dcs.server.stop()
    dcs.drop_homing_prefixes()
    dcs.server.start()
    again = Client(dcs.server.url, device_name="laptop")
    await again.connect()
    try:
        await again.send_code(phone)
        await again.sign_in(phone, "22222")
        assert uid(again) == bob_id  # the same account, not a new one in xa
        assert await user_dcs(dcs, bob_id) == ["xb"]
    finally:
        await again.close()


async def test_updates_left_queued_by_a_crash_are_moved_once_after_the_restart(
    dcs: MultiDc,
) -> None:
    """The crash window between a chat DC's commit and the move: a row still in its outbox
    (written here behind the server's back, as a crash would leave it) is moved into the
    member's own log after the restart, exactly once; a row for a DC that no longer exists
    holds nothing else back."""
    url = dcs.server.url
    alice = await homed_in(url, "xa", "Alice")
    bob = await homed_in(url, "xb", "Bob")
    group = await bob.create_group("renamed before the crash", [uid(alice)])
    alice_id, alice_saved = uid(alice), alice.session
    await alice.close()
    await bob.close()
    log = "SELECT kind FROM updates WHERE user_id = $1 AND chat_id = $2"
    before = await dcs.rows("xa", log, alice_id, group.id)
    dcs.server.stop()
    for target in ("dc-gone", "xa"):
        await dcs.rows(
            "xb",
            "INSERT INTO outbox (target_dc, user_id, kind, chat_id, message_ids, for_everyone) "
            f"VALUES ('{target}', {alice_id}, 'chat_updated', {group.id}, '[]', FALSE)",
        )
    dcs.server.start()

    async def moved() -> bool:
        return len(await dcs.rows("xa", log, alice_id, group.id)) > len(before)

    await wait_until(moved, what="the queued update moved after the restart")
    await asyncio.sleep(RELAY_ROUNDS)  # a second move would have happened by now
    after = await dcs.rows("xa", log, alice_id, group.id)
    assert len(after) == len(before) + 1  # moved, once
    left = await dcs.rows("xb", "SELECT target_dc FROM outbox")
    assert [tuple(r) for r in left] == [("dc-gone",)]  # only what nobody can take
    async with back_online(url, alice_saved) as (_, taken):
        got = [u for u in taken if isinstance(u, ChatUpdatedUpdate)]
        assert [u.chat.id for u in got] == [group.id]  # she had seen the first, online


async def test_a_username_is_unique_across_dcs(dcs: MultiDc) -> None:
    alice = await homed_in(dcs.server.url, "xa", "Alice")
    carol = await homed_in(dcs.server.url, "xc", "Carol")
    try:
        await alice.set_username(f"press_{uid(alice)}")
        with pytest.raises(SamizdatError) as taken:
            await carol.set_username(f"Press_{uid(alice)}")
        assert taken.value.code is ErrorCode.USERNAME_TAKEN
        assert (await carol.resolve(f"@press_{uid(alice)}")).id == uid(alice)
    finally:
        await alice.close()
        await carol.close()


async def test_secret_chats_between_dcs_reach_every_device(dcs: MultiDc, tmp_path: Path) -> None:
    """Ciphertexts wait in the sender's DC and each device collects from every DC; a new
    device of the peer, in another DC, makes the sender re-address (DEVICE_LIST_CHANGED)."""
    url = dcs.server.url
    alice = await open_device(await homed_in(url, "xa", "Alice"), tmp_path)
    bob = await open_device(await homed_in(url, "xb", "Bob"), tmp_path)
    opened = [alice, bob]
    try:
        chat = await alice.secret.start(bob.user_id)
        sent = await alice.secret.send(chat, "across two jurisdictions", ttl=0)
        got = await bob.next_text()
        assert (got.id, got.text) == (sent.id, "across two jurisdictions")
        bob_laptop = await another_device_of(dcs.server, tmp_path, bob)
        opened.append(bob_laptop)
        await alice.secret.send(chat, "to both of your devices", ttl=0)
        for device in (bob, bob_laptop):
            assert (await device.next_text()).text == "to both of your devices"
        await bob_laptop.secret.send(alice.user_id, "from xb")
        assert (await alice.next_text()).text == "from xb"
    finally:
        for device in opened:
            await device.close()
