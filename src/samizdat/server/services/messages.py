"""Sending and changing messages; read receipts; typing; history and dialogs.

Every send is checked against the cached member list (no query), sealed and committed by the
store's group-commit writer, acknowledged only after the commit, then pushed to every other
device of every member, the sender's other devices included.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

from samizdat.bus.events import Push
from samizdat.core import rules
from samizdat.core.ids import ChatId, MessageId, UserId
from samizdat.core.model import Forward, Membership, Message
from samizdat.core.updates import UpdateKind, UpdateRef
from samizdat.protocol.errors import ErrorCode, NotFound, PermissionDenied
from samizdat.protocol.methods import (
    ChatIdParams,
    DeleteParams,
    DialogsParams,
    EditParams,
    ForwardParams,
    HistoryParams,
    ReactParams,
    ReadParams,
    SendMessageParams,
)
from samizdat.protocol.models import ChatKind
from samizdat.server import wire
from samizdat.server.deps import Caller, Deps
from samizdat.server.services.publish import publish_deliveries
from samizdat.store.sql import SendOutcome, fan_out

_TYPING_INTERVAL = 3.0
_TYPING_MAX_MEMBERS = 1_000


def forward_random_id(random_id: int, index: int) -> int:
    """The idempotency key of the index-th copy in a forward: derived in a space of its own,
    so it cannot collide with the client's next plain send (random_id + 1, say)."""
    digest = hashlib.blake2b(b"forward:%d:%d" % (random_id, index), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class MessageService:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self._typing: dict[tuple[UserId, ChatId], float] = {}

    async def _store(self, caller: Caller, membership: Membership, msg: Message) -> SendOutcome:
        started = time.perf_counter()
        # The gateway lets requests finish when their socket drops, so a message that gets
        # committed is still pushed to everyone else rather than waiting for their resync.
        outcome = await self._commit_and_push(caller, membership, msg)
        self.deps.metrics.send_latency.observe(time.perf_counter() - started)
        return outcome

    async def _commit_and_push(
        self, caller: Caller, membership: Membership, msg: Message
    ) -> SendOutcome:
        store = await self.deps.dcs.chat_store(msg.chat_id)
        outcome = await self.deps.dcs.send(store, msg, membership.members)
        if not outcome.duplicate:
            body = wire.dumps({"type": "new_message", "message": wire.message(outcome.message)})
            targets = tuple((d.user_id, d.seq) for d in outcome.deliveries)
            await self.deps.publish(Push(body, targets, caller.connection_id))
            self.deps.metrics.messages.inc()
        return outcome

    async def send(self, caller: Caller, p: SendMessageParams) -> wire.Json:
        membership = await self.deps.membership(caller, p.chat_id)
        text = rules.validate_text(p.text)
        if p.reply_to_id is not None:
            await self._existing(membership.chat.id, [MessageId(p.reply_to_id)])
        msg = Message(
            id=MessageId(self.deps.new_id()),
            chat_id=membership.chat.id,
            sender_id=caller.user_id,
            date=self.deps.clock.now(),
            text=text,
            random_id=p.random_id,
            reply_to_id=MessageId(p.reply_to_id) if p.reply_to_id else None,
        )
        outcome = await self._store(caller, membership, msg)
        return {"message": wire.message(outcome.message), "seq": outcome.sender_seq}

    async def _existing(self, chat_id: ChatId, ids: list[MessageId]) -> dict[MessageId, Message]:
        store = await self.deps.dcs.chat_store(chat_id)
        found = await store.get_messages(chat_id, ids)
        if len(found) != len(set(ids)) or any(m.deleted for m in found.values()):
            raise NotFound("message not found in this chat", code=ErrorCode.MESSAGE_NOT_FOUND)
        return found

    async def forward(self, caller: Caller, p: ForwardParams) -> wire.Json:
        source = await self.deps.membership(caller, p.from_chat_id)
        target = await self.deps.membership(caller, p.to_chat_id)
        originals = await self._existing(source.chat.id, [MessageId(i) for i in p.message_ids])
        now = self.deps.clock.now()
        drafts = []
        for index, message_id in enumerate(dict.fromkeys(p.message_ids)):
            original = originals[MessageId(message_id)]
            origin = original.forward or Forward(original.chat_id, original.id, original.sender_id)
            drafts.append(
                Message(
                    id=MessageId(self.deps.new_id()),
                    chat_id=target.chat.id,
                    sender_id=caller.user_id,
                    date=now,
                    text=original.text,
                    random_id=forward_random_id(p.random_id, index),
                    forward=origin,
                )
            )
        outcomes = await asyncio.gather(*(self._store(caller, target, d) for d in drafts))
        return {
            "messages": [wire.message(o.message) for o in outcomes],
            "seq": max(o.sender_seq for o in outcomes),
        }

    async def edit(self, caller: Caller, p: EditParams) -> wire.Json:
        membership = await self.deps.membership(caller, p.chat_id)
        text = rules.validate_text(p.text)
        store = await self.deps.dcs.chat_store(membership.chat.id)
        message_id = MessageId(p.message_id)
        original = (await self._existing(membership.chat.id, [message_id]))[message_id]
        rules.require_author(original, caller.user_id)
        now = self.deps.clock.now()
        async with self.deps.dcs.chat_write(store, caller.user_id, membership.members) as change:
            await store.edit_message(change.conn, original, text, now)
            await change.append(
                fan_out(
                    membership.members,
                    UpdateRef(UpdateKind.MESSAGE_EDITED, membership.chat.id, (message_id,)),
                ),
            )
        edited = (await store.get_messages(membership.chat.id, [message_id]))[message_id]
        await publish_deliveries(
            self.deps,
            change.deliveries,
            messages={message_id: edited},
            skip_connection=caller.connection_id,
        )
        return {"message": wire.message(edited), "seq": change.own_seq(caller.user_id) or 0}

    async def delete(self, caller: Caller, p: DeleteParams) -> wire.Json:
        membership = await self.deps.membership(caller, p.chat_id)
        chat = membership.chat
        ids = [MessageId(i) for i in dict.fromkeys(p.message_ids)]
        found = await self._existing(chat.id, ids)
        store = await self.deps.dcs.chat_store(chat.id)
        ref = UpdateRef(
            UpdateKind.MESSAGES_DELETED, chat.id, tuple(ids), for_everyone=p.for_everyone
        )
        if p.for_everyone:
            is_admin = chat.kind is ChatKind.GROUP and caller.user_id in chat.admin_ids
            if not is_admin and any(m.sender_id != caller.user_id for m in found.values()):
                raise PermissionDenied(
                    "only the author (or a group admin) can delete for everyone",
                    code=ErrorCode.NOT_AUTHOR,
                )
            targets = fan_out(membership.members, ref)
        else:
            targets = [(caller.user_id, ref)]
        async with self.deps.dcs.chat_write(store, caller.user_id, membership.members) as change:
            if p.for_everyone:
                await store.delete_for_everyone(change.conn, ids)
            else:
                await store.hide_for(change.conn, caller.user_id, ids)
            await change.append(targets)
        await publish_deliveries(self.deps, change.deliveries, skip_connection=caller.connection_id)
        return {"seq": change.own_seq(caller.user_id) or 0}

    async def react(self, caller: Caller, p: ReactParams) -> wire.Json:
        membership = await self.deps.membership(caller, p.chat_id)
        message_id = MessageId(p.message_id)
        await self._existing(membership.chat.id, [message_id])
        store = await self.deps.dcs.chat_store(membership.chat.id)
        ref = UpdateRef(
            UpdateKind.REACTION,
            membership.chat.id,
            (message_id,),
            actor=caller.user_id,
            emoji=p.emoji,
        )
        async with self.deps.dcs.chat_write(store, caller.user_id, membership.members) as change:
            old = await store.set_reaction(change.conn, message_id, caller.user_id, p.emoji)
            if old != p.emoji:
                await change.append(fan_out(membership.members, ref))
        updated = await store.get_messages(membership.chat.id, [message_id])
        await publish_deliveries(
            self.deps, change.deliveries, messages=updated, skip_connection=caller.connection_id
        )
        return {"seq": change.own_seq(caller.user_id)}

    async def read(self, caller: Caller, p: ReadParams) -> wire.Json:
        membership = await self.deps.membership(caller, p.chat_id)
        chat_id = membership.chat.id
        store = await self.deps.dcs.chat_store(chat_id)
        async with self.deps.dcs.chat_write(store, caller.user_id, membership.members) as change:
            previous, senders, max_id = await store.mark_read(
                change.conn, chat_id, caller.user_id, p.max_id
            )
            if max_id > previous:
                targets = [
                    (caller.user_id, UpdateRef(UpdateKind.READ_INBOX, chat_id, max_id=max_id))
                ]
                outbox = UpdateRef(
                    UpdateKind.READ_OUTBOX, chat_id, actor=caller.user_id, max_id=max_id
                )
                targets += fan_out(senders, outbox)
                await change.append(targets)
        await publish_deliveries(self.deps, change.deliveries, skip_connection=caller.connection_id)
        return {"seq": change.own_seq(caller.user_id)}

    async def typing(self, caller: Caller, p: ChatIdParams) -> wire.Json:
        """Pushed at most once per ``_TYPING_INTERVAL`` per user and chat, and not at all in
        very large groups: otherwise one cheap request fans out to thousands of sockets."""
        membership = await self.deps.membership(caller, p.chat_id)
        key = (caller.user_id, membership.chat.id)
        now = self.deps.clock.now()
        if now - self._typing.get(key, 0.0) < _TYPING_INTERVAL:
            return {"ok": True}
        if len(self._typing) > 100_000:
            self._typing.clear()
        self._typing[key] = now
        if len(membership.members) > _TYPING_MAX_MEMBERS:
            return {"ok": True}
        body = wire.dumps(
            {"type": "typing", "chat_id": membership.chat.id, "user_id": caller.user_id}
        )
        targets = tuple((u, None) for u in membership.members if u != caller.user_id)
        await self.deps.publish(Push(body, targets))
        return {"ok": True}

    async def history(self, caller: Caller, p: HistoryParams) -> wire.Json:
        membership = await self.deps.membership(caller, p.chat_id)
        before = MessageId(p.before_id) if p.before_id else None
        store = await self.deps.dcs.chat_store(membership.chat.id)
        found = await store.history(caller.user_id, membership.chat.id, before, p.limit)
        return {"messages": [wire.message(m) for m in found]}

    async def dialogs(self, caller: Caller, p: DialogsParams) -> wire.Json:
        rows = await self.deps.dcs.dialogs(caller.user_id, p.limit)
        return {"dialogs": [wire.dialog(d, caller.user_id) for d in rows]}


__all__ = ["MessageService"]
