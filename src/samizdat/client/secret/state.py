"""A device's secret-chat state, apart from keys: chats, history, devices it knows, counts.

Kept in the vault (sealed, next to the keys) as one JSON document; these models parse it
back strictly. The rules that need no I/O live here too: what an arriving count means
(in order, a gap, late, or a replay), which devices are new or changed, when a message
self-destructs.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

#: How many skipped counts a stream remembers (a late arrival older than that is a replay).
MAX_MISSING = 1000
#: Envelope ids remembered after processing, so a re-delivered envelope is not an error.
MAX_PROCESSED = 500


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


class Arrival(StrEnum):
    IN_ORDER = "in_order"
    GAP = "gap"  # earlier ones are missing (dropped, or still to come)
    LATE = "late"  # fills an earlier gap: it was reordered
    REPLAY = "replay"  # seen before: ignore it


class Stream(Model):
    """What has arrived of one sender's numbered sequence (Olm ``n`` or a Megolm index)."""

    last: int = 0
    missing: list[int] = Field(default_factory=list)

    def observe(self, n: int) -> tuple[Arrival, int]:
        """Record number ``n``; returns what it means and, for a gap, how many are missing."""
        if n == self.last + 1:
            self.last = n
            return Arrival.IN_ORDER, 0
        if n > self.last:
            skipped = n - self.last - 1
            self.missing.extend(range(max(self.last + 1, n - MAX_MISSING), n))
            del self.missing[:-MAX_MISSING]
            self.last = n
            return Arrival.GAP, skipped
        if n in self.missing:
            self.missing.remove(n)
            return Arrival.LATE, 0
        return Arrival.REPLAY, 0


class Trust(StrEnum):
    NEW = "new"  # never confirmed by the user
    ACCEPTED = "accepted"  # the user chose to send to it anyway
    VERIFIED = "verified"  # emoji compared (SAS) and the keys MACed


class KnownDevice(Model):
    user_id: int
    device_id: int
    identity_key: str
    signing_key: str
    first_seen: float
    trust: Trust = Trust.NEW
    gone: bool = False


class DeviceChange(StrEnum):
    NEW = "new"
    KEYS_CHANGED = "keys_changed"
    GONE = "gone"


class MessageEntry(Model):
    kind: Literal["message"] = "message"
    id: str
    sender_user: int
    sender_device: int
    text: str
    sent_at: float
    received_at: float
    ttl: int = 0
    outgoing: bool = False
    late: bool = False
    unverified: bool = False  # from a new, unverified device of a verified user
    read_at: float | None = None
    expires_at: float | None = None


