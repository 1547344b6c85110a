"""What travels inside secret messages: the payloads only the two ends can read.

A decrypted payload is untrusted input like any frame from the network: it is parsed here,
strictly, once. Every Olm payload names its sender and recipient (user, device, and the
recipient's identity key) and carries ``n``, the sender device's running count of messages
to that recipient device; the receiver checks the names against the envelope and the count
against what it has seen, so a relay that redirects, drops, reorders or replays ciphertext
is caught. Group (Megolm) payloads carry a text only; the key that opens them arrived over
Olm from a known device, and the Megolm index plays the part of ``n``.

Chats are named from the *sender's* side: ``u<user id>`` is the 1:1 chat with that user,
``g<id>`` a secret group (a random 128-bit id, hex).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
)

from samizdat.protocol.methods import MAX_TEXT_LENGTH

#: Self-destruct timers: off, or 5 seconds to one week.
MIN_TTL = 5
MAX_TTL = 7 * 24 * 3600
MAX_SECRET_GROUP_MEMBERS = 1000


def ttl_valid(seconds: int) -> bool:
    return seconds == 0 or MIN_TTL <= seconds <= MAX_TTL


ChatRef = Annotated[str, StringConstraints(pattern=r"^(u[1-9][0-9]{0,18}|g[0-9a-f]{32})$")]
GroupId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
MessageId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
Key = Annotated[str, StringConstraints(min_length=1, max_length=128)]
UserIdField = Annotated[int, Field(ge=1, le=2**63 - 1)]


def _ttl(seconds: int) -> int:
    if not ttl_valid(seconds):
        raise ValueError(f"a timer is 0 (off) or {MIN_TTL} to {MAX_TTL} seconds")
    return seconds


Ttl = Annotated[int, Field(ge=0, le=MAX_TTL), AfterValidator(_ttl)]
Transaction = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
#: Seconds since the epoch, finite and before the year 2200 (rendering must not overflow).
Timestamp = Annotated[float, Field(ge=0, le=7_258_118_400, allow_inf_nan=False)]
Epoch = Annotated[int, Field(ge=1, le=2**53)]


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Text(Payload):
    type: Literal["text"] = "text"
    chat: ChatRef
    id: MessageId
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_LENGTH)]
    ttl: Ttl = 0
    sent_at: Timestamp


class ChatStarted(Payload):
    """The first message of a 1:1 secret chat (its pre-key message sets up the session)."""

    type: Literal["start"] = "start"
    chat: ChatRef
    ttl: Ttl = 0


class Read(Payload):
    """The sender's messages were read: self-destruct timers start now."""

    type: Literal["read"] = "read"
    chat: ChatRef
    ids: Annotated[list[MessageId], Field(min_length=1, max_length=100)]


class SetTtl(Payload):
    type: Literal["ttl"] = "ttl"
    chat: ChatRef
    ttl: Ttl


class RoomKey(Payload):
    """The sender device's group session for ``group`` (its key is taken out in crypto), made
    for the members of ``epoch``."""

    type: Literal["room_key"] = "room_key"
    group: GroupId
    session_id: Key
    epoch: Epoch


class GroupState(Payload):
    """A secret group's title and members, from its admin (creator); ``epoch`` only grows."""

    type: Literal["group"] = "group"
    group: GroupId
    title: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    admin: UserIdField
    members: Annotated[list[UserIdField], Field(min_length=1, max_length=MAX_SECRET_GROUP_MEMBERS)]
    epoch: Epoch
    ttl: Ttl = 0


class GroupLeave(Payload):
    type: Literal["leave"] = "leave"
    group: GroupId


class SasStart(Payload):
    type: Literal["sas.start"] = "sas.start"
    txn: Transaction


class SasAccept(Payload):
    type: Literal["sas.accept"] = "sas.accept"
    txn: Transaction
    commitment: Key


class SasKey(Payload):
    type: Literal["sas.key"] = "sas.key"
    txn: Transaction
    key: Key


class SasMac(Payload):
    type: Literal["sas.mac"] = "sas.mac"
    txn: Transaction
    key_ids: Key
    mac: dict[Key, Key]


class SasCancel(Payload):
    type: Literal["sas.cancel"] = "sas.cancel"
    txn: Transaction
    reason: Annotated[str, StringConstraints(max_length=200)]


Body = Annotated[
    Text
    | ChatStarted
    | Read
    | SetTtl
    | RoomKey
    | GroupState
    | GroupLeave
    | SasStart
    | SasAccept
    | SasKey
    | SasMac
    | SasCancel,
    Field(discriminator="type"),
]

SasBody = SasStart | SasAccept | SasKey | SasMac | SasCancel


class DeviceEnvelope(Payload):
    """An Olm payload: who it is from and for, the sender's count, and the body."""

    v: Literal[1] = 1
    sender_user: UserIdField
    sender_device: UserIdField
    recipient_user: UserIdField
    recipient_device: UserIdField
    recipient_key: Key
    n: Annotated[int, Field(ge=1)]
    body: Body


class GroupEnvelope(Payload):
    """A Megolm payload: a text for a secret group, from one device, sent with the member
    list of ``epoch`` (a receiver that knows only an older one missed a change)."""

    v: Literal[1] = 1
    group: GroupId
    epoch: Epoch
    sender_user: UserIdField
    sender_device: UserIdField
    body: Text


DEVICE_ENVELOPE = TypeAdapter(DeviceEnvelope)
GROUP_ENVELOPE = TypeAdapter(GroupEnvelope)

__all__ = [
    "DEVICE_ENVELOPE",
    "GROUP_ENVELOPE",
    "MAX_SECRET_GROUP_MEMBERS",
    "MAX_TTL",
    "MIN_TTL",
    "Body",
    "ChatStarted",
    "DeviceEnvelope",
    "GroupEnvelope",
    "GroupLeave",
    "GroupState",
    "Read",
    "RoomKey",
    "SasAccept",
    "SasBody",
    "SasCancel",
    "SasKey",
    "SasMac",
    "SasStart",
    "SetTtl",
    "Text",
    "ttl_valid",
]
