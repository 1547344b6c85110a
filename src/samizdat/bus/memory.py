"""In-process bus: one node, so publishing is a direct call to this node's handler."""

from __future__ import annotations

import inspect

from samizdat.bus.events import BusEvent
from samizdat.bus.ports import Handler


class InProcessBus:
    def __init__(self) -> None:
        self._handler: Handler | None = None

    async def start(self, handler: Handler) -> None:
        self._handler = handler

    async def publish(self, event: BusEvent) -> None:
        if self._handler is None:
            return
        result = self._handler(event)
        if inspect.isawaitable(result):
            await result

    async def close(self) -> None:
        self._handler = None


__all__ = ["InProcessBus"]
