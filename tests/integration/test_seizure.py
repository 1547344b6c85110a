"""Seizing a DC yields nothing: not its disks, not its node keys, not with k-1 custodians.

The embedded default runs three DCs (XA, XB, XC) on one machine, each kept by the two
custodians of the other jurisdictions (2 of 2), and keeps those custodians' state under
``DATA/custodians/ID`` for convenience; a real deployment runs them elsewhere. So "everything
the DC's machine holds" here is the data directory without those custodian directories
(every DC's database and WAL, logs, node keys, admin token, configuration, the custodians'
*public* keys) plus, on PostgreSQL, every row of every table. Every DC holds an account, a
group with messages and an IP record; the tests add the state of any k-1 custodians and try
everything, and search every byte (custodians' state included) for the DC keys, rebuilt
with k custodians.
"""

from __future__ import annotations

import base64
import itertools
import socket
from typing import Any

import orjson
import pytest

from samizdat.client import Client
from samizdat.crypto import DcKey, Keyring
from samizdat.crypto.threshold import Envelope
from samizdat.protocol.models import Message
from tests.custody_state import (
    CUSTODIAN_IDS,
    DC_IDS,
    EnvelopeError,
    custodian_keys,
    custodians_of,
    dc_key_envelopes,
    open_with,
    server_keyring,
)
from tests.harness import ServerProcess, signed_in, sql, wait_until
from tests.raw_socket import RawSocket, token_of, user_id_of
from tests.seized import everything_stored, occurrences

THRESHOLD = 2
#: A loopback address of its own, so the only way it can reach the disk is the IP log.
CLIENT_IP = "127.45.67.89"
#: How long the once-a-second housekeeping may take to write an IP record on a busy machine.
IP_RECORD_TIMEOUT = 30.0
#: The dev digit whose test numbers the embedded default homes in each DC.
DIGIT_OF_DC = {"xa": 1, "xb": 2, "xc": 3}


async def seized_everything(server: ServerProcess) -> dict[str, bytes]:
    """Every file of the DCs' machine (the data directory minus the custodians' state) and,
    on PostgreSQL, every row."""
    custodian_dirs = [server.data_dir / "custodians" / cid for cid in CUSTODIAN_IDS]
    return await everything_stored(server, exclude=custodian_dirs)


async def call_from(ip: str, server: ServerProcess, client: Client, method: str) -> dict[str, Any]:
    """One RPC with the client's token from a chosen source address."""
    async with RawSocket.open(server.url, from_ip=ip) as sock:
        await sock.authorize(token_of(client))
        result: dict[str, Any] = await sock.result(method)
        return result


async def one_account_per_dc(server: ServerProcess) -> dict[str, Client]:
    """A signed-in client homed in each DC (by its dev number's digit), by DC id."""
    homed = {}
    try:
        for dc, digit in DIGIT_OF_DC.items():
            homed[dc] = await signed_in(server.url, f"User in {dc}", digit=digit)
    except BaseException:
        await close_all(homed)
        raise
    for dc, client in homed.items():
        assert await sql(server, "SELECT 1 FROM users WHERE id = $1", user_id_of(client), dc=dc)
    return homed


async def close_all(clients: dict[str, Client]) -> None:
    for client in clients.values():
        await client.close()


async def group_with_a_message(creator: Client, others: list[Client], text: str) -> Message:
    """A group of ``creator``'s (so in creator's DC) with everyone in, and one message."""
    members = [user_id_of(o) for o in others]
    chat = (await creator.call("groups.create", title="canary", member_ids=members))["id"]
    return await creator.send_message(chat, text)


async def identity_envelopes(server: ServerProcess, dc: str) -> dict[str, bytes]:
    found = {}
    for row in await sql(server, "SELECT id, phone_envelope FROM users", dc=dc):
        if row["phone_envelope"] is not None:
            found[f"{dc} phone of {row['id']}"] = bytes(row["phone_envelope"])
    for row in await sql(server, "SELECT id, envelope FROM ip_log", dc=dc):
        found[f"{dc} ip record {row['id']}"] = bytes(row["envelope"])
    return found


async def logged_ips(server: ServerProcess, dc: str, user_id: int) -> set[str]:
    """The addresses in a user's IP log, opened with the DC's k custodians' keys."""
    keys = custodian_keys(server.data_dir, custodians_of(dc))
    rows = await sql(server, "SELECT envelope FROM ip_log WHERE user_id = $1", user_id, dc=dc)
    return {orjson.loads(open_with(bytes(r["envelope"]), keys))["ip"] for r in rows}


async def log_an_ip(server: ServerProcess, dc: str, client: Client) -> None:
    """Connect as ``client`` from CLIENT_IP; wait until its home DC's IP log records it."""
    assert (await call_from(CLIENT_IP, server, client, "users.me"))["id"] == user_id_of(client)
    await wait_until(
        lambda: _has_ip(server, dc, user_id_of(client)),
        IP_RECORD_TIMEOUT,
        f"a record of {CLIENT_IP} in {dc}",
    )


async def _has_ip(server: ServerProcess, dc: str, user_id: int) -> bool:
    return CLIENT_IP in await logged_ips(server, dc, user_id)


def text_forms(ip: str, phones: list[str]) -> dict[str, bytes]:
    forms = {"ip text": ip.encode(), "ip packed": socket.inet_aton(ip)}
    for n, phone in enumerate(phones):
        forms[f"phone {n}"] = phone.encode()
        forms[f"phone {n} digits"] = phone.lstrip("+").encode()
    return forms


