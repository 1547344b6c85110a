"""Seizing a DC yields nothing: not its disks, not its node keys, not with k-1 custodians.

The embedded default keeps its custodians' state under ``DATA/custodians/ID`` for
convenience; a real deployment runs them elsewhere. So "everything the DC's machine holds"
here is the data directory without those custodian directories (database, WAL, logs, node
key, admin token, configuration, the custodians' *public* keys) plus, on PostgreSQL, every
row of every table. The tests add the state of any k-1 custodians and try everything, and
search every byte (custodians' state included) for the DC key, rebuilt with k custodians.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import socket
from typing import Any

import orjson
import pytest

from samizdat.client import Client
from samizdat.crypto import DcKey, Keyring
from samizdat.crypto.threshold import Envelope
from tests.custody_state import (
    CUSTODIAN_IDS,
    EnvelopeError,
    custodian_keys,
    dc_key_envelopes,
    open_with,
    server_keyring,
)
from tests.harness import ServerProcess, signed_in, sql
from tests.raw_socket import RawSocket, token_of, user_id_of
from tests.seized import everything_stored, occurrences

THRESHOLD = 2
#: A loopback address of its own, so the only way it can reach the disk is the IP log.
CLIENT_IP = "127.45.67.89"
#: How long the once-a-second housekeeping may take to write an IP record on a busy machine.
IP_RECORD_TIMEOUT = 30.0


async def seized_everything(server: ServerProcess) -> dict[str, bytes]:
    """Every file of the DC's machine (the data directory minus the custodians' state) and,
    on PostgreSQL, every row."""
    custodian_dirs = [server.data_dir / "custodians" / cid for cid in CUSTODIAN_IDS]
    return await everything_stored(server, exclude=custodian_dirs)


async def call_from(ip: str, server: ServerProcess, client: Client, method: str) -> dict[str, Any]:
    """One RPC with the client's token from a chosen source address."""
    async with RawSocket.open(server.url, from_ip=ip) as sock:
        await sock.authorize(token_of(client))
        result: dict[str, Any] = await sock.result(method)
        return result


async def identity_envelopes(server: ServerProcess) -> dict[str, bytes]:
    found = {}
    for row in await sql(server, "SELECT id, phone_envelope FROM users"):
        if row["phone_envelope"] is not None:
            found[f"phone of {row['id']}"] = bytes(row["phone_envelope"])
    for row in await sql(server, "SELECT id, envelope FROM ip_log"):
        found[f"ip record {row['id']}"] = bytes(row["envelope"])
    return found


async def wait_for_ip_record(server: ServerProcess, user_id: int, ip: str) -> None:
    """Until the user's IP log holds a record of ``ip`` (read with k custodians' keys)."""
    keys = custodian_keys(server.data_dir, CUSTODIAN_IDS[:THRESHOLD])
    deadline = asyncio.get_running_loop().time() + IP_RECORD_TIMEOUT
    while True:
        rows = await sql(server, "SELECT envelope FROM ip_log WHERE user_id = $1", user_id)
        logged = {orjson.loads(open_with(bytes(r["envelope"]), keys))["ip"] for r in rows}
        if ip in logged:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no record of {ip} after {IP_RECORD_TIMEOUT}s: {logged}")
        await asyncio.sleep(0.1)


def text_forms(ip: str, phones: list[str]) -> dict[str, bytes]:
    forms = {"ip text": ip.encode(), "ip packed": socket.inet_aton(ip)}
    for n, phone in enumerate(phones):
        forms[f"phone {n}"] = phone.encode()
        forms[f"phone {n} digits"] = phone.lstrip("+").encode()
    return forms


async def rebuilt_dc_keys(server: ServerProcess) -> list[DcKey]:
    """The DC's live keys, rebuilt offline from k custodians' shares."""
    keys = custodian_keys(server.data_dir, CUSTODIAN_IDS[:THRESHOLD])
    envelopes = await dc_key_envelopes(server)
    return [DcKey.from_payload(open_with(e, keys), kid) for kid, e in envelopes.items()]


