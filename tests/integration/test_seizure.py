"""Seizing a DC yields nothing: not its disks, not its node keys, not with k-1 custodians.

The embedded default keeps its custodians' state under ``DATA/custodians/ID`` for
convenience; a real deployment runs them elsewhere. So "everything the DC's machine holds"
here is the data directory without those custodian directories (database, WAL, logs, node
key, admin token, configuration, the custodians' *public* keys) plus, on PostgreSQL, every
row of every table. The tests add the state of any k-1 custodians and try everything.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from typing import Any

import httpx
import orjson
import pytest

from samizdat.client import Client
from samizdat.crypto import DcKey, Keyring
from tests.custody_state import (
    CUSTODIAN_IDS,
    EnvelopeError,
    custodian_keys,
    dc_key_envelopes,
    open_with,
)
from tests.harness import ServerProcess, database_dump, signed_in, sql
from tests.raw_socket import token_of, user_id_of

THRESHOLD = 2
#: A loopback address of its own, so the only way it can reach the disk is the IP log.
CLIENT_IP = "127.45.67.89"


def seize(server: ServerProcess) -> dict[str, bytes]:
    """Every file of the DC's machine: the data directory minus the custodians' state."""
    custodian_dirs = {server.data_dir / "custodians" / cid for cid in CUSTODIAN_IDS}
    return {
        str(path.relative_to(server.data_dir)): path.read_bytes()
        for path in sorted(server.data_dir.rglob("*"))
        if path.is_file() and not any(d in path.parents for d in custodian_dirs)
    }


async def seized_everything(server: ServerProcess) -> dict[str, bytes]:
    seized = seize(server)
    if server.backend == "postgres":
        seized.update(await database_dump(server))
    return seized


async def call_from(ip: str, server: ServerProcess, client: Client, method: str) -> Any:
    """One HTTP RPC from a chosen source address (any 127/8 address reaches 127.0.0.1)."""
    transport = httpx.AsyncHTTPTransport(local_address=ip)
    async with httpx.AsyncClient(transport=transport, base_url=server.url) as http:
        reply = await http.post(
            f"/api/{method}", json={}, headers={"authorization": f"Bearer {token_of(client)}"}
        )
    return reply.json()


async def identity_envelopes(server: ServerProcess) -> dict[str, bytes]:
    found = {}
    for row in await sql(server, "SELECT id, phone_envelope FROM users"):
        if row["phone_envelope"] is not None:
            found[f"phone of {row['id']}"] = bytes(row["phone_envelope"])
    for row in await sql(server, "SELECT id, envelope FROM ip_log"):
        found[f"ip record {row['id']}"] = bytes(row["envelope"])
    return found


async def wait_for_ip_records(server: ServerProcess, user_id: int) -> None:
    for _ in range(50):  # the IP log is written by the once-a-second housekeeping
        if await sql(server, "SELECT id FROM ip_log WHERE user_id = $1", user_id):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("no IP record was written")


def text_forms(ip: str, phones: list[str]) -> dict[str, bytes]:
    forms = {"ip text": ip.encode(), "ip packed": socket.inet_aton(ip)}
    for n, phone in enumerate(phones):
        forms[f"phone {n}"] = phone.encode()
        forms[f"phone {n} digits"] = phone.lstrip("+").encode()
    return forms


async def test_a_seized_dc_plus_any_k_minus_1_custodians_yields_no_text_number_or_address(
    server: ServerProcess,
) -> None:
    alice = await signed_in(server.url, "Alice")
    bob = await signed_in(server.url, "Bob")
    try:
        texts = {f"text {n}": f"seizure-canary-{n}-{id(alice)}" for n in range(3)}
        chat = (await alice.call("chats.open_private", user_id=user_id_of(bob)))["id"]
        for text in texts.values():
            await alice.send_message(chat, text)
        assert (await call_from(CLIENT_IP, server, bob, "users.me"))["id"] == user_id_of(bob)
        await wait_for_ip_records(server, user_id_of(bob))
        phones = [alice.test_phone, bob.test_phone]  # type: ignore[attr-defined]
    finally:
        await alice.close()
        await bob.close()

    seized = await seized_everything(server)
    needles = {k: v.encode() for k, v in texts.items()} | text_forms(CLIENT_IP, phones)
    found = [
        f"{what} in {where}" for what, n in needles.items() for where, b in seized.items() if n in b
    ]
    assert not found, f"plaintext on the seized machine: {found}"

    envelopes = await identity_envelopes(server) | {
        f"dc key {kid}": env for kid, env in (await dc_key_envelopes(server)).items()
    }
    assert any(k.startswith("ip record") for k in envelopes)
    for group in itertools.combinations(CUSTODIAN_IDS, THRESHOLD - 1):
        keys = custodian_keys(server.data_dir, group)
        for what, envelope in envelopes.items():
            with pytest.raises(EnvelopeError):
                open_with(envelope, keys)
            assert what  # every envelope was tried with this custodian's key


async def test_k_custodians_together_do_open_what_one_cannot(server: ServerProcess) -> None:
    """The control for the test above: its envelopes and searches are the real thing."""
    alice = await signed_in(server.url, "Alice")
    bob = await signed_in(server.url, "Bob")
    try:
        chat = (await alice.call("chats.open_private", user_id=user_id_of(bob)))["id"]
        sent = await alice.send_message(chat, "readable only with k custodians")
        await call_from(CLIENT_IP, server, alice, "users.me")
        await wait_for_ip_records(server, user_id_of(alice))
        phone = alice.test_phone  # type: ignore[attr-defined]
    finally:
        await alice.close()
        await bob.close()
    keys = custodian_keys(server.data_dir, CUSTODIAN_IDS[:THRESHOLD])
    rows = await sql(server, "SELECT phone_envelope FROM users WHERE id = $1", user_id_of(alice))
    assert open_with(bytes(rows[0]["phone_envelope"]), keys) == phone.encode()
    ip_rows = await sql(server, "SELECT envelope FROM ip_log WHERE user_id = $1", user_id_of(alice))
    records = [orjson.loads(open_with(bytes(r["envelope"]), keys)) for r in ip_rows]
    assert CLIENT_IP in {r["ip"] for r in records}
    ring = Keyring("local")
    envelopes = await dc_key_envelopes(server)
    ring.install(
        [DcKey.from_payload(open_with(e, keys), kid) for kid, e in envelopes.items()],
        max(envelopes),
    )
    (chat_row,) = await sql(server, "SELECT wrapped_key, key_id FROM chats WHERE id = $1", chat)
    ring.load_chat_key(chat, bytes(chat_row["wrapped_key"]), chat_row["key_id"])
    (message,) = await sql(server, "SELECT text_sealed FROM messages WHERE id = $1", sent.id)
    assert ring.open_text(chat, sent.id, bytes(message["text_sealed"])) == sent.text
