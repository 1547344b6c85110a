"""Turn committed deliveries into bus pushes: one body per update, one push per body."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from samizdat.bus.events import Push
from samizdat.core.ids import ChatId, MessageId
from samizdat.core.model import Chat, Message
from samizdat.core.updates import MESSAGE_KINDS, Delivery, UpdateKind, UpdateRef
from samizdat.server import wire
from samizdat.server.deps import Deps
from samizdat.store.sql import SqlStore


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


async def publish_fetched(
    deps: Deps,
    source: SqlStore,
    deliveries: Sequence[Delivery],
    known: Mapping[MessageId, Message],
) -> None:
    """Publish deliveries moved from ``source``, the chats' DC: messages not ``known``
    already are read from it, chats from the (just refreshed) directory."""
    wanted = {d.ref.message_ids[0] for d in deliveries if d.ref.kind in MESSAGE_KINDS}
    missing = wanted - known.keys()
    messages = {**known, **(await source.messages_by_id(missing) if missing else {})}
    chats = {}
    for chat_id in {d.ref.chat_id for d in deliveries if d.ref.kind is UpdateKind.CHAT_UPDATED}:
        deps.chats.invalidate(chat_id)  # the change was just committed: never the old state
        membership = await deps.chats.get(chat_id)
        if membership is not None:
            chats[chat_id] = membership.chat
    await publish_deliveries(deps, deliveries, messages=messages, chats=chats)


__all__ = ["publish_deliveries", "publish_fetched"]
