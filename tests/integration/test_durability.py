"""An acknowledged message is a stored message: ``kill -9`` loses nothing that was acked.

A client pipelines many sends, the server is SIGKILLed (after the last ack, or while sends are
still in flight), restarted on the same data, and every acknowledged message is still there,
once. Retrying every send with its original ``random_id`` stores nothing twice.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from samizdat.client import Client
from samizdat.client.profile import Session
from samizdat.protocol.errors import Unavailable
from tests.harness import ServerProcess, signed_in
from tests.raw_socket import user_id_of

IN_FLIGHT = 24


def text_of(index: int) -> str:
    return f"durable message #{index}"


async def send_all(
    client: Client,
    chat_id: int,
    random_ids: list[int],
    *,
    kill_after: int | None = None,
    server: ServerProcess | None = None,
) -> tuple[dict[int, dict[str, Any]], list[BaseException]]:
    """Send every message with up to IN_FLIGHT unanswered at once; return the acks by index.

    With ``kill_after``, the server is SIGKILLed the moment that many sends are acknowledged,
    so the others are queued, in flight or half-committed when it dies.
    """
    acked: dict[int, dict[str, Any]] = {}
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def one(index: int) -> None:
        async with slots:
            result = await client.call(
                "messages.send", chat_id=chat_id, text=text_of(index), random_id=random_ids[index]
            )
        acked[index] = result["message"]
        if kill_after is not None and len(acked) == kill_after:
            assert server is not None
            server.kill9()

    outcomes = await asyncio.gather(
        *(one(i) for i in range(len(random_ids))), return_exceptions=True
    )
    return acked, [o for o in outcomes if isinstance(o, BaseException)]


async def full_history(client: Client, chat_id: int) -> list[dict[str, Any]]:
    """Every message of a chat, newest first, paging back with ``before_id``."""
    messages: list[dict[str, Any]] = []
    before: dict[str, int] = {}
    while True:
        page = await client.call("messages.history", chat_id=chat_id, limit=200, **before)
        messages.extend(page["messages"])
        if len(page["messages"]) < 200:
            return messages
        before = {"before_id": page["messages"][-1]["id"]}


async def reconnect(server: ServerProcess, session: Session | None) -> Client:
    assert session is not None
    client = Client(server.url, session=session)
    await client.connect()
    return client


async def check_after_restart(
    server: ServerProcess,
    sessions: tuple[Session | None, Session | None],
    chat_id: int,
    random_ids: list[int],
    acked: dict[int, dict[str, Any]],
) -> None:
    alice = await reconnect(server, sessions[0])
    bob = await reconnect(server, sessions[1])
    try:
        stored = {m["id"]: m for m in await full_history(alice, chat_id)}
        for index, message in acked.items():
            assert message["id"] in stored, f"acked message #{index} was lost"
            assert stored[message["id"]]["text"] == text_of(index)
        assert {m["id"] for m in await full_history(bob, chat_id)} == set(stored)

        # Bob's update log has no hole and announces every stored message once.
        diff = await bob.call("updates.difference", since=0, limit=1000)
        assert not diff["more"]
        seqs = [u["seq"] for u in diff["updates"]]
        assert seqs == list(range(1, len(seqs) + 1))
        announced = [
            u["update"]["message"]["id"]
            for u in diff["updates"]
            if u["update"]["type"] == "new_message"
        ]
        assert sorted(announced) == sorted(stored)

        # Retrying every send, acked or not, stores each message exactly once.
        retried, failures = await send_all(alice, chat_id, random_ids)
        assert failures == []
        for index, message in acked.items():
            assert retried[index]["id"] == message["id"]
            assert retried[index]["date"] == message["date"]
        final = await full_history(alice, chat_id)
        assert sorted(m["text"] for m in final) == sorted(
            text_of(i) for i in range(len(random_ids))
        )
        assert len({m["id"] for m in final}) == len(random_ids)
    finally:
        await alice.close()
        await bob.close()


async def test_every_acknowledged_send_survives_kill_9(fresh_server: ServerProcess) -> None:
    await asyncio.to_thread(fresh_server.start)
    alice = await signed_in(fresh_server.url, "Alice")
    bob = await signed_in(fresh_server.url, "Bob")
    chat_id = (await alice.call("chats.open_private", user_id=user_id_of(bob)))["id"]
    random_ids = [secrets.randbits(63) - 2**62 for _ in range(200)]

    acked, failures = await send_all(alice, chat_id, random_ids)
    fresh_server.kill9()

    assert failures == []
    assert len(acked) == 200
    sessions = (alice.session, bob.session)
    await alice.close()
    await bob.close()
    await asyncio.to_thread(fresh_server.start)
    await check_after_restart(fresh_server, sessions, chat_id, random_ids, acked)


async def test_acknowledged_sends_survive_a_kill_while_others_are_in_flight(
    fresh_server: ServerProcess,
) -> None:
    await asyncio.to_thread(fresh_server.start)
    alice = await signed_in(fresh_server.url, "Alice")
    bob = await signed_in(fresh_server.url, "Bob")
    chat_id = (await alice.call("chats.open_private", user_id=user_id_of(bob)))["id"]
    random_ids = [secrets.randbits(63) - 2**62 for _ in range(300)]

    acked, failures = await send_all(
        alice, chat_id, random_ids, kill_after=100, server=fresh_server
    )

    assert len(acked) >= 100
    assert failures, "the kill should have caught sends in flight"
    assert len(acked) + len(failures) == 300
    # The SDK reports a lost connection as a typed error, not a hang or a crash.
    assert all(isinstance(f, Unavailable) for f in failures), failures
    sessions = (alice.session, bob.session)
    await alice.close()
    await bob.close()
    await asyncio.to_thread(fresh_server.start)
    await check_after_restart(fresh_server, sessions, chat_id, random_ids, acked)
