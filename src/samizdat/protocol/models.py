"""Wire objects: what a client sees of users, chats, messages, dialogs and updates.

Strict pydantic models, shared by the server (for OpenAPI and tests) and the SDK (to parse).
Identifiers are plain integers on the wire, all below 2**53 so JavaScript clients keep them exact.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PhoneVisibility(StrEnum):
    EVERYBODY = "everybody"
    CONTACTS = "contacts"
    NOBODY = "nobody"


class ChatKind(StrEnum):
    PRIVATE = "private"
    GROUP = "group"


class User(Wire):
    id: int
    display_name: str
    username: str | None = None
    phone: str | None = Field(None, description="Only when the user's privacy setting allows it")
    phone_visibility: PhoneVisibility | None = Field(None, description="Only on your own user")


class Device(Wire):
    id: int
    name: str
    created_at: float
    last_seen_at: float
    current: bool = False


class Chat(Wire):
    id: int
    kind: ChatKind
    title: str
    member_count: int
    admin_ids: list[int] = Field(default_factory=list)
    creator_id: int | None = None
    peer_id: int | None = Field(None, description="For private chats: the other user")


class ForwardInfo(Wire):
    chat_id: int
    message_id: int
    sender_id: int


class Message(Wire):
    id: int
    chat_id: int
    sender_id: int
    date: float
    text: str | None = Field(None, description="None once deleted for everyone")
    reply_to_id: int | None = None
    forward: ForwardInfo | None = None
    edit_date: float | None = None
    deleted: bool = False
    reactions: dict[str, int] = Field(default_factory=dict)


class Dialog(Wire):
    chat: Chat
    last_message: Message | None
    unread_count: int
    read_inbox_max_id: int
    read_outbox_max_id: int


class NewMessageUpdate(Wire):
    type: Literal["new_message"] = "new_message"
    message: Message


class MessageEditedUpdate(Wire):
    type: Literal["message_edited"] = "message_edited"
    message: Message


class MessagesDeletedUpdate(Wire):
    type: Literal["messages_deleted"] = "messages_deleted"
    chat_id: int
    message_ids: list[int]
    for_everyone: bool


class ReactionUpdate(Wire):
    type: Literal["reaction"] = "reaction"
    chat_id: int
    message_id: int
    user_id: int
    emoji: str | None
    reactions: dict[str, int]


class ReadInboxUpdate(Wire):
    """Your own other device read a chat up to max_id."""

    type: Literal["read_inbox"] = "read_inbox"
    chat_id: int
    max_id: int


class ReadOutboxUpdate(Wire):
    """Someone read your messages in a chat up to max_id."""

    type: Literal["read_outbox"] = "read_outbox"
    chat_id: int
    user_id: int
    max_id: int


class ChatUpdatedUpdate(Wire):
    type: Literal["chat_updated"] = "chat_updated"
    chat: Chat


class ChatLeftUpdate(Wire):
    """You left, or were removed from, a chat."""

    type: Literal["chat_left"] = "chat_left"
    chat_id: int


#: ``SecretMessageUpdate.olm_type`` of a group (Megolm) ciphertext; 0 and 1 are Olm's own.
OLM_TYPE_MEGOLM = 2


class SecretMessageUpdate(Wire):
    """A ciphertext for this device (ephemeral push; also in ``secret.pending`` until
    acknowledged with ``secret.ack``). The server cannot read it."""

    type: Literal["secret_message"] = "secret_message"
    id: int
    sender_user_id: int
    sender_device_id: int
    olm_type: int = Field(
        description="0 Olm pre-key, 1 Olm normal, 2 Megolm (group: one ciphertext sent to many)"
    )
    ciphertext: str
    sent_at: float


class TypingUpdate(Wire):
    """Ephemeral: never stored, never numbered."""

    type: Literal["typing"] = "typing"
    chat_id: int
    user_id: int


Update = Annotated[
    NewMessageUpdate
    | MessageEditedUpdate
    | MessagesDeletedUpdate
    | ReactionUpdate
    | ReadInboxUpdate
    | ReadOutboxUpdate
    | ChatUpdatedUpdate
    | ChatLeftUpdate
    | SecretMessageUpdate
    | TypingUpdate,
    Field(discriminator="type"),
]


class NumberedUpdate(Wire):
    seq: int
    update: Update


__all__ = [
    "OLM_TYPE_MEGOLM",
    "Chat",
    "ChatKind",
    "ChatLeftUpdate",
    "ChatUpdatedUpdate",
    "Device",
    "Dialog",
    "ForwardInfo",
    "Message",
    "MessageEditedUpdate",
    "MessagesDeletedUpdate",
    "NewMessageUpdate",
    "NumberedUpdate",
    "PhoneVisibility",
    "ReactionUpdate",
    "ReadInboxUpdate",
    "ReadOutboxUpdate",
    "SecretMessageUpdate",
    "TypingUpdate",
    "Update",
    "User",
    "Wire",
]
