"""Domain records: frozen, slotted dataclasses the services pass around.

Text here is plaintext in memory only; the store seals it before it touches disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from samizdat.core.ids import ChatId, DeviceId, MessageId, UserId
from samizdat.protocol.models import ChatKind, PhoneVisibility


@dataclass(frozen=True, slots=True)
class Account:
    id: UserId
    display_name: str
    username: str | None
    phone_visibility: PhoneVisibility
    created_at: float


@dataclass(frozen=True, slots=True)
class Device:
    id: DeviceId
    user_id: UserId
    name: str
    created_at: float
    last_seen_at: float
    revoked: bool


@dataclass(frozen=True, slots=True)
class Chat:
    id: ChatId
    kind: ChatKind
    title: str
    creator_id: UserId
    created_at: float
    member_count: int
    admin_ids: frozenset[UserId] = frozenset()
    private_pair: tuple[UserId, UserId] | None = None

    def peer_of(self, user: UserId) -> UserId | None:
        if self.private_pair is None:
            return None
        a, b = self.private_pair
        return b if user == a else a


@dataclass(frozen=True, slots=True)
class Forward:
    chat_id: ChatId
    message_id: MessageId
    sender_id: UserId


@dataclass(frozen=True, slots=True)
class Message:
    id: MessageId
    chat_id: ChatId
    sender_id: UserId
    date: float
    text: str | None
    random_id: int
    reply_to_id: MessageId | None = None
    forward: Forward | None = None
    edit_date: float | None = None
    deleted: bool = False
    reactions: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Membership:
    """What the hot path needs to know about a chat, cached per node."""

    chat: Chat
    members: frozenset[UserId]


@dataclass(frozen=True, slots=True)
class DialogRow:
    chat: Chat
    last_message: Message | None
    unread_count: int
    read_inbox_max_id: int
    read_outbox_max_id: int


__all__ = ["Account", "Chat", "Device", "DialogRow", "Forward", "Membership", "Message"]
