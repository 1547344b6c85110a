"""The Samizdat client: an async SDK (``Client``) and its event types."""

from samizdat.client.client import Client
from samizdat.client.events import (
    AnyUpdate,
    ChatLeft,
    ChatUpdated,
    MessageEdited,
    MessagesDeleted,
    NewMessage,
    ReactionChanged,
    ReadInbox,
    ReadOutbox,
    Typing,
)
from samizdat.client.profile import Profile, Session

__all__ = [
    "AnyUpdate",
    "ChatLeft",
    "ChatUpdated",
    "Client",
    "MessageEdited",
    "MessagesDeleted",
    "NewMessage",
    "Profile",
    "ReactionChanged",
    "ReadInbox",
    "ReadOutbox",
    "Session",
    "Typing",
]
