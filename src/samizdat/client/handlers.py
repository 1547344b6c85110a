"""Event handlers registered with ``on(EventType)``, called in order; one that fails is
logged and does not stop the others, or later events."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[None] | None]


class Handlers:
    """``catch_all``: a marker type whose handlers get every event."""

    def __init__(self, catch_all: type | None = None) -> None:
        self._catch_all = catch_all
        self._registered: list[tuple[type, Handler]] = []

    def on(self, event_type: type) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self._registered.append((event_type, handler))
            return handler

        return register

    async def emit(self, event: object) -> None:
        for event_type, handler in self._registered:
            if event_type is self._catch_all or isinstance(event, event_type):
                try:
                    result = handler(event)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    # A broken handler must not stop delivery to the others, or of later events.
                    log.exception("event handler %r failed", handler)


__all__ = ["Handler", "Handlers"]
