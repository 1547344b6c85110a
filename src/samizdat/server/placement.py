"""Where each record lives when a node serves several DCs, and moving updates between them.

- An **account** (profile, devices, contacts, device keys, update log) lives in its home DC,
  chosen from its phone number at sign-up (``[homing]``) and never moved.
- A **chat** (members, messages, reactions) lives in its creator's DC; a private chat between
  users of two DCs lives in the home DC of the lower user id, so two people opening one at
  the same moment from two DCs still get one chat.
- A change to a chat is one transaction in the chat's DC. Its updates for members homed
  elsewhere are queued there (``store/outbox.py``) and moved into their own update logs right
  after the commit, or by the background relay after a crash or while a DC is unreachable.
- Secret-chat ciphertexts wait in the sender's home DC; a device collects them from every DC.

Which DC holds a user or a chat is looked up once (each DC's database, a handful of queries)
and remembered: ids are never reused and records never move. With one DC configured every
lookup is that DC, with no query.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from samizdat.core.ids import ChatId, DeviceId, MessageId, UserId
from samizdat.core.model import Account, Device, DialogRow, Membership, Message
from samizdat.core.phone import Phone
from samizdat.core.updates import Delivery, UpdateKind, UpdateRef
from samizdat.protocol.errors import Conflict, ErrorCode, NotFound, SamizdatError, Unavailable
from samizdat.server.dc_keeper import DcKeeper
from samizdat.server.topology import DcSettings, HomingSettings
from samizdat.store.batch import SendOutcome, append_updates
from samizdat.store.keys import ClaimedKey, DeviceKeys
from samizdat.store.outbox import queue
from samizdat.store.secret_inbox import Envelope as SecretEnvelope
from samizdat.store.secret_inbox import check_addressed
from samizdat.store.sql import SqlStore

log = logging.getLogger(__name__)

#: Remembered placements before the memo starts over (ids are 8 bytes; a few MB at most).
MEMO_LIMIT = 1_000_000
RELAY_INTERVAL = 1.0
_T = TypeVar("_T")
MovedHandler = Callable[[SqlStore, list[Delivery], Mapping[MessageId, Message]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ServedDc:
    settings: DcSettings
    store: SqlStore
    keeper: DcKeeper


@dataclass(slots=True)
class ChatWrite:
    """One transaction in a chat's DC; ``append`` numbers updates for members homed there
    and queues the rest. ``deliveries`` are the local ones, to publish after the commit;
    ``own_seq`` is the caller's newest number, wherever their update log is."""

    router: DcRouter
    store: SqlStore
    conn: AsyncConnection
    caller: UserId | None
    deliveries: list[Delivery] = field(default_factory=list)
    queued: list[tuple[UserId, UpdateRef]] = field(default_factory=list)
    moved_seqs: list[int] = field(default_factory=list)

    async def append(self, targets: Sequence[tuple[UserId, UpdateRef]]) -> None:
        local, remote = await self.router.split(self.store, targets)
        self.deliveries += await append_updates(self.conn, local)
        await queue(self.conn, remote)
        self.queued += [(user, ref) for _, user, ref in remote]

    def own_seq(self, user: UserId) -> int | None:
        seqs = [d.seq for d in self.deliveries if d.user_id == user]
        seqs += self.moved_seqs if user == self.caller else []
        return max(seqs) if seqs else None


