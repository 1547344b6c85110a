"""Per-connection outboxes are bounded, and the member cache never keeps a stale snapshot."""

from __future__ import annotations

import asyncio

from samizdat.core.ids import ChatId, UserId
from samizdat.core.model import Chat, Membership
from samizdat.protocol.errors import WS_CLOSE_REVOKED, WS_CLOSE_SLOW_CONSUMER
from samizdat.protocol.models import ChatKind
from samizdat.protocol.session import ConnEvent
from samizdat.server.directory import ChatDirectory
from samizdat.server.hub import Connection


class Socket:
    """Records what a connection sends; ``blocked`` holds sends until released."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed: tuple[int, str] | None = None
        self.blocked = asyncio.Event()
        self.blocked.set()

    async def send(self, text: str) -> None:
        await self.blocked.wait()
        self.sent.append(text)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


async def test_a_socket_that_falls_too_many_bytes_behind_is_closed() -> None:
    sock = Socket()
    sock.blocked.clear()  # the peer reads nothing
    conn = Connection(sock.send, sock.close, max_outbox=1000, max_outbox_bytes=64 * 1024)
    pump = asyncio.create_task(conn.pump())
    for _ in range(10):
        conn.push("x" * 10_000)
    assert conn.closing is not None
    assert conn.closing[0] == WS_CLOSE_SLOW_CONSUMER
    sock.blocked.set()
    await asyncio.wait_for(pump, 1)
    assert sock.closed is not None
    assert sock.closed[0] == WS_CLOSE_SLOW_CONSUMER
    assert sum(len(t) for t in sock.sent) <= 64 * 1024  # what was queued, never more


async def test_a_revoked_socket_sends_what_is_queued_then_closes() -> None:
    sock = Socket()
    conn = Connection(sock.send, sock.close, max_outbox=10)
    conn.state.fire(ConnEvent.AUTHORIZED)
    pump = asyncio.create_task(conn.pump())
    conn.revoke()
    conn.push('{"id": 1, "result": {"ok": true}}')  # the answer to the revoking request
    await asyncio.wait_for(pump, 1)
    assert sock.sent == ['{"id": 1, "result": {"ok": true}}']
    assert sock.closed is not None
    assert sock.closed[0] == WS_CLOSE_REVOKED


def membership(members: set[int]) -> Membership:
    chat = Chat(ChatId(1), ChatKind.GROUP, "g", UserId(1), 0.0, len(members))
    return Membership(chat, frozenset(UserId(m) for m in members))


class SlowStore:
    """A store whose load can be held while the test changes the chat."""

    def __init__(self) -> None:
        self.members = {1, 2, 3}
        self.loads = 0
        self.release = asyncio.Event()
        self.release.set()

    async def load_membership(self, chat_id: ChatId) -> Membership:
        self.loads += 1
        snapshot = set(self.members)
        await self.release.wait()
        return membership(snapshot)


async def test_a_load_that_raced_a_change_is_not_cached() -> None:
    store = SlowStore()
    clock = [0.0]
    directory = ChatDirectory(store, monotonic=lambda: clock[0])  # type: ignore[arg-type]
    store.release.clear()
    stale = asyncio.create_task(directory.get(ChatId(1)))
    await asyncio.sleep(0)
    store.members = {1, 2}  # member 3 removed while the load was in flight
    directory.invalidate(1)
    store.release.set()
    assert 3 in (await stale).members  # that caller saw the old state...
    assert 3 not in (await directory.get(ChatId(1))).members  # ...but it was not cached


async def test_cached_entries_expire() -> None:
    store = SlowStore()
    clock = [0.0]
    directory = ChatDirectory(store, ttl=60.0, monotonic=lambda: clock[0])  # type: ignore[arg-type]
    await directory.get(ChatId(1))
    await directory.get(ChatId(1))
    assert store.loads == 1
    clock[0] = 61.0
    await directory.get(ChatId(1))
    assert store.loads == 2
