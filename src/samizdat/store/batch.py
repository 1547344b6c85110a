"""Group commit of sends and the update log, written once as synchronous SQLAlchemy Core.

Synchronous so that a whole batch runs in one go: on SQLite in the store's writer thread (one
thread hop per batch instead of one per statement, which is what aiosqlite would cost), on
PostgreSQL through ``AsyncConnection.run_sync`` (asyncpg underneath, no threads). The same
functions serve both, so every query here exists once.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, case, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from samizdat.core.ids import ChatId, MessageId, UserId
from samizdat.core.model import Message
from samizdat.core.updates import Delivery, UpdateKind, UpdateRef
from samizdat.crypto import Keyring
from samizdat.store import rows
from samizdat.store.tables import chats, messages, outbox, reactions, update_seqs, updates

_BUMP_SEQ = (
    update(update_seqs)
    .where(update_seqs.c.user_id == bindparam("u"))
    .values(seq=update_seqs.c.seq + bindparam("n"))
)
# Built once: statements with "expanding" IN lists keep SQLAlchemy's compiled cache warm and
# skip rebuilding the statement for every batch.
_READ_SEQS = select(update_seqs.c.user_id, update_seqs.c.seq).where(
    update_seqs.c.user_id.in_(bindparam("users", expanding=True))
)
# Two INs rather than a row-value IN: both databases then use the unique index
# (sender_id, random_id) instead of scanning; callers pick the exact pairs out.
_FIND_SENT = select(messages).where(
    messages.c.sender_id.in_(bindparam("senders", expanding=True)),
    messages.c.random_id.in_(bindparam("random_ids", expanding=True)),
)
# Only ever forward: on several nodes a batch may commit after a higher id from elsewhere.
_SET_LAST = (
    update(chats)
    .where(chats.c.id == bindparam("c"))
    .values(
        last_message_id=case(
            (func.coalesce(chats.c.last_message_id, 0) < bindparam("m"), bindparam("m")),
            else_=chats.c.last_message_id,
        )
    )
)


@dataclass(frozen=True, slots=True)
class SendOutcome:
    message: Message
    sender_seq: int
    deliveries: list[Delivery]
    duplicate: bool


_COMPILED: dict[tuple[str, str, tuple[str, ...]], tuple[str, tuple[str, ...]]] = {}


def insert_many(conn: Connection, table: Table, values: Sequence[dict[str, Any]]) -> None:
    """``INSERT`` many rows, the statement compiled once per dialect from SQLAlchemy Core.

    The hot path inserts thousands of rows a second; handing the driver plain tuples skips
    SQLAlchemy's per-row parameter processing, which otherwise costs more than SQLite itself.
    Values must already be the driver's native types (int, float, bool, str, bytes, None).
    """
    if not values:
        return
    keys = tuple(values[0])
    cache_key = (conn.dialect.name, table.name, keys)
    cached = _COMPILED.get(cache_key)
    if cached is None:
        compiled = insert(table).compile(dialect=conn.dialect, column_keys=list(keys))
        order = tuple(compiled.positiontup or keys)
        cached = _COMPILED[cache_key] = (compiled.string, order)
    sql, order = cached
    conn.exec_driver_sql(sql, [tuple(row[k] for k in order) for row in values])


def fan_out(users_: Iterable[UserId], ref: UpdateRef) -> list[tuple[UserId, UpdateRef]]:
    return [(user, ref) for user in users_]


def append_updates_sync(
    conn: Connection, targets: Sequence[tuple[UserId, UpdateRef]]
) -> list[Delivery]:
    """Number and store updates; seqs per user are contiguous and in ``targets`` order.

    Two statements whatever the number of users: bump every counter, then read them back
    (the rows stay locked by this transaction, so the numbers are ours alone).
    """
    if not targets:
        return []
    counts = Counter(user for user, _ in targets)
    ordered = sorted(counts)  # one lock order for every writer: no deadlocks on PostgreSQL
    conn.execute(_BUMP_SEQ, [{"u": u, "n": counts[u]} for u in ordered])
    result = conn.execute(_READ_SEQS, {"users": ordered})
    next_seq = {row.user_id: row.seq - counts[row.user_id] + 1 for row in result}
    deliveries: list[Delivery] = []
    for user, ref in targets:
        seq = next_seq[user]
        next_seq[user] = seq + 1
        deliveries.append(Delivery(user, seq, ref))
    insert_many(conn, updates, [rows.update_values(d.user_id, d.seq, d.ref) for d in deliveries])
    return deliveries


#: (home DC, member, update) for members homed outside the chat's own DC.
RemoteTargets = Sequence[tuple[str, UserId, UpdateRef]]


def queue_sync(conn: Connection, remote: RemoteTargets) -> None:
    """Queue updates for members homed in other DCs (``store/outbox.py`` moves them)."""
    insert_many(
        conn, outbox, [{"target_dc": dc, **rows.ref_values(u, ref)} for dc, u, ref in remote]
    )


async def append_updates(
    conn: AsyncConnection, targets: Sequence[tuple[UserId, UpdateRef]]
) -> list[Delivery]:
    return await conn.run_sync(append_updates_sync, targets)


def load_chat_keys_sync(conn: Connection, keyring: Keyring, chat_ids: Iterable[int]) -> None:
    missing = [c for c in set(chat_ids) if not keyring.has_chat_key(c)]
    if missing:
        result = conn.execute(
            select(chats.c.id, chats.c.wrapped_key, chats.c.key_id).where(chats.c.id.in_(missing))
        )
        for chat_id, wrapped, key_id in result:
            keyring.load_chat_key(chat_id, bytes(wrapped), key_id)


def build_messages_sync(
    conn: Connection, keyring: Keyring, message_rows: Sequence[Any]
) -> list[Message]:
    """Open message rows (loading chat keys as needed) with their reaction counts."""
    ids = [r["id"] for r in message_rows]
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    if ids:
        result = conn.execute(
            select(reactions.c.message_id, reactions.c.emoji, func.count())
            .where(reactions.c.message_id.in_(ids))
            .group_by(reactions.c.message_id, reactions.c.emoji)
        )
        for message_id, emoji, count in result:
            counts[message_id][emoji] = count
    load_chat_keys_sync(conn, keyring, (r["chat_id"] for r in message_rows))
    return [rows.message(r, keyring, counts.get(r["id"], {})) for r in message_rows]


#: A message to store, the members homed in this DC, and (home DC, member) for the others.
Draft = tuple[Message, frozenset[UserId], tuple[tuple[str, UserId], ...]]


def commit_sends_sync(
    conn: Connection, keyring: Keyring, drafts: Sequence[Draft]
) -> list[SendOutcome]:
    """Store a batch of new messages and their updates; one outcome per draft, in order.

    Members homed in other DCs get an outbox row each (``store/outbox.py``); a sender homed
    elsewhere has no number here (``sender_seq`` 0) and learns it when the row is moved.

    A draft whose (sender, random_id) is already stored, or repeats an earlier draft of the
    same batch, is not stored again: its outcome is the stored message, ``duplicate=True``.
    """
    keys = [(m.sender_id, m.random_id) for m, _, _ in drafts]
    found: dict[tuple[int, int], SendOutcome] = {}
    wanted = set(keys)
    params = {"senders": list({s for s, _ in wanted}), "random_ids": list({r for _, r in wanted})}
    candidates = conn.execute(_FIND_SENT, params).mappings()
    existing = [r for r in candidates if (r["sender_id"], r["random_id"]) in wanted]
    if existing:
        for row, stored in zip(existing, build_messages_sync(conn, keyring, existing), strict=True):
            found[(row["sender_id"], row["random_id"])] = SendOutcome(
                stored, row["sender_seq"], [], duplicate=True
            )
    fresh: list[Draft] = []
    seen: set[tuple[int, int]] = set(found)
    for draft, key in zip(drafts, keys, strict=True):
        if key not in seen:
            seen.add(key)
            fresh.append(draft)
    load_chat_keys_sync(conn, keyring, (m.chat_id for m, _, _ in fresh))
    targets: list[tuple[UserId, UpdateRef]] = []
    remote: list[tuple[str, UserId, UpdateRef]] = []
    for msg, recipients, elsewhere in fresh:
        ref = UpdateRef(UpdateKind.NEW_MESSAGE, msg.chat_id, (msg.id,))
        targets.extend(fan_out(sorted(recipients), ref))
        remote.extend((dc, user, ref) for dc, user in elsewhere)
    by_message: dict[MessageId, list[Delivery]] = defaultdict(list)
    for delivery in append_updates_sync(conn, targets):
        by_message[delivery.ref.message_ids[0]].append(delivery)
    values = []
    last_in_chat: dict[ChatId, MessageId] = {}
    for msg, _, _ in fresh:
        own = by_message[msg.id]
        sender_seq = next((d.seq for d in own if d.user_id == msg.sender_id), 0)
        values.append(rows.message_values(msg, sender_seq, keyring))
        last_in_chat[msg.chat_id] = max(last_in_chat.get(msg.chat_id, msg.id), msg.id)
        found[(msg.sender_id, msg.random_id)] = SendOutcome(msg, sender_seq, own, False)
    if values:
        insert_many(conn, messages, values)
        queue_sync(conn, remote)
        conn.execute(_SET_LAST, [{"c": c, "m": m} for c, m in last_in_chat.items()])
    outcomes: list[SendOutcome] = []
    delivered: set[tuple[int, int]] = set()
    for key in keys:
        outcome = found[key]
        if key in delivered:  # a repeat inside this batch: stored once, pushed once
            outcome = SendOutcome(outcome.message, outcome.sender_seq, [], duplicate=True)
        delivered.add(key)
        outcomes.append(outcome)
    return outcomes


__all__ = [
    "Draft",
    "RemoteTargets",
    "SendOutcome",
    "append_updates",
    "append_updates_sync",
    "build_messages_sync",
    "commit_sends_sync",
    "fan_out",
    "insert_many",
    "load_chat_keys_sync",
    "queue_sync",
]
