"""Update state and difference: how a device that was away gets exactly what it missed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from samizdat.core.ids import ChatId, MessageId
from samizdat.core.model import Chat, Message
from samizdat.core.updates import MESSAGE_KINDS, Delivery, UpdateKind
from samizdat.protocol.errors import Unavailable
from samizdat.protocol.methods import DifferenceParams, Empty
from samizdat.server import wire
from samizdat.server.deps import Caller, Deps

#: A difference answer stays under about this size, whatever ``limit`` asked for, so a device
#: that was away from a busy chat never gets a frame too big for it (or for the server) to hold.
MAX_DIFFERENCE_BYTES = 1024 * 1024


def _cut_at_unavailable(
    found: list[Delivery], messages: Mapping[MessageId, Message], chats: Mapping[ChatId, Chat]
) -> bool:
    """Drop ``found`` from the first update whose message or chat was not found while a DC
    is sealed: it may be there, and reporting it gone would lose it for good."""
    for index, d in enumerate(found):
        kind = d.ref.kind
        if (kind in MESSAGE_KINDS and d.ref.message_ids[0] not in messages) or (
            kind is UpdateKind.CHAT_UPDATED and d.ref.chat_id not in chats
        ):
            del found[index:]
            return True
    return False


class SyncService:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def state(self, caller: Caller, _: Empty) -> wire.Json:
        store = await self.deps.dcs.user_store(caller.user_id)
        return {"seq": await store.current_seq(caller.user_id)}

    async def difference(self, caller: Caller, p: DifferenceParams) -> wire.Json:
        """Every update after ``since`` in order, with messages as they are now.

        An update whose message was deleted for everyone still comes back, with the text gone,
        so numbering stays gap-free and nothing deleted is resurrected. In a chat the caller
        has since left, a message that was edited comes back without text (the edit may be
        from after they left; the store keeps no edit history to tell), reactions are not
        shown, and chat states come back as ``chat_left``: a former member learns nothing of
        what was written or changed after they left, and keeps what they were sent.
        """
        dcs = self.deps.dcs
        store = await dcs.user_store(caller.user_id)
        current = await store.current_seq(caller.user_id)
        found = await store.updates_since(caller.user_id, p.since, p.limit)
        message_ids = [d.ref.message_ids[0] for d in found if d.ref.kind in MESSAGE_KINDS]
        messages = await dcs.messages_by_id(message_ids)
        chats = {}
        for chat_id in {d.ref.chat_id for d in found if d.ref.kind is UpdateKind.CHAT_UPDATED}:
            try:
                membership = await self.deps.chats.get(chat_id)  # the per-node cache
            except Unavailable:
                continue  # its DC is sealed
            if membership is not None:
                chats[chat_id] = membership.chat
        held = dcs.any_sealed and _cut_at_unavailable(found, messages, chats)
        still_in = await dcs.member_chat_ids(caller.user_id, {d.ref.chat_id for d in found})
        for message_id, message in list(messages.items()):
            if message.chat_id not in still_in:
                text = None if message.edit_date is not None else message.text
                messages[message_id] = replace(message, text=text, reactions={})
        chats = {c: chat for c, chat in chats.items() if c in still_in}
        out: list[wire.Json] = []
        size = 0
        last = p.since
        for d in found:
            body = wire.update_body(d.ref, messages, chats)
            if body is None:  # its chat or message is gone for good: say so, keep the number
                body = {"type": "chat_left", "chat_id": d.ref.chat_id}
            size += len(wire.dumps(body))
            if out and size > MAX_DIFFERENCE_BYTES:
                break  # the client asks again from the last number it got
            out.append({"seq": d.seq, "update": body})
            last = d.seq
        if held:  # stop before a sealed DC's message; the rest comes once it unseals
            return {"updates": out, "seq": last, "more": False}
        newest = max(current, last)
        more = len(out) < len(found) or (len(found) == p.limit and last < newest)
        return {"updates": out, "seq": newest, "more": more}


__all__ = ["SyncService"]
