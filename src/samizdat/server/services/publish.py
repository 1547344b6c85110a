"""Turn committed deliveries into bus pushes: one body per update, one push per body."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from samizdat.bus.events import Push
from samizdat.core.ids import ChatId, MessageId
from samizdat.core.model import Chat, Message
from samizdat.core.updates import Delivery, UpdateRef
from samizdat.server import wire
from samizdat.server.deps import Deps


async def publish_deliveries(
    deps: Deps,
    deliveries: Sequence[Delivery],
    *,
    messages: Mapping[MessageId, Message] | None = None,
    chats: Mapping[ChatId, Chat] | None = None,
    skip_connection: int | None = None,
) -> None:
    groups: dict[UpdateRef, list[tuple[int, int | None]]] = {}
    for d in deliveries:
        groups.setdefault(d.ref, []).append((d.user_id, d.seq))
    for ref, targets in groups.items():
        body = wire.update_body(ref, messages or {}, chats or {})
        if body is not None:
            await deps.publish(Push(wire.dumps(body), tuple(targets), skip_connection))


__all__ = ["publish_deliveries"]
