"""A per-node cache of chats and their members, so the send path does no membership query.

Every node drops an entry when any node reports a change (bus ``ChatChanged``); the node that
made the change drops it before it publishes, so its own next read is fresh. A load that was
already under way when any change was reported is not cached (a generation counter tells), and
entries expire after ``ttl`` seconds, a backstop should a bus event ever be lost.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from samizdat.core.ids import ChatId
from samizdat.core.model import Membership


class MembershipSource(Protocol):
    async def load_membership(self, chat_id: ChatId) -> Membership | None: ...


class ChatDirectory:
    def __init__(
        self,
        store: MembershipSource,
        *,
        max_members: int = 5_000_000,
        ttl: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._cache: OrderedDict[int, tuple[Membership, float]] = OrderedDict()
        self._generation = 0
        self._members_held = 0
        self._max_members = max_members
        self._ttl = ttl
        self._monotonic = monotonic

    async def get(self, chat_id: ChatId) -> Membership | None:
        found = self._cache.get(chat_id)
        now = self._monotonic()
        if found is not None:
            membership, loaded_at = found
            if now - loaded_at < self._ttl:
                self._cache.move_to_end(chat_id)
                return membership
            self._drop(chat_id)
        generation = self._generation
        loaded = await self._store.load_membership(chat_id)
        if loaded is not None and self._generation == generation:
            self._drop(chat_id)
            self._cache[chat_id] = (loaded, now)
            self._members_held += len(loaded.members)
            while self._members_held > self._max_members and len(self._cache) > 1:
                oldest = next(iter(self._cache))
                self._drop(oldest)
        return loaded

    def invalidate(self, chat_id: int) -> None:
        self._generation += 1
        self._drop(chat_id)

    def _drop(self, chat_id: int) -> None:
        entry = self._cache.pop(chat_id, None)
        if entry is not None:
            self._members_held -= len(entry[0].members)


__all__ = ["ChatDirectory"]
