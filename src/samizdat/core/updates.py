"""Updates: every change a user must see, numbered per user so devices can resync.

Numbered updates are stored in the user's log; a device that reconnects asks for everything
after the last number it saw. Message-bearing updates store only references (chat, message):
the text lives once, sealed, in the message table, and a later delete-for-everyone also
removes it from what a resync returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from samizdat.core.ids import ChatId, MessageId, UserId


class UpdateKind(StrEnum):
    NEW_MESSAGE = "new_message"
    MESSAGE_EDITED = "message_edited"
    MESSAGES_DELETED = "messages_deleted"
    REACTION = "reaction"
    READ_INBOX = "read_inbox"
    READ_OUTBOX = "read_outbox"
    CHAT_UPDATED = "chat_updated"
    CHAT_LEFT = "chat_left"


#: Updates about one message, whose body carries the message as it now is.
MESSAGE_KINDS = frozenset({UpdateKind.NEW_MESSAGE, UpdateKind.MESSAGE_EDITED, UpdateKind.REACTION})


@dataclass(frozen=True, slots=True)
class UpdateRef:
    """One update before numbering: who gets it and what it refers to.

    ``message_ids`` lists the messages it concerns; ``emoji``/``actor``/``max_id``/
    ``for_everyone`` carry the few non-message facts an update needs.
    """

    kind: UpdateKind
    chat_id: ChatId
    message_ids: tuple[MessageId, ...] = ()
    actor: UserId | None = None
    max_id: int | None = None
    emoji: str | None = None
    for_everyone: bool = False


@dataclass(frozen=True, slots=True)
class Delivery:
    """An update numbered for one user."""

    user_id: UserId
    seq: int
    ref: UpdateRef


__all__ = ["MESSAGE_KINDS", "Delivery", "UpdateKind", "UpdateRef"]