async def rebuilt_dc_keys(server: ServerProcess, dc: str) -> list[DcKey]:
    """A DC's live keys, rebuilt offline from its k custodians' shares."""
    keys = custodian_keys(server.data_dir, custodians_of(dc))
    envelopes = await dc_key_envelopes(server, dc)
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


async def open_message(server: ServerProcess, dc: str, ring: Keyring, sent: Message) -> str:
    """A stored message's text, opened with a keyring rebuilt offline."""
    (chat,) = await sql(
        server, "SELECT wrapped_key, key_id FROM chats WHERE id = $1", sent.chat_id, dc=dc
    )
    ring.load_chat_key(sent.chat_id, bytes(chat["wrapped_key"]), chat["key_id"])
    (row,) = await sql(server, "SELECT text_sealed FROM messages WHERE id = $1", sent.id, dc=dc)
    return ring.open_text(sent.chat_id, sent.id, bytes(row["text_sealed"]))


async def test_seized_dcs_plus_any_k_minus_1_custodians_yield_no_text_number_or_address(
    server: ServerProcess,
) -> None:
    homed = await one_account_per_dc(server)
    try:
        texts = {}
        for dc, creator in homed.items():
            others = [c for other, c in homed.items() if other != dc]
            texts[f"text in {dc}"] = text = f"seizure-canary-{dc}-{id(creator)}"
            sent = await group_with_a_message(creator, others, text)
            assert await sql(server, "SELECT 1 FROM messages WHERE id = $1", sent.id, dc=dc)
            await log_an_ip(server, dc, creator)
        phones = [c.test_phone for c in homed.values()]  # type: ignore[attr-defined]
    finally:
        await close_all(homed)

    seized = await seized_everything(server)
    assert {f"dc-{dc}.sqlite3" for dc in DC_IDS if dc != server.default_dc} <= set(seized)
    needles = {k: v.encode() for k, v in texts.items()} | text_forms(CLIENT_IP, phones)
    found = occurrences(seized, needles)
    assert not found, f"plaintext on the seized machine: {found}"

    envelopes: dict[str, bytes] = {}
    for dc in DC_IDS:
        of_dc = await identity_envelopes(server, dc) | {
            f"{dc} dc key {kid}": env for kid, env in (await dc_key_envelopes(server, dc)).items()
        }
        assert any(" ip record " in k for k in of_dc), dc
        assert any(" dc key " in k for k in of_dc), dc
        # The custodian in the DC's own country, which its state could compel, has no share.
        for sealed in of_dc.values():
            assert f"custodian-{dc}" not in Envelope.from_bytes(sealed).custodians
        envelopes |= of_dc
    for group in itertools.combinations(CUSTODIAN_IDS, THRESHOLD - 1):
        keys = custodian_keys(server.data_dir, group)
        for what, sealed in envelopes.items():
            envelope = Envelope.from_bytes(sealed)
            assert envelope.threshold == THRESHOLD, what
            for cid in set(group) & set(envelope.custodians):  # a real share of it...
                keys[cid].open_share(envelope, cid)
            with pytest.raises(EnvelopeError, match="shares needed"):
                open_with(sealed, keys)  # ...and k-1 shares are not enough


async def test_no_dc_key_is_on_the_seized_machine_nor_with_the_custodians(
    server: ServerProcess,
) -> None:
    """Only their threshold envelopes are stored: no ``dc.key`` file, and no byte of any DC's
    key, in any file of the data directory (custodians' state included) or database row."""
    homed = await one_account_per_dc(server)
    try:
        sent = {
            dc: await group_with_a_message(creator, [], f"sealed under {dc}'s key")
            for dc, creator in homed.items()
        }
    finally:
        await close_all(homed)
    needles: dict[str, bytes] = {}
    for dc in DC_IDS:
        dc_keys = await rebuilt_dc_keys(server, dc)
        # The needles are the keys the DC really uses: they open its message and phone index.
        ring = Keyring(dc)
        ring.install(dc_keys, dc_keys[0].key_id)
        assert await open_message(server, dc, ring, sent[dc]) == sent[dc].text
        user_id = user_id_of(homed[dc])
        (user,) = await sql(server, "SELECT phone_lookup FROM users WHERE id = $1", user_id, dc=dc)
        phone = homed[dc].test_phone  # type: ignore[attr-defined]
        assert ring.phone_lookup(phone) == bytes(user["phone_lookup"])
        needles |= {f"{dc} {what}": form for what, form in key_forms(dc_keys).items()}

    assert not list(server.data_dir.rglob("dc.key")), "a DC key file on the disk"
    stored = await everything_stored(server)
    assert any(where.startswith("custodians/") for where in stored), "custodians not searched"
    found = occurrences(stored, needles)
    assert not found, f"DC key material on the disk: {found}"


async def test_k_custodians_together_do_open_what_one_cannot(server: ServerProcess) -> None:
    """The control for the tests above: their envelopes and searches are the real thing."""
    homed = await one_account_per_dc(server)
    try:
        sent = {}
        for dc, creator in homed.items():
            sent[dc] = await group_with_a_message(creator, [], f"readable only with {dc}'s k")
            await log_an_ip(server, dc, creator)
    finally:
        await close_all(homed)
    for dc, client in homed.items():
        keys = custodian_keys(server.data_dir, custodians_of(dc))
        user_id = user_id_of(client)
        rows = await sql(server, "SELECT phone_envelope FROM users WHERE id = $1", user_id, dc=dc)
        assert open_with(bytes(rows[0]["phone_envelope"]), keys) == client.test_phone.encode()  # type: ignore[attr-defined]
        assert CLIENT_IP in await logged_ips(server, dc, user_id)
        ring = await server_keyring(server, keys, dc)
        assert await open_message(server, dc, ring, sent[dc]) == sent[dc].text
