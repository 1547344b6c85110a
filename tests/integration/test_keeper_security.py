"""A DC's keeper opens only its own DC's key, never makes a key that could not open the data
it has, and a server whose custodians are not what their state says does not start.

Each test tampers with a stopped server's data as someone holding its disk could, starts it
again, and checks that the DC stays sealed with the reason in ``/status`` (or the server
refuses to start), and that putting the data back loses nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from samizdat.client import Client
from samizdat.custody.audit import verify_log
from samizdat.custody.policy import dc_key_owner
from tests.conftest import _require_backend
from tests.custody_requests import dc_key_envelope, identity_envelope
from tests.custody_state import (
    CUSTODIAN_IDS,
    DC_IDS,
    custodian_keys,
    custodians_of,
    dc_key_envelopes,
)
from tests.harness import (
    TEST_LIMITS,
    ServerProcess,
    dc_states,
    dc_status,
    second_device,
    signed_in,
    sql,
)
from tests.raw_socket import user_id_of

WRITTEN = "written before the tampering"
#: The one-DC layout (DC local, custodians in XB, XC, XD), but custodian-xb configured in XE.
XB_MOVED_TO_XE = """
[[dcs]]
id = "local"
jurisdiction = "XA"
custodians = ["custodian-xb", "custodian-xc", "custodian-xd"]
threshold = 2

[[custodians]]
id = "custodian-xb"
jurisdiction = "XE"

[[custodians]]
id = "custodian-xc"
jurisdiction = "XC"

[[custodians]]
id = "custodian-xd"
jurisdiction = "XD"
"""


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of one's own, on SQLite: for what happens before any database is opened."""
    _require_backend("sqlite")
    proc = ServerProcess(tmp_path / "server")
    yield proc
    proc.cleanup()


async def chat_with_a_message(server: ServerProcess) -> tuple[Client, int, int]:
    """Alice writes to Bob; returns Bob's (closed) client, Alice's user id and the chat."""
    alice = await signed_in(server.url, "Alice")
    bob = await signed_in(server.url, "Bob")
    try:
        chat = (await alice.call("chats.open_private", user_id=user_id_of(bob)))["id"]
        await alice.send_message(chat, WRITTEN)
        return bob, user_id_of(alice), chat
    finally:
        await alice.close()
        await bob.close()


async def bob_reads(server: ServerProcess, bob: Client, chat: int) -> set[str]:
    again = await second_device(server.url, bob.test_phone)  # type: ignore[attr-defined]
    try:
        history = await again.call("messages.history", chat_id=chat)
        return {m["text"] for m in history["messages"]}
    finally:
        await again.close()


def unseal_requests_seen(server: ServerProcess) -> int:
    """How many unseal requests the in-process custodians have answered or refused, except
    those for the other DCs' keys (they unseal at every start): any for the default DC's."""
    others = {dc_key_owner(dc) for dc in DC_IDS if dc != server.default_dc}
    return sum(
        entry.kind == "unseal" and entry.subject not in others
        for cid in CUSTODIAN_IDS
        for entry in verify_log(server.data_dir / "custodians" / cid / "audit.log")
    )


async def start_sealed(server: ServerProcess) -> dict[str, Any]:
    """Start the server (its default DC must stay sealed, the others serve) and return that
    DC's ``/status``."""
    await asyncio.to_thread(server.start, wait_unsealed=False)
    states = dc_states(server.url)
    assert states.pop(server.default_dc) == "sealed"
    assert set(states.values()) == {"unsealed"}
    return dc_status(server.url, server.default_dc)


async def test_a_dc_key_row_holding_another_envelope_keeps_the_dc_sealed_and_loses_nothing(
    fresh_server: ServerProcess,
) -> None:
    server = await asyncio.to_thread(fresh_server.start)
    bob, alice_id, chat = await chat_with_a_message(server)
    [(key_id, original)] = (await dc_key_envelopes(server)).items()
    own = custodians_of(server.default_dc)
    custodians = {cid: k.public for cid, k in custodian_keys(server.data_dir, own).items()}
    # Both sealed to this DC's own custodians, so only the keeper's check can tell.
    another_dcs_key = dc_key_envelope("elsewhere", custodians)
    alice_phone = identity_envelope(server.default_dc, alice_id, "phone", b"+999661", custodians)
    server.stop()
    asked_before = unseal_requests_seen(server)

    for wrong in (another_dcs_key, alice_phone):
        await sql(server, "UPDATE dc_keys SET envelope = $1", wrong.to_bytes())
        status = await start_sealed(server)
        server.stop()
        assert f"stored envelope {key_id} is not this DC's key" in status["last_error"]
        assert unseal_requests_seen(server) == asked_before, "the custodians were asked to open it"

    await sql(server, "UPDATE dc_keys SET envelope = $1", original)
    await asyncio.to_thread(server.start)
    assert WRITTEN in await bob_reads(server, bob, chat)


async def test_a_database_with_chats_but_no_dc_key_envelope_stays_sealed_without_a_new_key(
    fresh_server: ServerProcess,
) -> None:
    server = await asyncio.to_thread(fresh_server.start)
    bob, _, chat = await chat_with_a_message(server)
    server.stop()
    [backup] = await sql(server, "SELECT key_id, envelope, created_at FROM dc_keys")
    await sql(server, "DELETE FROM dc_keys")

    status = await start_sealed(server)
    server.stop()

    assert "holds chats but no DC key envelope" in status["last_error"]
    assert await sql(server, "SELECT key_id FROM dc_keys") == []
    await sql(
        server,
        "INSERT INTO dc_keys (key_id, envelope, created_at) VALUES ($1, $2, $3)",
        backup["key_id"],
        bytes(backup["envelope"]),
        backup["created_at"],
    )
    await asyncio.to_thread(server.start)
    assert WRITTEN in await bob_reads(server, bob, chat)


def test_a_custodian_configured_in_another_jurisdiction_than_its_state_stops_the_server(
    sqlite_server: ServerProcess,
) -> None:
    server = sqlite_server.start()  # the first start creates custodian-xb in XB
    server.stop()
    xb_identity = server.data_dir / "custodians" / "custodian-xb" / "custodian.json"
    before = xb_identity.read_bytes()
    server.extra_config = TEST_LIMITS + XB_MOVED_TO_XE

    with pytest.raises(RuntimeError, match="exited early"):
        server.start(wait_unsealed=False)

    assert server.proc is not None
    assert server.proc.returncode == 2  # a configuration error, said plainly
    said = " ".join(server.log_path.read_text().split())  # undo the console's line wrapping
    assert "Traceback" not in said
    assert "custodian custodian-xb in " in said
    assert "is in XB, not XE as configured" in said
    assert xb_identity.read_bytes() == before