class DcRouter:
    """The served DCs' stores, and which one holds what."""

    def __init__(self, served: Sequence[ServedDc], homing: HomingSettings, default: str) -> None:
        self.served = {s.settings.id: s for s in served}
        self.stores = [s.store for s in served]
        self.default = self.served[default].store
        self.homing = homing
        self._single = self.stores[0] if len(self.stores) == 1 else None
        self._user_dc: dict[int, SqlStore] = {}
        self._chat_dc: dict[int, SqlStore] = {}
        #: Updates a caller homed outside the chat's DC waits to learn the number of, and
        #: the numbers once moved (whichever relay moves them).
        self._awaited: set[tuple[UserId, UpdateRef]] = set()
        self._moved: dict[tuple[UserId, UpdateRef], int] = {}
        self._relay_locks = {s.dc_id: asyncio.Lock() for s in self.stores}
        self._relay_task: asyncio.Task[None] | None = None
        self._username_lock = asyncio.Lock()
        #: Publishes deliveries moved from a source DC (wired by the app to the bus).
        #: Publishes deliveries moved from a source DC, with the messages already at hand.
        self.on_moved: MovedHandler | None = None

    def for_phone(self, phone: Phone) -> SqlStore:
        """The DC a new account for this number is homed in."""
        if self._single is not None:
            return self._single
        return self.served[self.homing.dc_for(phone, self.default.dc_id)].store

    # placement memo -------------------------------------------------------------------------
    def note_user(self, user_id: int, store: SqlStore) -> None:
        if self._single is None:
            _remember(self._user_dc, user_id, store)

    def note_chat(self, chat_id: int, store: SqlStore) -> None:
        if self._single is None:
            _remember(self._chat_dc, chat_id, store)

    async def _first(
        self, stores: Iterable[SqlStore], find: Callable[[SqlStore], Awaitable[_T | None]]
    ) -> tuple[SqlStore, _T] | None:
        """The first of ``stores`` where ``find`` finds something, and what it found."""
        for store in stores:
            found = await find(store)
            if found is not None:
                return store, found
        return None

    async def homes(self, user_ids: Iterable[UserId]) -> dict[UserId, SqlStore]:
        """Each user's home DC store. With several DCs unknown ids are left out; with one,
        every id maps to it without a query (callers that must know use
        ``existing_user_ids``)."""
        wanted = set(user_ids)
        if self._single is not None:
            return dict.fromkeys(wanted, self._single)
        out = {u: self._user_dc[u] for u in wanted if u in self._user_dc}
        missing = wanted - out.keys()
        for store in self.stores:
            if not missing:
                break
            for user in await store.existing_user_ids(missing):
                out[user] = store
                self.note_user(user, store)
            missing -= out.keys()
        return out

    async def find_user(self, user_id: UserId) -> SqlStore | None:
        if self._single is not None:
            return self._single
        known = self._user_dc.get(user_id)  # every request asks for its caller's DC
        return known if known is not None else (await self.homes([user_id])).get(user_id)

    async def user_store(self, user_id: UserId) -> SqlStore:
        """The user's home DC, which must be unsealed for anything of theirs to be served
        (a caller's own requests included); USER_NOT_FOUND if there is no such user."""
        found = await self.find_user(user_id)
        if found is None:
            raise NotFound("no such user", code=ErrorCode.USER_NOT_FOUND)
        found.keyring.require_unsealed()
        return found

    def _unsealed(self) -> list[SqlStore]:
        return [s for s in self.stores if s.keyring.unsealed]

    async def home_of_number(self, phone: Phone) -> SqlStore:
        """Where the account of a number is, else where it would be homed. An account stays
        in the DC it was made in even if the homing rules change later, so every unsealed DC
        is asked. (A sealed one cannot be: were the rules changed *and* its DC sealed, a
        number homed there could get a second account elsewhere meanwhile.)"""
        if self._single is not None:
            return self._single
        found = await self._first(
            self._unsealed(), lambda s: s.user_by_phone(s.keyring.phone_lookup(phone.e164))
        )
        return found[0] if found is not None else self.for_phone(phone)

    async def find_chat(self, chat_id: ChatId) -> SqlStore | None:
        if self._single is not None:
            return self._single
        if chat_id not in self._chat_dc:
            await self.load_membership(chat_id)  # finds and remembers its DC
        return self._chat_dc.get(chat_id)

    async def chat_store(self, chat_id: ChatId) -> SqlStore:
        """The chat's DC, unsealed; CHAT_NOT_FOUND if no DC holds it."""
        store = await self.find_chat(chat_id)
        if store is None:
            raise NotFound("chat not found", code=ErrorCode.CHAT_NOT_FOUND)
        store.keyring.require_unsealed()
        return store

    async def load_membership(self, chat_id: ChatId) -> Membership | None:
        """For the chat directory: the chat and its members, from whichever DC holds it."""
        known = self._single or self._chat_dc.get(chat_id)
        if known is not None:
            return await known.load_membership(chat_id)
        found = await self._first(self.stores, lambda s: s.load_membership(chat_id))
        if found is None:
            return None
        self.note_chat(chat_id, found[0])
        return found[1]

    async def new_chat_store(self, creator: UserId, pair: tuple[UserId, UserId] | None) -> SqlStore:
        """Where a new chat goes: the creator's DC (a private chat: the lower id's DC)."""
        return await self.user_store(pair[0] if pair is not None else creator)

    # reads across DCs ----------------------------------------------------------------------
    async def existing_user_ids(self, user_ids: Iterable[UserId]) -> set[UserId]:
        if self._single is not None:
            return await self._single.existing_user_ids(user_ids)
        return set(await self.homes(user_ids))

    async def get_users(self, user_ids: Iterable[UserId]) -> dict[UserId, Account]:
        """Accounts from their home DCs; those in a sealed DC are left out, as if unknown."""
        by_store = _group(await self.homes(user_ids))
        out: dict[UserId, Account] = {}
        for store, users in by_store:
            if store.keyring.unsealed:
                out.update(await store.get_users(users))
        return out

    async def get_user(self, user_id: UserId) -> Account | None:
        store = await self.find_user(user_id)
        if store is None:
            return None
        store.keyring.require_unsealed()
        return await store.get_user(user_id)

    async def user_by_username(self, key: str) -> Account | None:
        """Usernames are plain text, so a sealed DC's are found too (and stay taken)."""
        found = await self._first(self.stores, lambda s: s.user_by_username(key))
        if found is None:
            return None
        self.note_user(found[1].id, found[0])
        return found[1]

    async def set_username(self, user_id: UserId, name: str | None, key: str | None) -> None:
        """Set or clear a username. With several DCs, it must be free in the others too: they
        are asked first, one change at a time on this node (two nodes may still race: each
        DC's unique index only covers its own accounts)."""
        store = await self.user_store(user_id)
        if self._single is not None or key is None:
            await store.set_username(user_id, name, key)
            return
        async with self._username_lock:
            holder = await self.user_by_username(key)
            if holder is not None and holder.id != user_id:
                raise Conflict("that username is taken", code=ErrorCode.USERNAME_TAKEN)
            await store.set_username(user_id, name, key)

    async def private_chat_id(self, pair: tuple[UserId, UserId]) -> ChatId | None:
        found = await self._first(self.stores, lambda s: s.private_chat_id(pair))
        if found is None:
            return None
        self.note_chat(found[1], found[0])
        return found[1]

    async def messages_by_id(self, ids: Iterable[MessageId]) -> dict[MessageId, Message]:
        """Messages from whichever unsealed DC holds them (see ``any_sealed``)."""
        wanted = set(ids)
        out: dict[MessageId, Message] = {}
        for store in self._unsealed():
            if missing := wanted - out.keys():
                out.update(await store.messages_by_id(missing))
        return out

    @property
    def any_sealed(self) -> bool:
        """Whether some served DC is sealed: a record not found may be there."""
        return any(not s.keyring.unsealed for s in self.stores)

    async def member_chat_ids(self, user_id: UserId, chat_ids: Iterable[ChatId]) -> set[ChatId]:
        wanted = set(chat_ids)
        found: set[ChatId] = set()
        for store in self.stores:
            found |= await store.member_chat_ids(user_id, wanted - found)
        return found

    async def dialogs(self, user_id: UserId, limit: int) -> list[DialogRow]:
        """The user's chats from every unsealed DC, newest first (one list, as from one DC)."""
        lists = [await s.dialogs(user_id, limit) for s in self._unsealed()]
        if len(lists) == 1:
            return lists[0]
        merged = [row for rows in lists for row in rows]
        return sorted(merged, key=_dialog_order, reverse=True)[:limit]

    async def device_by_token(self, digest: bytes) -> Device | None:
        found = await self._first(self.stores, lambda s: s.device_by_token(digest))
        if found is None:
            return None
        self.note_user(found[1].user_id, found[0])
        return found[1]

    async def list_devices_by_id(self, device_ids: Sequence[DeviceId]) -> list[Device]:
        out: list[Device] = []
        for store in self.stores:
            out += await store.list_devices_by_id(device_ids)
        return out

    def require_any_unsealed(self) -> None:
        """UNAVAILABLE when no served DC is unsealed (one DC: that DC)."""
        if not any(s.keyring.unsealed for s in self.stores):
            self.default.keyring.require_unsealed()

    # end-to-end keys and secret-chat ciphertexts ---------------------------------------------
    async def query_keys(self, user_ids: Iterable[UserId]) -> list[DeviceKeys]:
        found: list[DeviceKeys] = []
        for store, users in _group(await self.homes(user_ids)):
            if store.keyring.unsealed:
                found += await store.keys.query(users)
        return sorted(found, key=lambda d: (d.user_id, d.device_id))

    async def claim_keys(self, device_ids: Iterable[DeviceId]) -> list[ClaimedKey]:
        wanted = list(device_ids)
        claimed: list[ClaimedKey] = []
        for store in self._unsealed():
            claimed += await store.keys.claim(wanted)
        return claimed

    async def deliver_secrets(
        self,
        sender: SqlStore,
        envelopes: Sequence[SecretEnvelope],
        recipients: Sequence[UserId],
        sender_device: DeviceId,
    ) -> None:
        """Queue in the sender's DC, all or nothing, after checking every DC's devices."""
        if self._single is not None:
            await sender.secrets.deliver(
                envelopes, recipients=recipients, sender_device=sender_device
            )
            return
        wanted = {e.device_id for e in envelopes}
        live: set[DeviceId] = set()
        published: set[DeviceId] = set()
        for store in self.stores:
            live |= await store.secrets.live_devices(wanted)
            if recipients:
                published |= await store.secrets.published_devices(recipients)
        check_addressed(wanted, live, published, sender_device)
        await sender.secrets.deliver(envelopes, sender_device=sender_device, verified=True)

    async def pending_secrets(self, device_id: DeviceId, limit: int) -> list[SecretEnvelope]:
        found: list[SecretEnvelope] = []
        for store in self._unsealed():
            found += await store.secrets.pending(device_id, limit)
        return sorted(found, key=lambda e: e.id)[:limit]

    async def ack_secrets(self, device_id: DeviceId, ids: Sequence[int]) -> int:
        return sum([await s.secrets.ack(device_id, ids) for s in self._unsealed()])

    async def drop_secrets_for(self, device_ids: Sequence[DeviceId]) -> None:
        for store in self.stores:
            await store.secrets.drop_for_devices(device_ids)

    # writes ----------------------------------------------------------------------------------
    async def split(
        self, store: SqlStore, targets: Sequence[tuple[UserId, UpdateRef]]
    ) -> tuple[list[tuple[UserId, UpdateRef]], list[tuple[str, UserId, UpdateRef]]]:
        """Targets homed in ``store``'s DC, and (home DC, user, ref) for the rest."""
        if self._single is not None or not targets:
            return list(targets), []
        homes = await self.homes(u for u, _ in targets)
        local = [(u, r) for u, r in targets if homes.get(u) is store]
        remote = [
            (homes[u].dc_id, u, r) for u, r in targets if u in homes and homes[u] is not store
        ]
        return local, remote

    @contextlib.asynccontextmanager
    async def chat_write(
        self, store: SqlStore, caller: UserId | None, members: Iterable[UserId] = ()
    ) -> AsyncIterator[ChatWrite]:
        """A transaction in ``store``'s DC; after it commits, queued updates are moved.

        ``members`` are looked up before the transaction opens, so finding their DCs never
        holds this DC's write lock."""
        if self._single is None:
            await self.homes(members)
        async with store.write() as conn:
            write = ChatWrite(self, store, conn, caller)
            yield write
        if write.queued:
            mine = {(u, ref) for u, ref in write.queued if u == caller}
            write.moved_seqs = list((await self._relay_awaiting(store, mine, {})).values())

    async def send(
        self, store: SqlStore, message: Message, members: Iterable[UserId]
    ) -> SendOutcome:
        """Group-commit a message in its chat's DC, then move updates for members elsewhere."""
        recipients = frozenset(members)
        known = self._user_dc
        if self._single is not None or all(known.get(u) is store for u in recipients):
            return await store.send(message, recipients)  # everyone homed in the chat's DC
        ref = UpdateRef(UpdateKind.NEW_MESSAGE, message.chat_id, (message.id,))
        local, remote = await self.split(store, [(u, ref) for u in recipients])
        outcome = await store.send(
            message, frozenset(u for u, _ in local), tuple((dc, u) for dc, u, _ in remote)
        )
        if remote and not outcome.duplicate:
            mine = {(message.sender_id, ref)} if not outcome.sender_seq else set()
            seqs = await self._relay_awaiting(store, mine, {message.id: outcome.message})
            if mine:
                outcome = replace(outcome, sender_seq=seqs.get((message.sender_id, ref), 0))
        return outcome

    async def _relay_awaiting(
        self,
        source: SqlStore,
        awaited: set[tuple[UserId, UpdateRef]],
        known: Mapping[MessageId, Message],
    ) -> dict[tuple[UserId, UpdateRef], int]:
        """After a commit: move what it queued now if possible, and return the numbers of
        ``awaited`` updates (whichever relay moved them). The change is committed whatever
        happens here; anything left is moved by the background relay."""
        self._awaited |= awaited
        try:
            await self.relay(source, known)
        except Exception:
            log.exception("moving updates after a commit failed; the relay retries")
        finally:
            self._awaited -= awaited
        return {pair: seq for pair in awaited if (seq := self._moved.pop(pair, 0))}

    async def relay(
        self, source: SqlStore, known: Mapping[MessageId, Message] | None = None
    ) -> None:
        """Move ``source``'s queued updates into their members' home DCs, oldest first, one
        target DC at a time: a DC that is down holds back only the updates bound for it."""
        async with self._relay_locks[source.dc_id]:
            for target in self.stores:
                if target is not source:
                    await self._relay_to(source, target, known or {})

    async def _relay_to(
        self, source: SqlStore, target: SqlStore, known: Mapping[MessageId, Message]
    ) -> None:
        while queued := await source.outbox.queued(target.dc_id):
            try:
                moved = await target.outbox.apply(source.dc_id, queued, time.time())
            except (SQLAlchemyError, SamizdatError) as exc:
                log.warning(
                    "could not move updates to another DC; will retry",
                    extra={"dc": target.dc_id, "error": type(exc).__name__},
                )
                return
            await source.outbox.forget([q.id for q in queued])
            for d in moved:
                if (d.user_id, d.ref) in self._awaited:
                    self._moved[(d.user_id, d.ref)] = d.seq
            if moved and self.on_moved is not None:
                try:
                    await self.on_moved(source, moved, known)
                except Exception:  # numbered already: a device that missed the push syncs
                    log.exception("pushing moved updates failed")

    async def start(self) -> None:
        if self._single is None:
            self._relay_task = asyncio.create_task(self._relay_forever(), name="dc-relay")

    async def stop(self) -> None:
        if self._relay_task is not None:
            self._relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay_task

    async def _relay_forever(self) -> None:
        """Moves what a crash or an unreachable DC left queued."""
        while True:
            await asyncio.sleep(RELAY_INTERVAL)
            for store in self.stores:
                try:
                    await self.relay(store)
                except (SQLAlchemyError, Unavailable) as exc:
                    log.warning(
                        "relay failed", extra={"dc": store.dc_id, "error": type(exc).__name__}
                    )
                except Exception:
                    log.exception("relay failed")


def _remember(memo: dict[int, SqlStore], key: int, value: SqlStore) -> None:
    if len(memo) >= MEMO_LIMIT:
        memo.clear()
    memo[key] = value


def _group(homes: dict[UserId, SqlStore]) -> list[tuple[SqlStore, list[UserId]]]:
    by_dc: dict[str, tuple[SqlStore, list[UserId]]] = {}
    for user, store in homes.items():
        by_dc.setdefault(store.dc_id, (store, []))[1].append(user)
    return list(by_dc.values())


def _dialog_order(row: DialogRow) -> int:
    return row.last_message.id if row.last_message is not None else row.chat.id


__all__ = ["ChatWrite", "DcRouter", "ServedDc"]
