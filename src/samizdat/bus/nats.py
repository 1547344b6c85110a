"""NATS bus for many gateway nodes: every node subscribes to one subject and filters locally."""

from __future__ import annotations

import inspect
import logging
from typing import Any

import nats

from samizdat.bus.events import BusEvent, decode, encode
from samizdat.bus.ports import Handler
from samizdat.protocol.errors import Unavailable

log = logging.getLogger(__name__)


class NatsBus:
    def __init__(
        self, url: str = "nats://127.0.0.1:4222", subject: str = "samizdat.events"
    ) -> None:
        self.url = url
        self.subject = subject
        self._nc: Any = None

    async def start(self, handler: Handler) -> None:
        try:
            self._nc = await nats.connect(self.url, connect_timeout=5, max_reconnect_attempts=-1)
        except Exception as exc:
            raise Unavailable(f"cannot reach NATS at {self.url}") from exc

        async def on_message(msg: Any) -> None:
            try:
                event = decode(msg.data)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("dropped malformed bus event", extra={"error": repr(exc)})
                return
            result = handler(event)
            if inspect.isawaitable(result):
                await result

        await self._nc.subscribe(self.subject, cb=on_message)
        await self._nc.flush()  # the server has our subscription before start() returns

    async def publish(self, event: BusEvent) -> None:
        if self._nc is None:
            raise Unavailable("bus is not connected")
        await self._nc.publish(self.subject, encode(event))

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.drain()
            self._nc = None


__all__ = ["NatsBus"]
