"""The rules of cloud chats as pure functions: they decide, the services carry out.

Each function raises a typed SamizdatError when the actor may not do the thing, so HTTP and
WebSocket callers get the same answer for the same mistake.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from samizdat.core.ids import UserId
from samizdat.core.model import Chat, Membership, Message
from samizdat.protocol.errors import Conflict, ErrorCode, NotFound, PermissionDenied
from samizdat.protocol.methods import MAX_GROUP_MEMBERS
from samizdat.protocol.models import ChatKind, PhoneVisibility

_USERNAME = re.compile(r"[A-Za-z0-9_]{5,32}")


def normalize_username(raw: str) -> tuple[str, str]:
    """Return (username as typed, lookup key); raise USERNAME_INVALID if it breaks the rule.

    A leading "@" is accepted and dropped. Uniqueness is case-insensitive: the key is lowercase.
    """
    name = raw[1:] if raw.startswith("@") else raw
    if not _USERNAME.fullmatch(name):
        raise Conflict(
            "a username has 5-32 characters: letters, digits and underscore",
            code=ErrorCode.USERNAME_INVALID,
        )
    return name, name.lower()


def validate_text(text: str) -> str:
    if not text.strip():
        raise Conflict("message text cannot be blank", code=ErrorCode.TEXT_INVALID)
    return text


def require_member(membership: Membership | None, user: UserId) -> Membership:
    """Non-members are told the chat does not exist, so ids cannot be probed."""
    if membership is None or user not in membership.members:
        raise NotFound("chat not found or you are not a member", code=ErrorCode.CHAT_NOT_FOUND)
    return membership


def require_group(chat: Chat) -> None:
    if chat.kind is not ChatKind.GROUP:
        raise Conflict("this only works in groups", code=ErrorCode.CHAT_INVALID)


def require_admin(chat: Chat, user: UserId) -> None:
    require_group(chat)
    if user not in chat.admin_ids:
        raise PermissionDenied("only group admins can do that", code=ErrorCode.NOT_ADMIN)


def require_author(message: Message, user: UserId) -> None:
    if message.sender_id != user:
        raise PermissionDenied("you can only edit your own messages", code=ErrorCode.NOT_AUTHOR)
    if message.deleted:
        raise NotFound("message was deleted", code=ErrorCode.MESSAGE_NOT_FOUND)


def members_to_add(
    membership: Membership, candidates: Iterable[UserId], *, limit: int = MAX_GROUP_MEMBERS
) -> list[UserId]:
    """New members in request order, without duplicates; raise if the group would overflow."""
    seen: set[UserId] = set()
    fresh: list[UserId] = []
    for user in candidates:
        if user in membership.members or user in seen:
            continue
        seen.add(user)
        fresh.append(user)
    if len(membership.members) + len(fresh) > limit:
        raise Conflict(f"a group holds at most {limit} members", code=ErrorCode.CHAT_INVALID)
    return fresh


def check_removal(membership: Membership, actor: UserId, target: UserId) -> None:
    """Admins remove members; nobody removes the creator; leaving is a separate action."""
    chat = membership.chat
    require_admin(chat, actor)
    if target not in membership.members:
        raise NotFound("that user is not a member", code=ErrorCode.USER_NOT_FOUND)
    if target == chat.creator_id:
        raise PermissionDenied("the group's creator cannot be removed", code=ErrorCode.NOT_ADMIN)
    if target == actor:
        raise Conflict("use groups.leave to leave a group", code=ErrorCode.CHAT_INVALID)


def check_admin_change(membership: Membership, actor: UserId, target: UserId) -> None:
    require_admin(membership.chat, actor)
    if target not in membership.members:
        raise NotFound("that user is not a member", code=ErrorCode.USER_NOT_FOUND)
    if target == membership.chat.creator_id:
        raise PermissionDenied("the creator is always an admin", code=ErrorCode.NOT_ADMIN)


def check_leave(membership: Membership) -> None:
    if membership.chat.kind is ChatKind.PRIVATE:
        raise Conflict("you cannot leave a private chat", code=ErrorCode.CHAT_INVALID)


def phone_visible_to(
    visibility: PhoneVisibility, *, owner: UserId, viewer: UserId, viewer_is_contact: bool
) -> bool:
    """Whether ``viewer`` may see ``owner``'s number under the owner's privacy setting."""
    if owner == viewer:
        return True
    match visibility:
        case PhoneVisibility.EVERYBODY:
            return True
        case PhoneVisibility.CONTACTS:
            return viewer_is_contact
        case PhoneVisibility.NOBODY:
            return False


def private_pair(a: UserId, b: UserId) -> tuple[UserId, UserId]:
    """The canonical (low, high) pair naming a 1:1 chat."""
    if a == b:
        raise Conflict("a private chat needs two different users", code=ErrorCode.CHAT_INVALID)
    return (a, b) if a < b else (b, a)


def apply_reaction(reactions: dict[str, int], old: str | None, new: str | None) -> dict[str, int]:
    """Counts after one user changes their reaction from ``old`` to ``new``."""
    counts = dict(reactions)
    if old is not None:
        left = counts.get(old, 0) - 1
        if left > 0:
            counts[old] = left
        else:
            counts.pop(old, None)
    if new is not None:
        counts[new] = counts.get(new, 0) + 1
    return counts


__all__ = [
    "apply_reaction",
    "check_admin_change",
    "check_leave",
    "check_removal",
    "members_to_add",
    "normalize_username",
    "phone_visible_to",
    "private_pair",
    "require_admin",
    "require_author",
    "require_group",
    "require_member",
    "validate_text",
]