class NoticeLevel(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ALERT = "alert"  # shown loudly: possible interception, lost or forged messages


class NoticeEntry(Model):
    kind: Literal["notice"] = "notice"
    at: float
    level: NoticeLevel
    code: str
    text: str


Entry = Annotated[MessageEntry | NoticeEntry, Field(discriminator="kind")]


class GroupInfo(Model):
    title: str
    admin: int
    members: list[int]
    epoch: int = 1
    seen_epoch: int = 0  # the newest epoch other members' traffic was made for


class SecretChat(Model):
    """A 1:1 secret chat (``peer``) or a secret group (``group``), with its history."""

    id: str
    peer: int | None = None
    group: GroupInfo | None = None
    ttl: int = 0
    created_at: float
    left: bool = False  # a group this device's user left or was removed from
    segments: int = 0  # history segments in the vault (see history.py)
    history: list[Entry] = Field(default_factory=list, exclude=True)

    def member_ids(self, me: int) -> list[int]:
        """Everyone whose devices get this chat's messages (including my own other devices)."""
        if self.group is not None:
            return sorted(set(self.group.members) | {me})
        assert self.peer is not None
        return sorted({self.peer, me})

    def message(self, message_id: str, *, within: int | None = None) -> MessageEntry | None:
        """The message with this id; ``within`` looks only at that many latest entries."""
        entries = self.history if within is None else self.history[-within:]
        for entry in reversed(entries):
            if isinstance(entry, MessageEntry) and entry.id == message_id:
                return entry
        return None

    def notice(self, now: float, level: NoticeLevel, code: str, text: str) -> NoticeEntry:
        entry = NoticeEntry(at=now, level=level, code=code, text=text)
        self.history.append(entry)
        return entry

    def start_timers(self, ids: set[str], now: float, *, outgoing: bool) -> int | None:
        """Messages in ``ids`` were read now: those with a timer start counting down.
        Returns the first index changed, if any."""
        first = None
        for index, entry in enumerate(self.history):
            if (
                isinstance(entry, MessageEntry)
                and entry.id in ids
                and entry.outgoing == outgoing
                and _read(entry, now)
                and first is None
            ):
                first = index
        return first

    def read_unread(self, now: float) -> tuple[list[MessageEntry], int | None]:
        """Mark every unread incoming message read (their timers start); returns them and
        the first index changed."""
        read: list[MessageEntry] = []
        first = None
        for index, entry in enumerate(self.history):
            if isinstance(entry, MessageEntry) and not entry.outgoing and entry.read_at is None:
                _read(entry, now)
                read.append(entry)
                first = index if first is None else first
        return read, first

    def purge_expired(self, now: float) -> int | None:
        """Delete messages whose self-destruct time has come; returns the first index
        removed, if any."""
        for index, entry in enumerate(self.history):
            if _expired(entry, now):
                self.history = [e for e in self.history if not _expired(e, now)]
                return index
        return None


def _expired(entry: Entry, now: float) -> bool:
    return (
        isinstance(entry, MessageEntry) and entry.expires_at is not None and entry.expires_at <= now
    )


def _read(entry: MessageEntry, now: float) -> bool:
    """Start the entry's timer; whether anything changed."""
    changed = False
    if entry.read_at is None:
        entry.read_at, changed = now, True
    if entry.ttl and entry.expires_at is None:
        entry.expires_at, changed = now + entry.ttl, True
    return changed


class GroupSessionInfo(Model):
    """Who an inbound group session belongs to (learned over Olm), and its indices seen."""

    group: str
    sender_user: int
    sender_device: int
    sender_key: str
    seen: Stream

    @property
    def owner(self) -> tuple[str, int, int, str]:
        """The group and the device (user, id, identity key) that shared this session."""
        return (self.group, self.sender_user, self.sender_device, self.sender_key)


class VerificationRequest(Model):
    """A peer device's request to compare emoji, kept until answered or stale."""

    user_id: int
    device_id: int
    at: float


class OutboundInfo(Model):
    """This device's current group session: to whom its key went, and its member set."""

    session_id: str
    shared_with: list[str] = Field(default_factory=list)  # identity keys
    members: list[int] = Field(default_factory=list)


class SecretState(Model):
    """Everything but keys: the vault's ``state`` section."""

    version: Literal[1] = 1
    device_id: int = 0
    chats: dict[str, SecretChat] = Field(default_factory=dict)
    devices: dict[int, dict[int, KnownDevice]] = Field(default_factory=dict)
    sent: dict[str, int] = Field(default_factory=dict)  # by recipient identity key
    received: dict[str, Stream] = Field(default_factory=dict)  # by sender identity key
    group_sessions: dict[str, GroupSessionInfo] = Field(default_factory=dict)
    outbound: dict[str, OutboundInfo] = Field(default_factory=dict)  # by group id
    processed: list[int] = Field(default_factory=list)
    verified_users: list[int] = Field(default_factory=list)
    verification_requests: dict[str, VerificationRequest] = Field(default_factory=dict)

    def direct_chat(self, user_id: int, now: float) -> SecretChat:
        """The 1:1 secret chat with ``user_id``, created if there is none yet."""
        chat_id = f"u{user_id}"
        chat = self.chats.get(chat_id)
        if chat is None:
            chat = self.chats[chat_id] = SecretChat(id=chat_id, peer=user_id, created_at=now)
        return chat

    def next_count(self, identity_key: str) -> int:
        n = self.sent.get(identity_key, 0) + 1
        self.sent[identity_key] = n
        return n

    def was_processed(self, envelope_id: int) -> bool:
        return envelope_id in self.processed

    def mark_processed(self, envelope_id: int) -> None:
        self.processed.append(envelope_id)
        del self.processed[:-MAX_PROCESSED]

    def user_verified(self, user_id: int) -> bool:
        """Whether this user was ever verified here: then their new or changed devices need
        the person's consent (a verified device whose keys change does not stay verified)."""
        return user_id in self.verified_users

    def mark_verified(self, device: KnownDevice) -> None:
        device.trust = Trust.VERIFIED
        if device.user_id not in self.verified_users:
            self.verified_users.append(device.user_id)

    def reconcile(
        self, user_id: int, fetched: list[KnownDevice], now: float
    ) -> list[tuple[DeviceChange, KnownDevice]]:
        """Bring the known devices of ``user_id`` in line with a fresh, signature-checked
        list; returns what changed. A device id whose keys differ is a new device as far as
        trust goes (and is reported loudly by the caller)."""
        known = self.devices.setdefault(user_id, {})
        changes: list[tuple[DeviceChange, KnownDevice]] = []
        if not known:  # the first look at this user: nothing to compare with
            known.update({d.device_id: d for d in fetched})
            return changes
        fresh_ids = {d.device_id for d in fetched}
        for device in fetched:
            old = known.get(device.device_id)
            if old is None:
                known[device.device_id] = device
                changes.append((DeviceChange.NEW, device))
            elif (old.identity_key, old.signing_key) != (device.identity_key, device.signing_key):
                known[device.device_id] = device  # trust starts over at NEW
                changes.append((DeviceChange.KEYS_CHANGED, device))
            elif old.gone:
                old.gone = False
        for device_id, old in known.items():
            if device_id not in fresh_ids and not old.gone:
                old.gone = True
                changes.append((DeviceChange.GONE, old))
        return changes

    def live_devices(self, user_id: int) -> list[KnownDevice]:
        return [d for d in self.devices.get(user_id, {}).values() if not d.gone]


__all__ = [
    "MAX_MISSING",
    "MAX_PROCESSED",
    "Arrival",
    "DeviceChange",
    "Entry",
    "GroupInfo",
    "GroupSessionInfo",
    "KnownDevice",
    "MessageEntry",
    "NoticeEntry",
    "NoticeLevel",
    "OutboundInfo",
    "SecretChat",
    "SecretState",
    "Stream",
    "Trust",
    "VerificationRequest",
]
