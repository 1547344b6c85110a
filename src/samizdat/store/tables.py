"""The schema, declared once for SQLite and PostgreSQL (Alembic migrations are made from it).

Nothing here holds message text, a phone number or an IP address in plaintext: ``text_sealed``
and ``phone_shown`` are AES-GCM ciphertexts under DC-key-wrapped keys, ``phone_envelope`` and
``ip_log.envelope`` threshold envelopes to the custodians, ``phone_lookup`` a keyed hash.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("display_name", String(64), nullable=False),
    Column("username", String(32)),
    Column("username_key", String(32), unique=True),
    Column("phone_lookup", LargeBinary(32), nullable=False, unique=True),
    # threshold envelope to the DC's custodians: not even the running server can open it
    Column("phone_envelope", LargeBinary),
    # the number sealed under the DC key, only while its owner lets others see it
    Column("phone_shown", LargeBinary),
    Column("phone_visibility", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
)

update_seqs = Table(
    "update_seqs",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
)

devices = Table(
    "devices",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, nullable=False, index=True),
    Column("name", String(64), nullable=False),
    Column("token_digest", LargeBinary(32), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("revoked_at", Float),
)

login_codes = Table(
    "login_codes",
    metadata,
    Column("phone_lookup", LargeBinary(32), primary_key=True),
    Column("code_digest", LargeBinary(32), nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False),
)

contacts = Table(
    "contacts",
    metadata,
    Column("owner_id", BigInteger, primary_key=True, autoincrement=False),
    Column("contact_id", BigInteger, primary_key=True, autoincrement=False),
)

chats = Table(
    "chats",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(16), nullable=False),
    Column("title", String(128), nullable=False),
    Column("creator_id", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("member_count", Integer, nullable=False),
    Column("last_message_id", BigInteger),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("user_lo", BigInteger),
    Column("user_hi", BigInteger),
    UniqueConstraint("user_lo", "user_hi", name="uq_chats_private_pair"),
)

members = Table(
    "members",
    metadata,
    Column("chat_id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("is_admin", Boolean, nullable=False),
    Column("joined_at", Float, nullable=False),
    Column("read_inbox_max_id", BigInteger, nullable=False),
    Column("read_outbox_max_id", BigInteger, nullable=False),
    Index("ix_members_user", "user_id"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("chat_id", BigInteger, nullable=False),
    Column("sender_id", BigInteger, nullable=False),
    Column("random_id", BigInteger, nullable=False),
    Column("sender_seq", BigInteger, nullable=False),
    Column("date", Float, nullable=False),
    Column("text_sealed", LargeBinary),
    Column("reply_to_id", BigInteger),
    Column("fwd_chat_id", BigInteger),
    Column("fwd_message_id", BigInteger),
    Column("fwd_sender_id", BigInteger),
    Column("edit_date", Float),
    Column("deleted", Boolean, nullable=False),
    Index("ix_messages_chat_id", "chat_id", "id"),
    UniqueConstraint("sender_id", "random_id", name="uq_messages_random_id"),
)

hidden_messages = Table(
    "hidden_messages",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("message_id", BigInteger, primary_key=True, autoincrement=False),
)

reactions = Table(
    "reactions",
    metadata,
    Column("message_id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("emoji", String(16), nullable=False),
)


def _update_ref_columns() -> list[Column[Any]]:
    """What an update says (``core.updates.UpdateRef``): in the log and in the outbox."""
    return [
        Column("kind", String(24), nullable=False),
        Column("chat_id", BigInteger, nullable=False),
        Column("message_ids", Text, nullable=False),
        Column("actor", BigInteger),
        Column("max_id", BigInteger),
        Column("emoji", String(16)),
        Column("for_everyone", Boolean, nullable=False),
    ]


updates = Table(
    "updates",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    *_update_ref_columns(),
)

device_keys = Table(
    "device_keys",
    metadata,
    Column("device_id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, nullable=False, index=True),
    Column("identity_key", String(64), nullable=False),
    Column("signing_key", String(64), nullable=False),
    Column("signature", String(128), nullable=False),
    Column("uploaded_at", Float, nullable=False),
)

one_time_keys = Table(
    "one_time_keys",
    metadata,
    Column("device_id", BigInteger, primary_key=True, autoincrement=False),
    Column("key_id", String(32), primary_key=True),
    Column("public_key", String(64), nullable=False),
    Column("signature", String(128), nullable=False),
)

fallback_keys = Table(
    "fallback_keys",
    metadata,
    Column("device_id", BigInteger, primary_key=True, autoincrement=False),
    Column("key_id", String(32), nullable=False),
    Column("public_key", String(64), nullable=False),
    Column("signature", String(128), nullable=False),
    Column("used", Boolean, nullable=False),
)

secret_inbox = Table(
    "secret_inbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("device_id", BigInteger, nullable=False),
    Column("sender_user_id", BigInteger, nullable=False),
    Column("sender_device_id", BigInteger, nullable=False),
    Column("olm_type", Integer, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_secret_inbox_device", "device_id", "id"),
    Index("ix_secret_inbox_created", "created_at"),
)

dc_keys = Table(
    "dc_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    # the DC key (wrap key + index key) in a threshold envelope to the DC's custodians
    Column("envelope", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("retired_at", Float),
)

ip_log = Table(
    "ip_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("at", Float, nullable=False),
    # {"ip", "at", "device"} in a threshold envelope to the DC's custodians
    Column("envelope", LargeBinary, nullable=False),
    Index("ix_ip_log_user", "user_id", "at"),
    Index("ix_ip_log_at", "at"),
)

# Updates for members homed in another DC, written in the same transaction as the change they
# announce and moved into each member's own update log right after (store/outbox.py).
outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("target_dc", String(32), nullable=False),
    Column("user_id", BigInteger, nullable=False),
    *_update_ref_columns(),
    Index("ix_outbox_target", "target_dc", "id"),
    # ids are never reused (applied marks name them), also after the table empties
    sqlite_autoincrement=True,
)

# Which outbox rows of another DC this DC has already numbered: a move interrupted between
# the two databases' commits is retried without numbering anything twice.
outbox_applied = Table(
    "outbox_applied",
    metadata,
    Column("source_dc", String(32), primary_key=True),
    Column("outbox_id", BigInteger, primary_key=True, autoincrement=False),
    Column("applied_at", Float, nullable=False),
    Index("ix_outbox_applied_at", "applied_at"),
)

__all__ = [
    "chats",
    "contacts",
    "dc_keys",
    "device_keys",
    "devices",
    "fallback_keys",
    "hidden_messages",
    "ip_log",
    "login_codes",
    "members",
    "messages",
    "metadata",
    "one_time_keys",
    "outbox",
    "outbox_applied",
    "reactions",
    "secret_inbox",
    "update_seqs",
    "updates",
    "users",
]

# The public transparency log (store/transparency.py): leaf ``idx`` is its position, so the
# primary key is what stops two appends from taking the same place.
transparency_leaves = Table(
    "transparency_leaves",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("leaf", LargeBinary, nullable=False),
    Column("leaf_hash", LargeBinary, nullable=False),
    Column("appended_at", Float, nullable=False),
)

# One signed tree head per log size, kept as signed: a head is never re-signed on read.
transparency_heads = Table(
    "transparency_heads",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("timestamp_ms", BigInteger, nullable=False),
    Column("root_hash", LargeBinary, nullable=False),
    Column("signature", LargeBinary, nullable=False),
)

# Lawful requests as received (the legal intake); only their personal-data-free summary goes
# into the transparency log, at ``leaf_idx``.
legal_requests = Table(
    "legal_requests",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("received_at", Float, nullable=False),
    Column("case_ref", String(200), nullable=False),
    Column("jurisdictions", String(100), nullable=False),
    Column("courts", Text, nullable=False),
    Column("category", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("reason", String(64)),
    Column("accounts", Integer, nullable=False),
    Column("leaf_idx", BigInteger),
    sqlite_autoincrement=True,
)

# Orders (by the SHA-256 of their signed body) that led to a disclosure: each opens records
# once, so whoever holds a granted case's orders cannot have them served again.
legal_used_orders = Table(
    "legal_used_orders",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("used_at", Float, nullable=False),
)

__all__ += ["legal_requests", "legal_used_orders", "transparency_heads", "transparency_leaves"]
