"""Row <-> record conversion, kept apart from the queries so both stay short."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from samizdat.core.ids import ChatId, DeviceId, MessageId, UserId
from samizdat.core.model import Account, Chat, Device, Forward, Message
from samizdat.core.updates import UpdateKind, UpdateRef
from samizdat.crypto import Keyring
from samizdat.protocol.models import ChatKind, PhoneVisibility


def account(row: Mapping[Any, Any]) -> Account:
    return Account(
        id=UserId(row["id"]),
        display_name=row["display_name"],
        username=row["username"],
        phone_visibility=PhoneVisibility(row["phone_visibility"]),
        created_at=row["created_at"],
    )


def device(row: Mapping[Any, Any]) -> Device:
    return Device(
        id=DeviceId(row["id"]),
        user_id=UserId(row["user_id"]),
        name=row["name"],
        created_at=row["created_at"],
        last_seen_at=row["last_seen_at"],
        revoked=row["revoked_at"] is not None,
    )


def chat(row: Mapping[Any, Any], admin_ids: frozenset[UserId]) -> Chat:
    pair = None
    if row["user_lo"] is not None:
        pair = (UserId(row["user_lo"]), UserId(row["user_hi"]))
    return Chat(
        id=ChatId(row["id"]),
        kind=ChatKind(row["kind"]),
        title=row["title"],
        creator_id=UserId(row["creator_id"]),
        created_at=row["created_at"],
        member_count=row["member_count"],
        admin_ids=admin_ids,
        private_pair=pair,
    )


def message(row: Mapping[Any, Any], keyring: Keyring, reactions: dict[str, int]) -> Message:
    chat_id = row["chat_id"]
    text = None
    if row["text_sealed"] is not None and not row["deleted"]:
        text = keyring.open_text(chat_id, row["id"], row["text_sealed"])
    forward = None
    if row["fwd_chat_id"] is not None:
        forward = Forward(
            ChatId(row["fwd_chat_id"]),
            MessageId(row["fwd_message_id"]),
            UserId(row["fwd_sender_id"]),
        )
    return Message(
        id=MessageId(row["id"]),
        chat_id=ChatId(chat_id),
        sender_id=UserId(row["sender_id"]),
        date=row["date"],
        text=text,
        random_id=row["random_id"],
        reply_to_id=MessageId(row["reply_to_id"]) if row["reply_to_id"] else None,
        forward=forward,
        edit_date=row["edit_date"],
        deleted=row["deleted"],
        reactions=reactions,
    )


def message_values(msg: Message, sender_seq: int, keyring: Keyring) -> dict[str, Any]:
    fwd = msg.forward
    return {
        "id": msg.id,
        "chat_id": msg.chat_id,
        "sender_id": msg.sender_id,
        "random_id": msg.random_id,
        "sender_seq": sender_seq,
        "date": msg.date,
        "text_sealed": keyring.seal_text(msg.chat_id, msg.id, msg.text) if msg.text else None,
        "reply_to_id": msg.reply_to_id,
        "fwd_chat_id": fwd.chat_id if fwd else None,
        "fwd_message_id": fwd.message_id if fwd else None,
        "fwd_sender_id": fwd.sender_id if fwd else None,
        "edit_date": msg.edit_date,
        "deleted": msg.deleted,
    }


def update_values(user_id: int, seq: int, ref: UpdateRef) -> dict[str, Any]:
    return {"seq": seq, **ref_values(user_id, ref)}


def ref_values(user_id: int, ref: UpdateRef) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "kind": ref.kind.value,
        "chat_id": ref.chat_id,
        "message_ids": orjson.dumps(ref.message_ids).decode(),
        "actor": ref.actor,
        "max_id": ref.max_id,
        "emoji": ref.emoji,
        "for_everyone": ref.for_everyone,
    }


def update_ref(row: Mapping[Any, Any]) -> UpdateRef:
    ids: Sequence[int] = orjson.loads(row["message_ids"])
    return UpdateRef(
        kind=UpdateKind(row["kind"]),
        chat_id=ChatId(row["chat_id"]),
        message_ids=tuple(MessageId(i) for i in ids),
        actor=UserId(row["actor"]) if row["actor"] is not None else None,
        max_id=row["max_id"],
        emoji=row["emoji"],
        for_everyone=row["for_everyone"],
    )


__all__ = [
    "account",
    "chat",
    "device",
    "message",
    "message_values",
    "ref_values",
    "update_ref",
    "update_values",
]
