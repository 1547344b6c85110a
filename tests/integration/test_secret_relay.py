"""The secret-message relay: Olm ciphertexts reach their device, the server cannot read them,
and keeps them only until the device acknowledges them."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import vodozemac

from samizdat.client import Client
from samizdat.client.events import AnyUpdate
from samizdat.crypto.e2ee import DeviceCrypto, OlmError, OlmSessions
from samizdat.protocol.errors import ErrorCode
from samizdat.protocol.methods import MAX_SECRET_FANOUT
from samizdat.protocol.models import OLM_TYPE_MEGOLM, SecretMessageUpdate, Wire
from tests.harness import ServerProcess
from tests.inbox import Inbox, another_device, refused
from tests.raw_socket import device_id_of, token_of, user_id_of

SECRET = "the printing press is in the cellar"


async def published(client: Client) -> tuple[DeviceCrypto, OlmSessions]:
    crypto = DeviceCrypto.create()
    await client.upload_keys(crypto, one_time_keys=5)
    return crypto, OlmSessions(crypto)


async def open_to(sender: Client, sessions: OlmSessions, peer: Client, text: str) -> list[int]:
    assert peer.me is not None
    (device,) = await sender.query_keys([peer.me.id])
    (claimed,) = await sender.claim_keys([device["device_id"]])
    sealed = sessions.encrypt(device["identity_key"], claimed["key"], text.encode())
    return await sender.send_secret([{"device_id": device["device_id"], **sealed}])


async def test_a_secret_message_reaches_the_device_and_only_it_can_read_it(
    server: ServerProcess, alice: Client, bob: Client
) -> None:
    alice_crypto, alice_sessions = await published(alice)
    _, bob_sessions = await published(bob)
    pushed: asyncio.Queue[Wire] = asyncio.Queue()
    bob.on(AnyUpdate)(pushed.put)
    ids = await open_to(alice, alice_sessions, bob, SECRET)
    update = await asyncio.wait_for(pushed.get(), 5)
    assert isinstance(update, SecretMessageUpdate)
    assert update.id == ids[0]
    assert update.sender_device_id == device_id_of(alice)
    plain = bob_sessions.decrypt(alice_crypto.identity_key, update.olm_type, update.ciphertext)
    assert plain.decode() == SECRET
    # Also waiting in the queue until acknowledged, then gone for good.
    assert [m["id"] for m in await bob.pending_secret()] == ids
    assert await bob.ack_secret(ids) == 1
    assert await bob.pending_secret() == []
    # The reply rides the session the first message set up.
    (alice_device,) = await bob.query_keys([alice.me.id])  # type: ignore[union-attr]
    reply = bob_sessions.encrypt(alice_device["identity_key"], None, b"received")
    await bob.send_secret([{"device_id": alice_device["device_id"], **reply}])
    (waiting,) = await alice.pending_secret()
    (bob_device,) = await alice.query_keys([bob.me.id])  # type: ignore[union-attr]
    opened = alice_sessions.decrypt(
        bob_device["identity_key"], waiting["olm_type"], waiting["ciphertext"]
    )
    assert opened == b"received"


async def test_the_server_never_holds_the_plaintext(
    server: ServerProcess, alice: Client, bob: Client
) -> None:
    _, alice_sessions = await published(alice)
    await published(bob)
    await open_to(alice, alice_sessions, bob, SECRET)
    if server.backend == "sqlite":
        blobs = b"".join(p.read_bytes() for p in Path(server.data_dir).rglob("*") if p.is_file())
    else:
        conn = await asyncpg.connect(
            f"postgresql://postgres@127.0.0.1:5432/{server.pg_database}", timeout=5
        )
        try:
            rows = await conn.fetch("SELECT ciphertext FROM secret_inbox")
        finally:
            await conn.close()
        blobs = b"".join(bytes(r["ciphertext"]) for r in rows)
        assert blobs
    assert SECRET.encode() not in blobs


async def test_a_tampered_ciphertext_is_a_decryption_error_never_a_wrong_text(
    alice: Client, bob: Client
) -> None:
    alice_crypto, alice_sessions = await published(alice)
    _, bob_sessions = await published(bob)
    await open_to(alice, alice_sessions, bob, SECRET)
    (waiting,) = await bob.pending_secret()
    body = bytearray(base64.b64decode(waiting["ciphertext"]))
    body[-5] ^= 0x01
    with pytest.raises(OlmError):
        bob_sessions.decrypt(
            alice_crypto.identity_key, waiting["olm_type"], base64.b64encode(body).decode()
        )
    # The untouched message still opens; replaying it once opened does not.
    plain = bob_sessions.decrypt(
        alice_crypto.identity_key, waiting["olm_type"], waiting["ciphertext"]
    )
    assert plain.decode() == SECRET
    with pytest.raises(OlmError):
        bob_sessions.decrypt(alice_crypto.identity_key, waiting["olm_type"], waiting["ciphertext"])


async def test_messages_for_devices_that_do_not_exist_store_nothing(
    alice: Client, bob: Client
) -> None:
    with refused(ErrorCode.DEVICE_NOT_FOUND):
        await alice.send_secret(
            [
                {"device_id": device_id_of(bob), "olm_type": 1, "ciphertext": "AAAA"},
                {"device_id": 123456789, "olm_type": 1, "ciphertext": "AAAA"},
            ]
        )
    assert await bob.pending_secret() == []
    with refused(ErrorCode.INVALID_PARAMS):
        await alice.send_secret(
            [{"device_id": device_id_of(bob), "olm_type": 1, "ciphertext": "not base64!"}]
        )
    with refused(ErrorCode.INVALID_PARAMS):
        await alice.send_secret(
            [{"device_id": device_id_of(bob), "olm_type": 1, "ciphertext": "A" * 40_000}]
        )
    with refused(ErrorCode.PAYLOAD_TOO_LARGE):
        await alice.send_secret(
            [{"device_id": device_id_of(bob), "olm_type": 1, "ciphertext": "A" * 200_000}]
        )
    assert await bob.pending_secret() == []


async def test_a_device_acknowledges_only_its_own_messages(alice: Client, bob: Client) -> None:
    _, alice_sessions = await published(alice)
    await published(bob)
    ids = await open_to(alice, alice_sessions, bob, SECRET)
    assert await alice.ack_secret(ids) == 0
    assert [m["id"] for m in await bob.pending_secret()] == ids


# --- group (Megolm) fan-out and the device-list check --------------------------------------


def megolm(plaintext: bytes = SECRET.encode()) -> tuple[str, vodozemac.InboundGroupSession]:
    """A Megolm ciphertext and the session that opens it.

    The wire wants standard, padded base64; vodozemac's own ``to_base64`` leaves the padding
    off, so the bytes are encoded here.
    """
    outbound = vodozemac.GroupSession()
    inbound = vodozemac.InboundGroupSession(outbound.session_key)
    return base64.b64encode(outbound.encrypt(plaintext).to_bytes()).decode(), inbound


async def send(sender: Client, **params: Any) -> list[int]:
    ids: list[int] = (await sender.call("secret.send", **params))["ids"]
    return ids


def olm(device: Client) -> dict[str, Any]:
    """A pairwise entry for ``messages``; the server never looks inside the ciphertext."""
    return {"device_id": device_id_of(device), "olm_type": 1, "ciphertext": "AAAA"}


def ids_of(*devices: Client) -> list[int]:
    return [device_id_of(d) for d in devices]


async def with_keys(*devices: Client) -> None:
    for device in devices:
        await device.upload_keys(DeviceCrypto.create(), one_time_keys=1)


async def test_a_group_ciphertext_reaches_each_addressed_device_exactly_once(
    server: ServerProcess, alice: Client, bob: Client, carol: Client
) -> None:
    async with another_device(server.url, bob) as bob_phone:
        devices = [bob, bob_phone, carol]
        inboxes = [Inbox(d) for d in devices]
        sealed, inbound = megolm()
        ids = await send(alice, group={"ciphertext": sealed, "device_ids": ids_of(*devices)})
        assert len(set(ids)) == len(devices)
        for device, inbox, expected_id in zip(devices, inboxes, ids, strict=True):
            pushed = await inbox.next(SecretMessageUpdate)
            assert (pushed.id, pushed.olm_type) == (expected_id, OLM_TYPE_MEGOLM)
            assert pushed.sender_device_id == device_id_of(alice)
            assert pushed.ciphertext == sealed
            (waiting,) = await device.pending_secret()
            assert (waiting["id"], waiting["olm_type"]) == (expected_id, OLM_TYPE_MEGOLM)
            assert waiting["ciphertext"] == sealed
        # One session key opens every copy: the bytes are the sender's, unchanged.
        opened = inbound.decrypt(vodozemac.MegolmMessage.from_base64(sealed))
        assert opened.plaintext == SECRET.encode()
        # Nothing was pushed twice: the next push to each device is a later message.
        later = await send(alice, messages=[olm(d) for d in devices])
        for inbox, later_id in zip(inboxes, later, strict=True):
            assert (await inbox.next(SecretMessageUpdate)).id == later_id
        # Each device acknowledges its own copy, and only that one.
        for device, later_id in zip(devices, later, strict=True):
            assert await device.ack_secret(ids) == 1
            assert [m["id"] for m in await device.pending_secret()] == [later_id]


async def test_one_request_carries_a_devices_olm_message_and_then_the_group_message(
    alice: Client, bob: Client, carol: Client
) -> None:
    # The usual first group send: the group key over Olm, then the first Megolm message.
    sealed, _ = megolm()
    ids = await send(
        alice, messages=[olm(bob)], group={"ciphertext": sealed, "device_ids": ids_of(bob, carol)}
    )
    to_bob = [(m["id"], m["olm_type"]) for m in await bob.pending_secret()]
    to_carol = [(m["id"], m["olm_type"]) for m in await carol.pending_secret()]
    assert to_bob == [(ids[0], 1), (ids[1], OLM_TYPE_MEGOLM)]
    assert to_carol == [(ids[2], OLM_TYPE_MEGOLM)]


async def test_a_send_that_misses_a_recipients_device_is_refused_and_stores_nothing(
    server: ServerProcess, alice: Client, bob: Client
) -> None:
    async with another_device(server.url, bob) as bob_phone:
        await with_keys(bob, bob_phone)
        sealed, _ = megolm()
        with refused(ErrorCode.DEVICE_LIST_CHANGED):
            await send(
                alice,
                group={"ciphertext": sealed, "device_ids": ids_of(bob)},
                recipients=[user_id_of(bob)],
            )
        with refused(ErrorCode.DEVICE_LIST_CHANGED):
            await send(alice, messages=[olm(bob_phone)], recipients=[user_id_of(bob)])
        assert await bob.pending_secret() == []
        assert await bob_phone.pending_secret() == []
        # Over HTTP the same refusal is a 409.
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            response = await http.post(
                "/api/secret.send",
                headers={"Authorization": f"Bearer {token_of(alice)}"},
                json={"messages": [olm(bob)], "recipients": [user_id_of(bob)]},
            )
        assert response.status_code == 409
        assert response.json()["error"]["code"] == ErrorCode.DEVICE_LIST_CHANGED
        # Every device addressed, in either form: accepted.
        both = await send(
            alice,
            group={"ciphertext": sealed, "device_ids": ids_of(bob, bob_phone)},
            recipients=[user_id_of(bob)],
        )
        mixed = await send(
            alice,
            messages=[olm(bob)],
            group={"ciphertext": sealed, "device_ids": ids_of(bob_phone)},
            recipients=[user_id_of(bob)],
        )
        assert [m["id"] for m in await bob.pending_secret()] == [both[0], mixed[0]]
        assert [m["id"] for m in await bob_phone.pending_secret()] == [both[1], mixed[1]]


async def test_the_senders_other_devices_are_required_but_never_the_sending_one(
    server: ServerProcess, alice: Client, bob: Client
) -> None:
    async with another_device(server.url, alice) as alice_phone:
        await with_keys(alice, alice_phone, bob)
        sealed, _ = megolm()
        to_bob = {"ciphertext": sealed, "device_ids": ids_of(bob)}
        with refused(ErrorCode.DEVICE_LIST_CHANGED):
            await send(alice, group=to_bob, recipients=[user_id_of(bob), user_id_of(alice)])
        assert await bob.pending_secret() == []
        # Not listing oneself asks for nothing of one's own devices.
        await send(alice, group=to_bob, recipients=[user_id_of(bob)])
        # The sending device has keys too, yet only the other one is needed.
        await send(
            alice,
            group={"ciphertext": sealed, "device_ids": ids_of(bob, alice_phone)},
            recipients=[user_id_of(bob), user_id_of(alice)],
        )
        assert len(await bob.pending_secret()) == 2
        assert len(await alice_phone.pending_secret()) == 1
        assert await alice.pending_secret() == []


async def test_devices_without_keys_logged_out_devices_and_unknown_users_are_not_required(
    server: ServerProcess, alice: Client, bob: Client
) -> None:
    async with (
        another_device(server.url, bob) as keyless,
        another_device(server.url, bob) as retired,
    ):
        await with_keys(bob, retired)
        await bob.revoke_device(device_id_of(retired))
        sealed, _ = megolm()
        nobody = 2**52
        ids = await send(
            alice,
            group={"ciphertext": sealed, "device_ids": ids_of(bob)},
            recipients=[user_id_of(bob), nobody],
        )
        assert [m["id"] for m in await bob.pending_secret()] == ids
        assert await keyless.pending_secret() == []
        # A logged-out device cannot be addressed at all.
        with refused(ErrorCode.DEVICE_NOT_FOUND):
            await send(
                alice,
                group={"ciphertext": sealed, "device_ids": ids_of(bob, retired)},
                recipients=[user_id_of(bob)],
            )
        assert [m["id"] for m in await bob.pending_secret()] == ids


async def test_a_refused_group_send_stores_nothing(
    alice: Client, bob: Client, carol: Client
) -> None:
    sealed, _ = megolm()
    unpadded = vodozemac.GroupSession().encrypt(SECRET.encode()).to_base64()
    assert len(unpadded) % 4
    refusals: list[tuple[ErrorCode, dict[str, Any]]] = [
        (ErrorCode.INVALID_PARAMS, {}),
        (ErrorCode.INVALID_PARAMS, {"messages": [], "recipients": [user_id_of(bob)]}),
        (ErrorCode.INVALID_PARAMS, {"messages": [olm(bob), olm(bob)]}),
        (
            ErrorCode.INVALID_PARAMS,
            {"group": {"ciphertext": sealed, "device_ids": ids_of(bob) * 2}},
        ),
        (
            ErrorCode.INVALID_PARAMS,
            {
                "group": {
                    "ciphertext": sealed,
                    "device_ids": ids_of(bob, carol) + list(range(1, MAX_SECRET_FANOUT)),
                }
            },
        ),
        (ErrorCode.INVALID_PARAMS, {"group": {"ciphertext": sealed, "device_ids": []}}),
        (
            ErrorCode.INVALID_PARAMS,
            {
                "messages": [olm(bob)],
                "group": {"ciphertext": "not base64!", "device_ids": ids_of(carol)},
            },
        ),
        # vodozemac's own base64 has no padding (this one would need one "=").
        (
            ErrorCode.INVALID_PARAMS,
            {"group": {"ciphertext": unpadded, "device_ids": ids_of(bob, carol)}},
        ),
        (
            ErrorCode.INVALID_PARAMS,
            {"group": {"ciphertext": sealed, "device_ids": ids_of(carol), "olm_type": 2}},
        ),
        (
            ErrorCode.DEVICE_NOT_FOUND,
            {
                "messages": [olm(bob)],
                "group": {"ciphertext": sealed, "device_ids": [*ids_of(carol), 123456789]},
            },
        ),
        # Exactly the limit passes validation and reaches the device lookup.
        (
            ErrorCode.DEVICE_NOT_FOUND,
            {
                "group": {
                    "ciphertext": sealed,
                    "device_ids": ids_of(bob) + list(range(1, MAX_SECRET_FANOUT)),
                }
            },
        ),
    ]
    for code, params in refusals:
        with refused(code):
            await send(alice, **params)
    assert await bob.pending_secret() == []
    assert await carol.pending_secret() == []
