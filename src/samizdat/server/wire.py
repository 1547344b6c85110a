"""Core records to wire objects (plain dicts serialised by orjson on the hot path).

The shapes match ``samizdat.protocol.models``; a contract test validates every RPC result
against those models, so this fast path cannot drift from the documented schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from samizdat.core.ids import ChatId, MessageId, UserId
from samizdat.core.model import Account, Chat, Device, DialogRow, Message
from samizdat.core.updates import UpdateKind, UpdateRef
from samizdat.protocol.models import ChatKind

Json = dict[str, Any]


def user(account: Account, *, phone: str | None, own: bool) -> Json:
    out: Json = {
        "id": account.id,
        "display_name": account.display_name,
        "username": account.username,
        "phone": phone,
    }
    if own:
        out["phone_visibility"] = account.phone_visibility.value
    return out


def device(dev: Device, *, current: bool) -> Json:
    return {
        "id": dev.id,
        "name": dev.name,
        "created_at": dev.created_at,
        "last_seen_at": dev.last_seen_at,
        "current": current,
    }


def chat(c: Chat, viewer: UserId | None = None) -> Json:
    return {
        "id": c.id,
        "kind": c.kind.value,
        "title": c.title,
        "member_count": c.member_count,
        "admin_ids": sorted(c.admin_ids),
        "creator_id": c.creator_id if c.kind is ChatKind.GROUP else None,
        "peer_id": c.peer_of(viewer) if viewer is not None else None,
    }


def message(m: Message) -> Json:
    fwd = m.forward
    return {
        "id": m.id,
        "chat_id": m.chat_id,
        "sender_id": m.sender_id,
        "date": m.date,
        "text": None if m.deleted else m.text,
        "reply_to_id": m.reply_to_id,
        "forward": (
            {"chat_id": fwd.chat_id, "message_id": fwd.message_id, "sender_id": fwd.sender_id}
            if fwd
            else None
        ),
        "edit_date": m.edit_date,
        "deleted": m.deleted,
        "reactions": m.reactions,
    }


def dialog(d: DialogRow, viewer: UserId) -> Json:
    return {
        "chat": chat(d.chat, viewer),
        "last_message": message(d.last_message) if d.last_message else None,
        "unread_count": d.unread_count,
        "read_inbox_max_id": d.read_inbox_max_id,
        "read_outbox_max_id": d.read_outbox_max_id,
    }


def update_body(
    ref: UpdateRef,
    messages: Mapping[MessageId, Message],
    chats: Mapping[ChatId, Chat],
) -> Json | None:
    """The wire form of a numbered update; None if what it refers to is gone for good."""
    match ref.kind:
        case UpdateKind.NEW_MESSAGE | UpdateKind.MESSAGE_EDITED:
            found = messages.get(ref.message_ids[0])
            if found is None:
                return None
            return {"type": ref.kind.value, "message": message(found)}
        case UpdateKind.MESSAGES_DELETED:
            return {
                "type": ref.kind.value,
                "chat_id": ref.chat_id,
                "message_ids": list(ref.message_ids),
                "for_everyone": ref.for_everyone,
            }
        case UpdateKind.REACTION:
            found = messages.get(ref.message_ids[0])
            return {
                "type": ref.kind.value,
                "chat_id": ref.chat_id,
                "message_id": ref.message_ids[0],
                "user_id": ref.actor,
                "emoji": ref.emoji,
                "reactions": found.reactions if found else {},
            }
        case UpdateKind.READ_INBOX:
            return {"type": ref.kind.value, "chat_id": ref.chat_id, "max_id": ref.max_id}
        case UpdateKind.READ_OUTBOX:
            return {
                "type": ref.kind.value,
                "chat_id": ref.chat_id,
                "user_id": ref.actor,
                "max_id": ref.max_id,
            }
        case UpdateKind.CHAT_UPDATED:
            found_chat = chats.get(ref.chat_id)
            if found_chat is None:
                return None
            return {"type": ref.kind.value, "chat": chat(found_chat)}
        case UpdateKind.CHAT_LEFT:
            return {"type": ref.kind.value, "chat_id": ref.chat_id}


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


__all__ = ["chat", "device", "dialog", "dumps", "message", "update_body", "user"]
