"""This node's live connections, and delivery of bus events to them.

Each connection has a bounded outbox drained by its own task, so one slow socket never holds
up delivery to the others; a socket that falls too far behind is closed and its device
catches up with ``updates.difference`` when it reconnects (nothing is lost: the log has it).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from samizdat.bus.events import BusEvent, ChatChanged, DevicePush, DevicesRevoked, Push
from samizdat.protocol.errors import WS_CLOSE_REVOKED, WS_CLOSE_SLOW_CONSUMER
from samizdat.protocol.frames import encode_update
from samizdat.protocol.session import ConnEvent, ConnState, ServerConnection
from samizdat.server.metrics import Metrics

log = logging.getLogger(__name__)

SendText = Callable[[str], Awaitable[None]]
Close = Callable[[int, str], Awaitable[None]]


class Connection:
    """One device's socket as the hub sees it: identity, state, outbox."""

    def __init__(
        self,
        send: SendText,
        close: Close,
        *,
        max_outbox: int,
        max_outbox_bytes: int = 32 * 1024 * 1024,
        conn_id: int = 0,
    ) -> None:
        self.id = conn_id
        self._send = send
        self._close = close
        self.max_outbox = max_outbox
        self.max_outbox_bytes = max_outbox_bytes
        self._queued_bytes = 0
        self.state = ServerConnection()
        self.user_id = 0
        self.device_id = 0
        self._outbox: deque[str] = deque()
        self._wakeup = asyncio.Event()
        self.closing: tuple[int, str] | None = None
        self._flush_before_close = False
        self.registered = False

    def push(self, frame: bytes | str) -> None:
        if self.closing is not None and not self._flush_before_close:
            return
        text = frame if isinstance(frame, str) else frame.decode()
        if (
            len(self._outbox) >= self.max_outbox
            or self._queued_bytes + len(text) > self.max_outbox_bytes
        ):
            self.close_soon(WS_CLOSE_SLOW_CONSUMER, "too far behind; reconnect and resync")
            return
        self._queued_bytes += len(text)
        self._outbox.append(text)
        self._wakeup.set()

    def close_soon(self, code: int, reason: str, *, flush: bool = False) -> None:
        """Close after the pump's next turn; with ``flush``, after sending what is queued
        (and whatever is pushed before then, such as the answer to the request that closed it).
        """
        if self.closing is None:
            self.closing = (code, reason)
            self._flush_before_close = flush
            self._wakeup.set()

    def revoke(self) -> None:
        if self.state.state is ConnState.READY:
            self.state.fire(ConnEvent.REVOKED)
        self.close_soon(WS_CLOSE_REVOKED, "this device was logged out", flush=True)

    async def pump(self) -> None:
        """Send queued frames until the connection is told to close; then close it."""
        outbox = self._outbox
        while True:
            try:
                while outbox and (self.closing is None or self._flush_before_close):
                    text = outbox.popleft()
                    self._queued_bytes -= len(text)
                    await self._send(text)
            except Exception:  # the peer went away mid-send: nothing more can reach it
                outbox.clear()
                self._queued_bytes = 0
                self.closing = self.closing or (1006, "peer gone")
                self._flush_before_close = False
            if self.closing is not None:
                self._flush_before_close = False
                code, reason = self.closing
                await self._close(code, reason)
                return
            self._wakeup.clear()
            await self._wakeup.wait()


class Hub:
    def __init__(self, metrics: Metrics, on_chat_changed: Callable[[int], None]) -> None:
        self.metrics = metrics
        self._by_user: dict[int, set[Connection]] = {}
        self._by_device: dict[int, set[Connection]] = {}
        self._count = 0
        self._on_chat_changed = on_chat_changed

    def register(self, conn: Connection) -> None:
        conn.registered = True
        self._by_user.setdefault(conn.user_id, set()).add(conn)
        self._by_device.setdefault(conn.device_id, set()).add(conn)
        self._count += 1
        self.metrics.connections.set(self._count)

    def unregister(self, conn: Connection) -> None:
        if not conn.registered:
            return
        conn.registered = False
        for index, key in ((self._by_user, conn.user_id), (self._by_device, conn.device_id)):
            peers = index.get(key)
            if peers is not None and conn in peers:
                peers.discard(conn)
                if not peers:
                    del index[key]
        self._count -= 1
        self.metrics.connections.set(self._count)

    def handle(self, event: BusEvent) -> None:
        match event:
            case Push(body, targets, skip):
                delivered = 0
                by_user = self._by_user
                for user, seq in targets:
                    conns = by_user.get(user)
                    if not conns:
                        continue
                    frame = encode_update(body, seq).decode()
                    for conn in conns:
                        if conn.id != skip:
                            conn.push(frame)
                            delivered += 1
                self.metrics.deliveries.inc(delivered)
            case DevicePush(body, device_ids):
                frame = encode_update(body, None).decode()
                for device_id in device_ids:
                    for conn in self._by_device.get(device_id, ()):
                        conn.push(frame)
            case DevicesRevoked(ids):
                for device_id in ids:
                    for revoked in tuple(self._by_device.get(device_id, ())):
                        self.unregister(revoked)  # no further pushes; only pending replies
                        revoked.revoke()
            case ChatChanged(chat_id):
                self._on_chat_changed(chat_id)


__all__ = ["Connection", "Hub"]
