"""Private chats and groups: create, members, admins, rename, leave."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from samizdat.core import rules
from samizdat.core.ids import ChatId, UserId
from samizdat.core.model import Chat, Membership
from samizdat.core.updates import Delivery, UpdateKind, UpdateRef
from samizdat.protocol.errors import ErrorCode, NotFound
from samizdat.protocol.methods import (
    AddMembersParams,
    ChatIdParams,
    CreateGroupParams,
    MembersParams,
    OpenPrivateParams,
    RemoveMemberParams,
    RenameParams,
    SetAdminParams,
)
from samizdat.protocol.models import ChatKind
from samizdat.server import wire
from samizdat.server.deps import Caller, Deps
from samizdat.server.services.publish import publish_deliveries
from samizdat.store.sql import SqlStore, StoreConflict, fan_out


class ChatService:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def _require_users(self, user_ids: list[UserId]) -> None:
        missing = set(user_ids) - await self.deps.dcs.existing_user_ids(user_ids)
        if missing:
            raise NotFound(
                f"{len(missing)} of those users do not exist", code=ErrorCode.USER_NOT_FOUND
            )

    async def _change(
        self,
        store: SqlStore,
        chat_id: ChatId,
        write: Callable[[AsyncConnection], Awaitable[None]],
        notify: Iterable[UserId],
        *,
        also: Sequence[tuple[UserId, UpdateRef]] = (),
    ) -> Chat:
        """One change to a chat: ``write`` it, tell ``notify`` (chat_updated) and ``also``
        in the same transaction, then refresh caches and push; returns the chat as it now is."""
        ref = UpdateRef(UpdateKind.CHAT_UPDATED, chat_id)
        targets = [*also, *fan_out(notify, ref)]
        async with self.deps.dcs.chat_write(store, None, [u for u, _ in targets]) as change:
            # Update counters first, the chat second: the same lock order as the group commit
            # (which bumps counters, then moves the chat's last message), so two nodes writing
            # to one chat on PostgreSQL cannot deadlock.
            await change.append(targets)
            await write(change.conn)
        return await self._announce(chat_id, change.deliveries)

    async def _announce(self, chat_id: ChatId, deliveries: list[Delivery]) -> Chat:
        """Refresh the cache, tell other nodes, push the new chat state; return it."""
        await self.deps.chat_changed(chat_id)
        membership = await self.deps.chats.get(chat_id)
        if membership is None:
            raise NotFound("chat not found", code=ErrorCode.CHAT_NOT_FOUND)
        await publish_deliveries(self.deps, deliveries, chats={chat_id: membership.chat})
        return membership.chat

    async def open_private(self, caller: Caller, p: OpenPrivateParams) -> wire.Json:
        peer = UserId(p.user_id)
        pair = rules.private_pair(caller.user_id, peer)
        dcs = self.deps.dcs
        chat_id = await dcs.private_chat_id(pair)
        if chat_id is None:
            await self._require_users([peer])
            store = await dcs.new_chat_store(caller.user_id, pair)
            now = self.deps.clock.now()
            chat = Chat(
                ChatId(self.deps.new_id()),
                ChatKind.PRIVATE,
                "",
                caller.user_id,
                now,
                2,
                frozenset(),
                pair,
            )
            try:
                async with store.write() as conn:
                    await store.insert_chat(conn, chat, list(pair), now)
                chat_id = chat.id
                dcs.note_chat(chat_id, store)
            except StoreConflict:  # the peer opened it at the same moment
                chat_id = await dcs.private_chat_id(pair)
                if chat_id is None:
                    raise
        membership = await self.deps.membership(caller, chat_id)
        return wire.chat(membership.chat, caller.user_id)

    async def get(self, caller: Caller, p: ChatIdParams) -> wire.Json:
        return wire.chat((await self.deps.membership(caller, p.chat_id)).chat, caller.user_id)

    async def members(self, caller: Caller, p: MembersParams) -> wire.Json:
        membership = await self.deps.membership(caller, p.chat_id)
        store = await self.deps.dcs.chat_store(membership.chat.id)
        page = await store.member_page(membership.chat.id, p.offset, p.limit)
        return {"user_ids": page, "total": len(membership.members)}

    async def create_group(self, caller: Caller, p: CreateGroupParams) -> wire.Json:
        invited = [UserId(u) for u in dict.fromkeys(p.member_ids) if u != caller.user_id]
        await self._require_users(invited)
        now = self.deps.clock.now()
        chat = Chat(
            ChatId(self.deps.new_id()),
            ChatKind.GROUP,
            p.title,
            caller.user_id,
            now,
            1 + len(invited),
            frozenset({caller.user_id}),
        )
        everyone = [caller.user_id, *invited]
        store = await self.deps.dcs.new_chat_store(caller.user_id, None)
        self.deps.dcs.note_chat(chat.id, store)
        changed = await self._change(
            store, chat.id, lambda conn: store.insert_chat(conn, chat, everyone, now), everyone
        )
        return wire.chat(changed, caller.user_id)

    async def add(self, caller: Caller, p: AddMembersParams) -> wire.Json:
        membership = await self.deps.membership(caller, p.chat_id)
        rules.require_admin(membership.chat, caller.user_id)
        fresh = rules.members_to_add(membership, [UserId(u) for u in p.user_ids])
        await self._require_users(fresh)
        chat_id = membership.chat.id
        store = await self.deps.dcs.chat_store(chat_id)
        now = self.deps.clock.now()
        changed = await self._change(
            store,
            chat_id,
            lambda conn: store.insert_members(conn, chat_id, fresh, frozenset(), now),
            [*membership.members, *fresh],
        )
        return wire.chat(changed, caller.user_id)

    async def _drop_member(self, membership: Membership, user: UserId) -> Chat:
        chat_id = membership.chat.id
        store = await self.deps.dcs.chat_store(chat_id)
        return await self._change(
            store,
            chat_id,
            lambda conn: store.delete_member(conn, chat_id, user),
            [u for u in membership.members if u != user],
            also=[(user, UpdateRef(UpdateKind.CHAT_LEFT, chat_id))],
        )

    async def remove(self, caller: Caller, p: RemoveMemberParams) -> wire.Json:
        membership = await self.deps.membership(caller, p.chat_id)
        rules.check_removal(membership, caller.user_id, UserId(p.user_id))
        return wire.chat(await self._drop_member(membership, UserId(p.user_id)), caller.user_id)

    async def leave(self, caller: Caller, p: ChatIdParams) -> wire.Json:
        membership = await self.deps.membership(caller, p.chat_id)
        rules.check_leave(membership)
        await self._drop_member(membership, caller.user_id)
        return {"ok": True}

    async def rename(self, caller: Caller, p: RenameParams) -> wire.Json:
        membership = await self.deps.membership(caller, p.chat_id)
        rules.require_admin(membership.chat, caller.user_id)
        chat_id = membership.chat.id
        store = await self.deps.dcs.chat_store(chat_id)
        changed = await self._change(
            store,
            chat_id,
            lambda conn: store.rename_chat(conn, chat_id, p.title),
            membership.members,
        )
        return wire.chat(changed, caller.user_id)

    async def set_admin(self, caller: Caller, p: SetAdminParams) -> wire.Json:
        membership = await self.deps.membership(caller, p.chat_id)
        rules.check_admin_change(membership, caller.user_id, UserId(p.user_id))
        chat_id = membership.chat.id
        store = await self.deps.dcs.chat_store(chat_id)
        target = UserId(p.user_id)
        changed = await self._change(
            store,
            chat_id,
            lambda conn: store.set_admin(conn, chat_id, target, p.admin),
            membership.members,
        )
        return wire.chat(changed, caller.user_id)


__all__ = ["ChatService"]
