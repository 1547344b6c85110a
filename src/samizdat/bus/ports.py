"""The bus port: publish an event to every node (this one included)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from samizdat.bus.events import BusEvent

Handler = Callable[[BusEvent], Awaitable[None] | None]


class Bus(Protocol):
    async def start(self, handler: Handler) -> None:
        """Begin delivering events to ``handler``."""
        ...

    async def publish(self, event: BusEvent) -> None: ...

    async def close(self) -> None: ...


__all__ = ["Bus", "Handler"]
