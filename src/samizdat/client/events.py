"""Event types for ``@client.on(...)``: the protocol's update models, under friendly names."""

from __future__ import annotations

from samizdat.protocol.models import (
    ChatLeftUpdate as ChatLeft,
)
from samizdat.protocol.models import (
    ChatUpdatedUpdate as ChatUpdated,
)
from samizdat.protocol.models import (
    MessageEditedUpdate as MessageEdited,
)
from samizdat.protocol.models import (
    MessagesDeletedUpdate as MessagesDeleted,
)
from samizdat.protocol.models import (
    NewMessageUpdate as NewMessage,
)
from samizdat.protocol.models import (
    ReactionUpdate as ReactionChanged,
)
from samizdat.protocol.models import (
    ReadInboxUpdate as ReadInbox,
)
from samizdat.protocol.models import (
    ReadOutboxUpdate as ReadOutbox,
)
from samizdat.protocol.models import (
    TypingUpdate as Typing,
)
from samizdat.protocol.models import Wire


class AnyUpdate:
    """Pass to ``client.on`` to receive every update."""


__all__ = [
    "AnyUpdate",
    "ChatLeft",
    "ChatUpdated",
    "MessageEdited",
    "MessagesDeleted",
    "NewMessage",
    "ReactionChanged",
    "ReadInbox",
    "ReadOutbox",
    "Typing",
    "Wire",
]