def key_forms(dc_keys: list[DcKey]) -> dict[str, bytes]:
    """Each key's payload, wrap key and index key: raw, hex and base64 (padding dropped, so a
    padded copy matches too)."""
    forms = {}
    for key in dc_keys:
        parts = {
            "payload": key.payload(),
            "wrap": key.wrap_material(),
            "index": key.index_material(),
        }
        for part, raw in parts.items():
            what = f"dc key {key.key_id} {part}"
            forms[f"{what} raw"] = raw
            forms[f"{what} hex"] = raw.hex().encode()
            forms[f"{what} HEX"] = raw.hex().upper().encode()
            forms[f"{what} base64"] = base64.b64encode(raw).rstrip(b"=")
            forms[f"{what} base64url"] = base64.urlsafe_b64encode(raw).rstrip(b"=")
    return forms


async def open_message(server: ServerProcess, ring: Keyring, chat: int, message_id: int) -> str:
    (chat_row,) = await sql(server, "SELECT wrapped_key, key_id FROM chats WHERE id = $1", chat)
    ring.load_chat_key(chat, bytes(chat_row["wrapped_key"]), chat_row["key_id"])
    (row,) = await sql(server, "SELECT text_sealed FROM messages WHERE id = $1", message_id)
    return ring.open_text(chat, message_id, bytes(row["text_sealed"]))


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
        await wait_for_ip_record(server, user_id_of(bob), CLIENT_IP)
        phones = [alice.test_phone, bob.test_phone]  # type: ignore[attr-defined]
    finally:
        await alice.close()
        await bob.close()

    seized = await seized_everything(server)
    needles = {k: v.encode() for k, v in texts.items()} | text_forms(CLIENT_IP, phones)
    found = occurrences(seized, needles)
    assert not found, f"plaintext on the seized machine: {found}"

    envelopes = await identity_envelopes(server) | {
        f"dc key {kid}": env for kid, env in (await dc_key_envelopes(server)).items()
    }
    assert any(k.startswith("ip record") for k in envelopes)
    assert any(k.startswith("dc key") for k in envelopes)
    for group in itertools.combinations(CUSTODIAN_IDS, THRESHOLD - 1):
        keys = custodian_keys(server.data_dir, group)
        for what, sealed in envelopes.items():
            envelope = Envelope.from_bytes(sealed)
            assert envelope.threshold == THRESHOLD, what
            for cid in group:  # each of them holds a real share of this envelope...
                keys[cid].open_share(envelope, cid)
            with pytest.raises(EnvelopeError, match="shares needed"):
                open_with(sealed, keys)  # ...and k-1 shares are not enough


async def test_the_dc_key_is_nowhere_on_the_seized_machine_nor_with_its_custodians(
    server: ServerProcess, alice: Client, bob: Client
) -> None:
    """Only its threshold envelope is stored: no ``dc.key`` file, and none of its bytes, in
    any file of the data directory (custodians' state included) or any database row."""
    chat = (await alice.call("chats.open_private", user_id=user_id_of(bob)))["id"]
    sent = await alice.send_message(chat, "sealed under the DC key")
    dc_keys = await rebuilt_dc_keys(server)
    # The needles are the keys the DC really uses: they open its message and its phone index.
    ring = Keyring("local")
    ring.install(dc_keys, dc_keys[0].key_id)
    assert await open_message(server, ring, chat, sent.id) == sent.text
    (user,) = await sql(server, "SELECT phone_lookup FROM users WHERE id = $1", user_id_of(bob))
    assert ring.phone_lookup(bob.test_phone) == bytes(user["phone_lookup"])  # type: ignore[attr-defined]

    assert not list(server.data_dir.rglob("dc.key")), "a DC key file on the disk"
    stored = await everything_stored(server)
    assert any(where.startswith("custodians/") for where in stored), "custodians not searched"
    found = occurrences(stored, key_forms(dc_keys))
    assert not found, f"DC key material on the disk: {found}"


async def test_k_custodians_together_do_open_what_one_cannot(server: ServerProcess) -> None:
    """The control for the tests above: their envelopes and searches are the real thing."""
    alice = await signed_in(server.url, "Alice")
    bob = await signed_in(server.url, "Bob")
    try:
        chat = (await alice.call("chats.open_private", user_id=user_id_of(bob)))["id"]
        sent = await alice.send_message(chat, "readable only with k custodians")
        await call_from(CLIENT_IP, server, alice, "users.me")
        await wait_for_ip_record(server, user_id_of(alice), CLIENT_IP)
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
    ring = await server_keyring(server, keys)
    assert await open_message(server, ring, chat, sent.id) == sent.text
