"""The secret-message relay: Olm ciphertexts reach their device, the server cannot read them,
and keeps them only until the device acknowledges them."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import asyncpg
import pytest

from samizdat.client import Client
from samizdat.client.events import AnyUpdate
from samizdat.crypto.e2ee import DeviceCrypto, OlmError, OlmSessions
from samizdat.protocol.errors import ErrorCode
from samizdat.protocol.models import SecretMessageUpdate, Wire
from tests.harness import ServerProcess
from tests.inbox import refused
from tests.raw_socket import device_id_of

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
