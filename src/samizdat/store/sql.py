"""The SQL store: every query written once in SQLAlchemy Core, for SQLite and PostgreSQL.

Writes that users wait on most (sends) go through a group-commit writer: sends queue up while
the previous batch commits, then the whole batch commits in one transaction of a handful of
statements, and only then is each sender acknowledged. Other writes run in ``write()``
transactions, serialised with the batches by one lock per node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from samizdat.core.ids import ChatId, DeviceId, MessageId, UserId
from samizdat.core.login_codes import PendingCode
from samizdat.core.model import Account, Chat, Device, DialogRow, Membership, Message
from samizdat.core.updates import Delivery
from samizdat.crypto import Keyring
from samizdat.protocol.errors import Conflict, ErrorCode, NotFound, Unavailable
from samizdat.protocol.models import PhoneVisibility
from samizdat.store import rows
from samizdat.store.batch import (
    SendOutcome,
    append_updates,
    build_messages_sync,
    fan_out,
)
from samizdat.store.database import Database, StoreConflict
from samizdat.store.dc_keys import DcKeyTable
from samizdat.store.engine import Engines
from samizdat.store.group_commit import GroupCommit
from samizdat.store.identity import DAY, Custody, IdentityRecords
from samizdat.store.keys import KeyStore
from samizdat.store.outbox import Outbox
from samizdat.store.secret_inbox import SecretInbox
from samizdat.store.tables import (
    chats,
    contacts,
    devices,
    hidden_messages,
    login_codes,
    members,
    messages,
    reactions,
    update_seqs,
    updates,
    users,
)

log = logging.getLogger(__name__)
_TOUCH_DEVICE = (
    update(devices).where(devices.c.id == bindparam("d")).values(last_seen_at=bindparam("t"))
)
_T = TypeVar("_T")
#: How long a DC remembers which outbox rows of other DCs it applied (a row is normally
#: deleted at its source within a second of being applied).
OUTBOX_MARK_SECONDS = 30 * DAY


class SqlStore:
    """One DC's database. Construct, ``await start()``, and ``await close()`` when done."""

    def __init__(
        self,
        engines: Engines,
        keyring: Keyring,
        custody: Custody,
        *,
        max_batch: int = 1024,
        secret_retention: float = 7 * 24 * 3600.0,
        ip_retention: float = 365 * DAY,
    ) -> None:
        self.engines = engines
        self.keyring = keyring
        self.db = Database(engines)
        self.identity = IdentityRecords(
            self.db, keyring, custody, ip_retention_seconds=ip_retention
        )
        self.dc_keys = DcKeyTable(self.db)
        self.commits = GroupCommit(self.db, keyring, max_batch=max_batch)
        self.keys = KeyStore(self.db)
        self.secrets = SecretInbox(self.db)
        self.outbox = Outbox(self.db)
        #: The DC this database belongs to (its id in configuration).
        self.dc_id = keyring.dc_id
        #: Undelivered secret ciphertexts older than this are erased (seconds).
        self.secret_retention = secret_retention
        self._ticks = 0
        self.write = self.db.write
        self._read = self.db.read
        self._housekeeping_task: asyncio.Task[None] | None = None
        self._seen: dict[DeviceId, float] = {}

    async def start(self) -> None:
        self.commits.start()
        self._housekeeping_task = asyncio.create_task(self._housekeeping(), name="housekeeping")

    async def _housekeeping(self, interval: float = 1.0) -> None:
        """Every second: write last-seen times, and checkpoint SQLite's WAL off the loop."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush_seen()
                await self.identity.flush()
                await self.db.checkpoint()
                self._ticks += 1
                if self._ticks % 60 == 0:
                    await self.secrets.expire(time.time() - self.secret_retention)
                if self._ticks % 3600 == 1:
                    await self.identity.expire()
                    await self.outbox.prune_applied(time.time() - OUTBOX_MARK_SECONDS)
            except (SQLAlchemyError, Unavailable) as exc:
                log.warning("housekeeping failed", extra={"error": type(exc).__name__})

    async def close(self) -> None:
        await self.commits.stop()
        if self._housekeeping_task is not None:
            self._housekeeping_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping_task
        with contextlib.suppress(Unavailable):
            await self.flush_seen()
            await self.identity.flush()
        await self.db.close()

    async def user_count(self) -> int:
        async with self._read() as conn:
            return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())

    async def ping(self) -> None:
        async with self._read() as conn:
            await conn.execute(select(1))

    async def send(
        self,
        message: Message,
        recipients: frozenset[UserId],
        remote: tuple[tuple[str, UserId], ...] = (),
    ) -> SendOutcome:
        """Store a message durably and number its updates; returns after the commit.

        ``recipients`` are the members homed in this DC; ``remote`` pairs (home DC, member)
        get an outbox row each. A message whose (sender, random_id) already exists is not
        stored again: the original comes back with ``duplicate=True``.
        """
        return await self.commits.send(message, recipients, remote)

    # --- login codes ---------------------------------------------------------------------
    async def claim_code_attempt(
        self, lookup: bytes, now: float, max_attempts: int
    ) -> PendingCode | None:
        """Count one attempt at the pending code, atomically; return the code as it was.

        Only a live code with attempts to spare is counted, in one conditional UPDATE, so
        concurrent guesses cannot share one attempt: at most ``max_attempts`` ever get to
        compare. If none could be counted, the stored (expired or exhausted) code or None.
        """
        async with self.write() as conn:
            claimed = (
                await conn.execute(
                    update(login_codes)
                    .where(
                        login_codes.c.phone_lookup == lookup,
                        login_codes.c.attempts < max_attempts,
                        login_codes.c.expires_at > now,
                    )
                    .values(attempts=login_codes.c.attempts + 1)
                    .returning(
                        login_codes.c.code_digest, login_codes.c.expires_at, login_codes.c.attempts
                    )
                )
            ).first()
            if claimed is not None:
                return PendingCode(claimed.code_digest, claimed.expires_at, claimed.attempts - 1)
            row = (
                await conn.execute(select(login_codes).where(login_codes.c.phone_lookup == lookup))
            ).first()
        return PendingCode(row.code_digest, row.expires_at, row.attempts) if row else None

    async def put_code(self, lookup: bytes, digest: bytes, expires_at: float) -> None:
        async with self.write() as conn:
            await conn.execute(delete(login_codes).where(login_codes.c.phone_lookup == lookup))
            await conn.execute(
                insert(login_codes).values(
                    phone_lookup=lookup, code_digest=digest, expires_at=expires_at, attempts=0
                )
            )

    async def consume_code(self, conn: AsyncConnection, lookup: bytes) -> bool:
        """Delete the pending code inside a sign-in transaction; False if another took it."""
        result = await conn.execute(delete(login_codes).where(login_codes.c.phone_lookup == lookup))
        return bool(result.rowcount)

    # --- accounts --------------------------------------------------------------------------
    async def user_by_phone(self, lookup: bytes) -> Account | None:
        async with self._read() as conn:
            row = (await conn.execute(select(users).where(users.c.phone_lookup == lookup))).first()
        return rows.account(row._mapping) if row else None

    async def get_user(self, user_id: UserId) -> Account | None:
        found = await self.get_users([user_id])
        return found.get(user_id)

    async def get_users(self, user_ids: Iterable[UserId]) -> dict[UserId, Account]:
        ids = list(set(user_ids))
        if not ids:
            return {}
        async with self._read() as conn:
            result = await conn.execute(select(users).where(users.c.id.in_(ids)))
            return {UserId(r.id): rows.account(r._mapping) for r in result}

    async def existing_user_ids(self, user_ids: Iterable[UserId]) -> set[UserId]:
        ids = list(set(user_ids))
        async with self._read() as conn:
            result = await conn.execute(select(users.c.id).where(users.c.id.in_(ids)))
            return {UserId(r.id) for r in result}

    async def user_by_username(self, key: str) -> Account | None:
        async with self._read() as conn:
            row = (await conn.execute(select(users).where(users.c.username_key == key))).first()
        return rows.account(row._mapping) if row else None

    async def user_phone(self, user_id: UserId) -> str | None:
        """The number its owner lets others see, or None (the default: nobody sees it, and
        the only other copy is sealed to the custodians)."""
        async with self._read() as conn:
            sealed = (
                await conn.execute(select(users.c.phone_shown).where(users.c.id == user_id))
            ).scalar()
        return self.keyring.open_phone(user_id, sealed) if sealed is not None else None

    async def own_profile(self, user_id: UserId) -> tuple[Account, str | None, int] | None:
        """A user's account, phone number and newest update number, in one query (what a
        device needs when it connects)."""
        async with self._read() as conn:
            row = (
                await conn.execute(
                    select(users, update_seqs.c.seq)
                    .join(update_seqs, update_seqs.c.user_id == users.c.id)
                    .where(users.c.id == user_id)
                )
            ).first()
        if row is None:
            return None
        shown = row.phone_shown
        phone = self.keyring.open_phone(user_id, shown) if shown is not None else None
        return rows.account(row._mapping), phone, int(row.seq)

    async def create_user(self, conn: AsyncConnection, account: Account, e164: str) -> None:
        await conn.execute(
            insert(users).values(
                id=account.id,
                display_name=account.display_name,
                username=None,
                username_key=None,
                phone_lookup=self.keyring.phone_lookup(e164),
                phone_envelope=self.identity.seal_phone(account.id, e164),
                phone_shown=None,
                phone_visibility=account.phone_visibility.value,
                created_at=account.created_at,
            )
        )
        await conn.execute(insert(update_seqs).values(user_id=account.id, seq=0))

    async def set_username(self, user_id: UserId, name: str | None, key: str | None) -> None:
        try:
            async with self.write() as conn:
                await conn.execute(
                    update(users)
                    .where(users.c.id == user_id)
                    .values(username=name, username_key=key)
                )
        except StoreConflict as exc:
            raise Conflict("that username is taken", code=ErrorCode.USERNAME_TAKEN) from exc

    async def phone_lookup_of(self, user_id: UserId) -> bytes | None:
        async with self._read() as conn:
            found = await conn.execute(select(users.c.phone_lookup).where(users.c.id == user_id))
            value = found.scalar()
        return bytes(value) if value is not None else None

    async def update_profile(
        self,
        user_id: UserId,
        display_name: str | None,
        visibility: PhoneVisibility | None,
        shown_phone: str | None = None,
    ) -> None:
        """``shown_phone`` (already checked against the user's lookup) is kept, sealed under
        the DC key, while ``visibility`` lets others see it; NOBODY erases that copy."""
        values: dict[str, Any] = {}
        if display_name is not None:
            values["display_name"] = display_name
        if visibility is not None:
            values["phone_visibility"] = visibility.value
            if visibility is PhoneVisibility.NOBODY:
                values["phone_shown"] = None
            elif shown_phone is not None:
                values["phone_shown"] = self.keyring.seal_phone(user_id, shown_phone)
        if values:
            async with self.write() as conn:
                await conn.execute(update(users).where(users.c.id == user_id).values(**values))

    # --- contacts --------------------------------------------------------------------------
    async def add_contact(self, owner: UserId, contact: UserId) -> None:
        async with self.write() as conn:
            exists = await conn.execute(
                select(contacts.c.owner_id).where(
                    contacts.c.owner_id == owner, contacts.c.contact_id == contact
                )
            )
            if exists.first() is None:
                await conn.execute(insert(contacts).values(owner_id=owner, contact_id=contact))

    async def remove_contact(self, owner: UserId, contact: UserId) -> None:
        async with self.write() as conn:
            await conn.execute(
                delete(contacts).where(
                    contacts.c.owner_id == owner, contacts.c.contact_id == contact
                )
            )

    async def contact_ids(self, owner: UserId) -> list[UserId]:
        async with self._read() as conn:
            result = await conn.execute(
                select(contacts.c.contact_id).where(contacts.c.owner_id == owner)
            )
            return [UserId(r.contact_id) for r in result]

    async def is_contact_of(self, owner: UserId, viewer: UserId) -> bool:
        async with self._read() as conn:
            row = await conn.execute(
                select(contacts.c.owner_id).where(
                    contacts.c.owner_id == owner, contacts.c.contact_id == viewer
                )
            )
            return row.first() is not None

    # --- devices ---------------------------------------------------------------------------
    async def create_device(self, conn: AsyncConnection, dev: Device, digest: bytes) -> None:
        await conn.execute(
            insert(devices).values(
                id=dev.id,
                user_id=dev.user_id,
                name=dev.name,
                token_digest=digest,
                created_at=dev.created_at,
                last_seen_at=dev.last_seen_at,
                revoked_at=None,
            )
        )

    async def device_by_token(self, digest: bytes) -> Device | None:
        async with self._read() as conn:
            row = (
                await conn.execute(select(devices).where(devices.c.token_digest == digest))
            ).first()
        return rows.device(row._mapping) if row else None

    def touch_device(self, device_id: DeviceId, now: float) -> None:
        """Note that a device was seen; written with the next flush (each second), so a
        reconnect storm costs one write a second rather than one per device."""
        self._seen[device_id] = now

    async def flush_seen(self) -> None:
        if not self._seen:
            return
        seen, self._seen = self._seen, {}
        values = [{"d": d, "t": t} for d, t in seen.items()]
        await self.db.run_write(lambda conn: conn.execute(_TOUCH_DEVICE, values))

    async def list_devices_by_id(self, device_ids: Sequence[DeviceId]) -> list[Device]:
        async with self._read() as conn:
            result = await conn.execute(select(devices).where(devices.c.id.in_(list(device_ids))))
            return [rows.device(r._mapping) for r in result]

    async def list_devices(self, user_id: UserId) -> list[Device]:
        async with self._read() as conn:
            result = await conn.execute(
                select(devices)
                .where(devices.c.user_id == user_id, devices.c.revoked_at.is_(None))
                .order_by(devices.c.created_at)
            )
            return [rows.device(r._mapping) for r in result]

    async def revoke_devices(
        self, user_id: UserId, device_ids: Sequence[DeviceId], now: float
    ) -> int:
        if not device_ids:
            return 0
        async with self.write() as conn:
            result = await conn.execute(
                update(devices)
                .where(
                    devices.c.user_id == user_id,
                    devices.c.id.in_(list(device_ids)),
                    devices.c.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )
            return int(result.rowcount)

    # --- chats -----------------------------------------------------------------------------
    async def load_membership(self, chat_id: ChatId) -> Membership | None:
        """The chat and its member set; also loads the chat's data key into the keyring."""
        async with self._read() as conn:
            row = (await conn.execute(select(chats).where(chats.c.id == chat_id))).first()
            if row is None:
                return None
            result = await conn.execute(
                select(members.c.user_id, members.c.is_admin).where(members.c.chat_id == chat_id)
            )
            member_rows = result.all()
        self.keyring.load_chat_key(chat_id, row.wrapped_key, row.key_id)
        admins = frozenset(UserId(r.user_id) for r in member_rows if r.is_admin)
        chat = rows.chat(row._mapping, admins)
        return Membership(chat, frozenset(UserId(r.user_id) for r in member_rows))

    async def private_chat_id(self, pair: tuple[UserId, UserId]) -> ChatId | None:
        async with self._read() as conn:
            found = await conn.execute(
                select(chats.c.id).where(chats.c.user_lo == pair[0], chats.c.user_hi == pair[1])
            )
            value = found.scalar()
        return ChatId(value) if value is not None else None

    async def insert_chat(
        self, conn: AsyncConnection, chat: Chat, member_ids: Sequence[UserId], now: float
    ) -> None:
        pair = chat.private_pair
        await conn.execute(
            insert(chats).values(
                id=chat.id,
                kind=chat.kind.value,
                title=chat.title,
                creator_id=chat.creator_id,
                created_at=chat.created_at,
                member_count=len(member_ids),
                last_message_id=None,
                wrapped_key=self.keyring.new_chat_key(chat.id),
                key_id=self.keyring.key_id,
                user_lo=pair[0] if pair else None,
                user_hi=pair[1] if pair else None,
            )
        )
        await self.insert_members(conn, chat.id, member_ids, chat.admin_ids, now)

    async def insert_members(
        self,
        conn: AsyncConnection,
        chat_id: ChatId,
        user_ids: Sequence[UserId],
        admins: frozenset[UserId],
        now: float,
    ) -> None:
        if not user_ids:
            return
        await conn.execute(
            insert(members),
            [
                {
                    "chat_id": chat_id,
                    "user_id": u,
                    "is_admin": u in admins,
                    "joined_at": now,
                    "read_inbox_max_id": 0,
                    "read_outbox_max_id": 0,
                }
                for u in user_ids
            ],
        )
        await self._recount(conn, chat_id)

    async def delete_member(self, conn: AsyncConnection, chat_id: ChatId, user_id: UserId) -> None:
        await conn.execute(
            delete(members).where(members.c.chat_id == chat_id, members.c.user_id == user_id)
        )
        await self._recount(conn, chat_id)

    async def _recount(self, conn: AsyncConnection, chat_id: ChatId) -> None:
        count = select(func.count()).where(members.c.chat_id == chat_id).scalar_subquery()
        await conn.execute(update(chats).where(chats.c.id == chat_id).values(member_count=count))

    async def set_admin(
        self, conn: AsyncConnection, chat_id: ChatId, user_id: UserId, admin: bool
    ) -> None:
        await conn.execute(
            update(members)
            .where(members.c.chat_id == chat_id, members.c.user_id == user_id)
            .values(is_admin=admin)
        )

    async def rename_chat(self, conn: AsyncConnection, chat_id: ChatId, title: str) -> None:
        await conn.execute(update(chats).where(chats.c.id == chat_id).values(title=title))

    async def member_page(self, chat_id: ChatId, offset: int, limit: int) -> list[UserId]:
        async with self._read() as conn:
            result = await conn.execute(
                select(members.c.user_id)
                .where(members.c.chat_id == chat_id)
                .order_by(members.c.joined_at, members.c.user_id)
                .offset(offset)
                .limit(limit)
            )
            return [UserId(r.user_id) for r in result]

    # --- messages --------------------------------------------------------------------------
    async def _build_messages(
        self, conn: AsyncConnection, message_rows: Sequence[Any]
    ) -> list[Message]:
        return await conn.run_sync(build_messages_sync, self.keyring, message_rows)

    async def get_messages(
        self, chat_id: ChatId, ids: Sequence[MessageId], *, conn: AsyncConnection | None = None
    ) -> dict[MessageId, Message]:
        async def run(c: AsyncConnection) -> dict[MessageId, Message]:
            result = await c.execute(
                select(messages).where(messages.c.chat_id == chat_id, messages.c.id.in_(list(ids)))
            )
            built = await self._build_messages(c, list(result.mappings()))
            return {m.id: m for m in built}

        if conn is not None:
            return await run(conn)
        async with self._read() as c:
            return await run(c)

    async def messages_by_id(self, ids: Iterable[MessageId]) -> dict[MessageId, Message]:
        wanted = list(set(ids))
        if not wanted:
            return {}
        async with self._read() as conn:
            result = await conn.execute(select(messages).where(messages.c.id.in_(wanted)))
            built = await self._build_messages(conn, list(result.mappings()))
        return {m.id: m for m in built}

    async def history(
        self, user_id: UserId, chat_id: ChatId, before_id: MessageId | None, limit: int
    ) -> list[Message]:
        hidden = select(hidden_messages.c.message_id).where(hidden_messages.c.user_id == user_id)
        query = select(messages).where(
            messages.c.chat_id == chat_id,
            messages.c.deleted.is_(False),
            messages.c.id.not_in(hidden),
        )
        if before_id is not None:
            query = query.where(messages.c.id < before_id)
        query = query.order_by(messages.c.id.desc()).limit(limit)
        async with self._read() as conn:
            result = await conn.execute(query)
            return await self._build_messages(conn, list(result.mappings()))

    async def edit_message(
        self, conn: AsyncConnection, msg: Message, text: str, now: float
    ) -> None:
        """Raise MESSAGE_NOT_FOUND if it was deleted for everyone meanwhile: a deleted text
        must never come back."""
        result = await conn.execute(
            update(messages)
            .where(messages.c.id == msg.id, messages.c.deleted.is_(False))
            .values(text_sealed=self.keyring.seal_text(msg.chat_id, msg.id, text), edit_date=now)
        )
        if not result.rowcount:
            raise NotFound("message was deleted", code=ErrorCode.MESSAGE_NOT_FOUND)

    async def delete_for_everyone(self, conn: AsyncConnection, ids: Sequence[MessageId]) -> None:
        """The sealed text is erased, not just flagged: deletion is real."""
        await conn.execute(
            update(messages)
            .where(messages.c.id.in_(list(ids)))
            .values(deleted=True, text_sealed=None)
        )
        await conn.execute(delete(reactions).where(reactions.c.message_id.in_(list(ids))))

    async def hide_for(
        self, conn: AsyncConnection, user_id: UserId, ids: Sequence[MessageId]
    ) -> None:
        already = await conn.execute(
            select(hidden_messages.c.message_id).where(
                hidden_messages.c.user_id == user_id, hidden_messages.c.message_id.in_(list(ids))
            )
        )
        done = {r.message_id for r in already}
        fresh = [{"user_id": user_id, "message_id": i} for i in ids if i not in done]
        if fresh:
            await conn.execute(insert(hidden_messages), fresh)

    async def set_reaction(
        self, conn: AsyncConnection, message_id: MessageId, user_id: UserId, emoji: str | None
    ) -> str | None:
        """Set (or clear) a user's reaction; returns the previous one."""
        old = (
            await conn.execute(
                select(reactions.c.emoji).where(
                    reactions.c.message_id == message_id, reactions.c.user_id == user_id
                )
            )
        ).scalar()
        await conn.execute(
            delete(reactions).where(
                reactions.c.message_id == message_id, reactions.c.user_id == user_id
            )
        )
        if emoji is not None:
            await conn.execute(
                insert(reactions).values(message_id=message_id, user_id=user_id, emoji=emoji)
            )
        return old

    async def mark_read(
        self, conn: AsyncConnection, chat_id: ChatId, reader: UserId, max_id: int
    ) -> tuple[int, list[UserId], int]:
        """Advance the reader's pointer; return (previous pointer, senders whose outbox moved,
        new pointer).

        The pointer never passes the chat's newest message: reading "up to" a later id must
        not mark messages that do not exist yet as read.
        """
        previous = (
            await conn.execute(
                select(members.c.read_inbox_max_id).where(
                    members.c.chat_id == chat_id, members.c.user_id == reader
                )
            )
        ).scalar_one()
        newest = (
            await conn.execute(select(chats.c.last_message_id).where(chats.c.id == chat_id))
        ).scalar()
        max_id = min(max_id, newest or 0)
        if max_id <= previous:
            return previous, [], previous
        await conn.execute(
            update(members)
            .where(members.c.chat_id == chat_id, members.c.user_id == reader)
            .values(read_inbox_max_id=max_id)
        )
        senders = await conn.execute(
            select(messages.c.sender_id)
            .where(
                messages.c.chat_id == chat_id,
                messages.c.id > previous,
                messages.c.id <= max_id,
                messages.c.sender_id != reader,
            )
            .distinct()
            .limit(100)
        )
        sender_ids = [UserId(r.sender_id) for r in senders]
        if sender_ids:
            await conn.execute(
                update(members)
                .where(
                    members.c.chat_id == chat_id,
                    members.c.user_id.in_(sender_ids),
                    members.c.read_outbox_max_id < max_id,
                )
                .values(read_outbox_max_id=max_id)
            )
        return previous, sender_ids, max_id

    # --- dialogs and sync ------------------------------------------------------------------
    async def dialogs(self, user_id: UserId, limit: int) -> list[DialogRow]:
        async with self._read() as conn:
            result = await conn.execute(
                select(chats, members.c.read_inbox_max_id, members.c.read_outbox_max_id)
                .join(members, members.c.chat_id == chats.c.id)
                .where(members.c.user_id == user_id)
                .order_by(func.coalesce(chats.c.last_message_id, chats.c.id).desc())
                .limit(limit)
            )
            chat_rows = list(result.mappings())
            chat_ids = [r["id"] for r in chat_rows]
            admins: dict[int, set[UserId]] = defaultdict(set)
            if chat_ids:
                admin_rows = await conn.execute(
                    select(members.c.chat_id, members.c.user_id).where(
                        members.c.chat_id.in_(chat_ids), members.c.is_admin.is_(True)
                    )
                )
                for a in admin_rows:
                    admins[a.chat_id].add(UserId(a.user_id))
            # The preview and the unread count show what this user's history shows: neither a
            # message deleted for everyone nor one the user deleted for themselves.
            hidden = select(hidden_messages.c.message_id).where(
                hidden_messages.c.user_id == user_id
            )
            visible = (messages.c.deleted.is_(False), messages.c.id.not_in(hidden))
            # The newest message is usually chats.last_message_id; only where that one is
            # deleted or hidden from this user is the newest visible one looked up per chat.
            pointers = {r["id"]: r["last_message_id"] for r in chat_rows if r["last_message_id"]}
            shown = await conn.execute(
                select(messages.c.chat_id, messages.c.id).where(
                    messages.c.id.in_(list(pointers.values())), *visible
                )
            )
            last_ids: dict[int, int] = {row.chat_id: row.id for row in shown}
            for chat_id in pointers.keys() - last_ids.keys():
                newest = await conn.execute(
                    select(messages.c.id)
                    .where(messages.c.chat_id == chat_id, *visible)
                    .order_by(messages.c.id.desc())
                    .limit(1)
                )
                found = newest.scalar()
                if found is not None:
                    last_ids[chat_id] = found
            last_rows = await conn.execute(
                select(messages).where(messages.c.id.in_(list(last_ids.values())))
            )
            last = {m.id: m for m in await self._build_messages(conn, list(last_rows.mappings()))}
            # Unread counts for every chat in one query: messages past this user's pointer.
            unread_rows = await conn.execute(
                select(messages.c.chat_id, func.count())
                .join(
                    members,
                    (members.c.chat_id == messages.c.chat_id) & (members.c.user_id == user_id),
                )
                .where(
                    messages.c.chat_id.in_(chat_ids),
                    messages.c.id > members.c.read_inbox_max_id,
                    messages.c.sender_id != user_id,
                    *visible,
                )
                .group_by(messages.c.chat_id)
            )
            unread_by_chat = {chat_id: int(count) for chat_id, count in unread_rows}
            dialogs = []
            for r in chat_rows:
                unread = unread_by_chat.get(r["id"], 0)
                last_id = last_ids.get(r["id"])
                dialogs.append(
                    DialogRow(
                        chat=rows.chat(r, frozenset(admins[r["id"]])),
                        last_message=last.get(MessageId(last_id)) if last_id else None,
                        unread_count=unread,
                        read_inbox_max_id=r["read_inbox_max_id"],
                        read_outbox_max_id=r["read_outbox_max_id"],
                    )
                )
            return dialogs

    async def current_seq(self, user_id: UserId) -> int:
        async with self._read() as conn:
            value = (
                await conn.execute(
                    select(update_seqs.c.seq).where(update_seqs.c.user_id == user_id)
                )
            ).scalar()
        return int(value or 0)

    async def updates_since(self, user_id: UserId, since: int, limit: int) -> list[Delivery]:
        async with self._read() as conn:
            result = await conn.execute(
                select(updates)
                .where(updates.c.user_id == user_id, updates.c.seq > since)
                .order_by(updates.c.seq)
                .limit(limit)
            )
            return [Delivery(user_id, r["seq"], rows.update_ref(r)) for r in result.mappings()]

    async def member_chat_ids(self, user_id: UserId, chat_ids: Iterable[ChatId]) -> set[ChatId]:
        """Which of ``chat_ids`` the user is a member of now."""
        wanted = list(set(chat_ids))
        if not wanted:
            return set()
        async with self._read() as conn:
            result = await conn.execute(
                select(members.c.chat_id).where(
                    members.c.user_id == user_id, members.c.chat_id.in_(wanted)
                )
            )
            return {ChatId(r.chat_id) for r in result}


__all__ = ["SendOutcome", "SqlStore", "StoreConflict", "append_updates", "fan_out"]
