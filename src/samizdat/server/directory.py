"""A per-node cache of chats and their members, so the send path does no membership query.

Every node drops an entry when any node reports a change (bus ``ChatChanged``); the node that
made the change drops it before it publishes, so its own next read is fresh.
"""

from __future__ import annotations

from collections import OrderedDict

from samizdat.core.ids import ChatId
from samizdat.core.model import Membership
from samizdat.store.sql import SqlStore


class ChatDirectory:
    def __init__(self, store: SqlStore, *, max_chats: int = 50_000) -> None:
        self._store = store
        self._cache: OrderedDict[int, Membership] = OrderedDict()
        self._max = max_chats

    async def get(self, chat_id: ChatId) -> Membership | None:
        found = self._cache.get(chat_id)
        if found is not None:
            self._cache.move_to_end(chat_id)
            return found
        loaded = await self._store.load_membership(chat_id)
        if loaded is not None:
            self._cache[chat_id] = loaded
            if len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return loaded

    def invalidate(self, chat_id: int) -> None:
        self._cache.pop(chat_id, None)


__all__ = ["ChatDirectory"]
