"""Receiving secret messages: from a relayed envelope to a checked history entry.

Every envelope is decrypted with the key of the device the server says sent it, then checked
before anything is applied: the payload must name that sender and this device (and its
identity key), its count must follow the sender's last one (a jump is a gap, a missing one
that turns up is late, anything else seen before is a replay), a group message must come
from the device its session was shared by, from a current member, and a group change from
the group's admin with a newer epoch. What fails a check is a loud notice, never a message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from samizdat.client.secret.devices import DeviceDirectory
from samizdat.client.secret.events import SecretMessage
from samizdat.client.secret.history import HistoryStore
from samizdat.client.secret.notices import Notices, ttl_text
from samizdat.client.secret.payloads import (
    DEVICE_ENVELOPE,
    GROUP_ENVELOPE,
    Body,
    ChatStarted,
    GroupLeave,
    GroupState,
    Read,
    RoomKey,
    SasAccept,
    SasBody,
    SasCancel,
    SasKey,
    SasMac,
    SasStart,
    SetTtl,
    Text,
)
from samizdat.client.secret.state import (
    Arrival,
    GroupInfo,
    GroupSessionInfo,
    KnownDevice,
    MessageEntry,
    NoticeLevel,
    SecretChat,
    SecretState,
    Stream,
    Trust,
)
from samizdat.crypto.e2ee import OlmError
from samizdat.crypto.megolm import MegolmError, split_group_message
from samizdat.crypto.secret_keys import SecretKeys
from samizdat.protocol.models import SecretMessageUpdate

#: A resend after a partly failed send comes right after the first copy: look this far back.
_RESEND_WINDOW = 500
#: Inbound group sessions kept per sender device and group (older ones are forgotten, so
#: late messages of a session two rotations back no longer open).
_SESSIONS_PER_SENDER = 3


class Receiver:
    """Applies envelopes to one open device's keys and state. ``rotate`` drops this device's
    outbound session for a group (members changed); ``on_sas`` takes verification payloads."""

    def __init__(
        self,
        keys: SecretKeys,
        state: SecretState,
        directory: DeviceDirectory,
        history: HistoryStore,
        notices: Notices,
        *,
        clock: Callable[[], float],
        user_id: int,
        device_id: int,
        rotate: Callable[[str], None],
        on_sas: Callable[[SasBody, KnownDevice], None],
    ) -> None:
        self.keys, self.state, self.directory = keys, state, directory
        self.history, self.notices, self.clock = history, notices, clock
        self.user_id, self.device_id = user_id, device_id
        self.rotate, self.on_sas = rotate, on_sas

    async def process(self, update: SecretMessageUpdate) -> None:
        """Decrypt, check and apply one envelope; whatever is wrong with it becomes a loud
        notice in the chat it concerns, never a shown message."""
        sender, changes = await self.directory.device(
            update.sender_user_id, update.sender_device_id
        )
        self.notices.note_changes(changes)
        fallback_chat = self.fallback_chat(update.sender_user_id)
        if sender is None:
            self.notices.alert(
                fallback_chat,
                "unknown_device",
                f"A secret message claimed to come from user {update.sender_user_id}'s device "
                f"{update.sender_device_id}, which has no valid keys: it was dropped",
            )
            return
        if update.olm_type == 2:
            self._group(update, sender, fallback_chat)
            return
        try:
            opened = self.keys.decrypt_from_device(
                sender.identity_key, update.olm_type, update.ciphertext
            )
            envelope = DEVICE_ENVELOPE.validate_python(opened.payload)
        except (OlmError, ValidationError):
            self.notices.alert(
                fallback_chat,
                "undecryptable",
                f"A secret message from {self.notices.who(sender)} could not be decrypted "
                "(altered, replayed, or sent to an old key); it is not shown",
            )
            return
        if (
            envelope.sender_user != update.sender_user_id
            or envelope.sender_device != update.sender_device_id
            or envelope.recipient_user != self.user_id
            or envelope.recipient_device != self.device_id
            or envelope.recipient_key != self.keys.identity_key
        ):
            self.notices.alert(
                fallback_chat,
                "misaddressed",
                f"A secret message from {self.notices.who(sender)} was not addressed to this "
                "device as it claims; it was dropped",
            )
            return
        body = envelope.body
        chat = self._chat_for(body, sender, fallback_chat)
        arrival, missing = self.state.received.setdefault(sender.identity_key, Stream()).observe(
            envelope.n
        )
        if arrival is Arrival.REPLAY:
            self.notices.alert(
                chat,
                "replay",
                f"A replayed secret message from {self.notices.who(sender)} was ignored",
            )
            return
        if arrival is Arrival.GAP:
            self.notices.alert(chat, "gap", _gap_text(missing, self.notices.who(sender)))
        late = arrival is Arrival.LATE
        if opened.group_key is not None:
            self._accept_room_key(body, sender, opened.group_key, chat)
            return
        await self._apply(body, sender, chat, late)

    def _group(self, update: SecretMessageUpdate, sender: KnownDevice, fallback_chat: str) -> None:
        try:
            session_id, _ = split_group_message(update.ciphertext)
        except MegolmError:
            session_id = ""
        info = self.state.group_sessions.get(session_id)
        chat_id = f"g{info.group}" if info is not None else fallback_chat
        try:
            opened, payload = self.keys.decrypt_group(update.ciphertext)
            envelope = GROUP_ENVELOPE.validate_python(payload)
        except (MegolmError, ValidationError):
            self.notices.alert(
                chat_id,
                "undecryptable",
                f"A group message from {self.notices.who(sender)} could not be decrypted: it "
                "was sent before this device joined or after you were removed, or it was altered",
            )
            return
        if (
            info is None
            # the session is the relayed sender's, and the payload says so too
            or info.owner != (envelope.group, *_relayed_sender(update), sender.identity_key)
            or (envelope.sender_user, envelope.sender_device) != _relayed_sender(update)
            or envelope.body.chat != chat_id
        ):
            self.notices.alert(
                chat_id,
                "misaddressed",
                f"A group message relayed as from {self.notices.who(sender)} was sealed by someone "
                "else; it was dropped",
            )
            return
        chat = self.state.chats.get(chat_id)
        if chat is None or chat.group is None or update.sender_user_id not in chat.group.members:
            self.notices.alert(
                chat_id,
                "not_member",
                f"A group message from non-member {self.notices.who(sender)} was ignored",
            )
            return
        self._saw_epoch(chat, envelope.epoch)
        arrival, missing = info.seen.observe(opened.message_index + 1)
        if arrival is Arrival.REPLAY:
            self.notices.alert(
                chat_id,
                "replay",
                f"A replayed group message from {self.notices.who(sender)} was ignored",
            )
            return
        if arrival is Arrival.GAP:
            self.notices.alert(chat_id, "gap", _gap_text(missing, self.notices.who(sender)))
        self._add_text(chat, envelope.body, sender, arrival is Arrival.LATE)

    def fallback_chat(self, sender_user: int) -> str:
        return f"u{sender_user}" if sender_user != self.user_id else ""

    def _chat_for(self, body: Body, sender: KnownDevice, fallback: str) -> str:
        """The local chat a payload belongs to, from the sender's naming of it."""
        ref = getattr(body, "chat", None)
        if ref is None:
            group = getattr(body, "group", None)
            return f"g{group}" if group else fallback
        if ref.startswith("g"):
            return str(ref)
        if sender.user_id == self.user_id:
            return str(ref)  # my other device, writing to that peer
        return f"u{sender.user_id}" if ref == f"u{self.user_id}" else ""

    def _accept_room_key(self, body: Body, sender: KnownDevice, key: Any, chat_id: str) -> None:
        chat = self.state.chats.get(chat_id)
        if (
            not isinstance(body, RoomKey)
            or body.session_id != key.session_id
            or chat is None
            or chat.group is None
            or sender.user_id not in chat.group.members
        ):
            self.notices.alert(
                chat_id or self.fallback_chat(sender.user_id),
                "bad_key",
                f"A group key from {self.notices.who(sender)} for a group they are not in was "
                "refused",
            )
            return
        owner = (body.group, sender.user_id, sender.device_id, sender.identity_key)
        known = self.state.group_sessions.get(body.session_id)
        if known is not None or body.session_id in self.keys.inbound:
            if known is None or known.owner != owner:
                self.notices.alert(
                    chat_id,
                    "bad_key",
                    f"{self.notices.who(sender)} sent a key for a group session that is not "
                    "theirs; refused",
                )
            return  # the owner sharing again: what this device has seen stands
        try:
            self.keys.accept(key)
        except MegolmError:
            self.notices.alert(
                chat_id,
                "bad_key",
                f"A malformed group key from {self.notices.who(sender)} was refused",
            )
            return
        self._saw_epoch(chat, body.epoch)
        first = self.keys.inbound.first_index(body.session_id)
        forget_old_sessions(self.keys, self.state, body.group, sender.user_id, sender.device_id)
        self.state.group_sessions[body.session_id] = GroupSessionInfo(
            group=body.group,
            sender_user=sender.user_id,
            sender_device=sender.device_id,
            sender_key=sender.identity_key,
            seen=Stream(last=first),
        )

    def _saw_epoch(self, chat: SecretChat, epoch: int) -> None:
        """Group traffic made for a newer member list than this device knows: a change did
        not arrive (or not yet). Sending stops until it does."""
        group = chat.group
        if group is None or epoch <= max(group.epoch, group.seen_epoch):
            return
        group.seen_epoch = epoch
        self.notices.alert(
            chat.id,
            "group_behind",
            "This group was changed on another device but the change has not reached this "
            "one: you cannot send here until it does (the server may be withholding it)",
        )

    async def _apply(self, body: Body, sender: KnownDevice, chat_id: str, late: bool) -> None:
        if isinstance(body, SasStart | SasAccept | SasKey | SasMac | SasCancel):
            self.on_sas(body, sender)
            return
        if isinstance(body, GroupState):
            self._apply_group_state(body, sender)
            return
        if isinstance(body, RoomKey):
            self.notices.alert(chat_id, "bad_key", "A group-key message without a key was ignored")
            return
        if not chat_id:
            self.notices.alert(
                self.fallback_chat(sender.user_id),
                "misaddressed",
                f"A secret message from {self.notices.who(sender)} named a chat that is not "
                "between you; ignored",
            )
            return
        chat = self.notices.chat(chat_id)
        if chat is None:
            return  # a group this device never joined: nothing to apply it to
        if chat.group is not None and (chat.left or sender.user_id not in chat.group.members):
            # Only members change a group's timers or read marks; ignore the rest, loudly.
            self.notices.alert(
                chat.id,
                "not_member",
                f"A group message from non-member {self.notices.who(sender)} was ignored",
            )
            return
        match body:
            case Text():
                if chat.group is None:
                    self._add_text(chat, body, sender, late)
                else:
                    self.notices.alert(
                        chat.id, "misaddressed", "A group text arrived outside the group; ignored"
                    )
            case ChatStarted():
                if chat.group is None and sender.user_id != self.user_id:
                    chat.ttl = body.ttl
                    self.notices.notice(
                        chat,
                        NoticeLevel.INFO,
                        "started",
                        f"{self.notices.who(sender)} started a secret chat",
                    )
            case Read():
                first = chat.start_timers(
                    set(body.ids), self.clock(), outgoing=sender.user_id != self.user_id
                )
                if first is not None:
                    self.history.touch(chat, first)
            case SetTtl():
                chat.ttl = body.ttl
                self.notices.notice(
                    chat, NoticeLevel.INFO, "ttl", ttl_text(self.notices.who(sender), body.ttl)
                )
            case GroupLeave():
                assert chat.group is not None
                if sender.user_id == self.user_id:
                    chat.left = True  # I left from another of my devices
                    self.notices.notice(chat, NoticeLevel.INFO, "group", "You left the group")
                else:
                    chat.group.members = [m for m in chat.group.members if m != sender.user_id]
                    self.notices.notice(
                        chat, NoticeLevel.INFO, "group", f"User {sender.user_id} left"
                    )
                self.rotate(body.group)

    def _add_text(self, chat: SecretChat, body: Text, sender: KnownDevice, late: bool) -> None:
        if chat.message(body.id, within=_RESEND_WINDOW) is not None:
            return  # a resend after a partly failed send: already here
        entry = MessageEntry(
            id=body.id,
            sender_user=sender.user_id,
            sender_device=sender.device_id,
            text=body.text,
            sent_at=body.sent_at,
            received_at=self.clock(),
            ttl=body.ttl,
            outgoing=sender.user_id == self.user_id,
            late=late,
            unverified=sender.trust is Trust.NEW and self.state.user_verified(sender.user_id),
        )
        chat.history.append(entry)
        self.history.touch(chat)
        self.notices.events.append(SecretMessage(chat.id, entry))

    def _apply_group_state(self, body: GroupState, sender: KnownDevice) -> None:
        chat_id = f"g{body.group}"
        chat = self.state.chats.get(chat_id)
        if chat is None:
            if sender.user_id != body.admin or self.user_id not in body.members:
                self.notices.alert(
                    self.fallback_chat(sender.user_id),
                    "group",
                    "A malformed group invitation was ignored",
                )
                return
            chat = SecretChat(
                id=chat_id,
                group=GroupInfo(
                    title=body.title, admin=body.admin, members=body.members, epoch=body.epoch
                ),
                ttl=body.ttl,
                created_at=self.clock(),
            )
            self.state.chats[chat_id] = chat
            self.notices.notice(
                chat,
                NoticeLevel.INFO,
                "group",
                f"{self.notices.who(sender)} added you to {body.title!r}",
            )
            return
        group = chat.group
        if (
            group is None
            or sender.user_id != group.admin
            or body.admin != group.admin
            or body.admin not in body.members
        ):
            self.notices.alert(
                chat_id,
                "group",
                f"{self.notices.who(sender)} tried to change a group they do not run",
            )
            return
        if body.epoch <= group.epoch:
            return  # an old state (or a resend): the newer one stands
        before = set(group.members)
        group.title, group.members, group.epoch = body.title, body.members, body.epoch
        chat.ttl = body.ttl
        if self.user_id in body.members and chat.left:
            chat.left = False
            self.notices.notice(
                chat, NoticeLevel.INFO, "group", f"{self.notices.who(sender)} added you back"
            )
        removed, added = before - set(body.members), set(body.members) - before
        if self.user_id not in body.members:
            chat.left = True
            self.rotate(body.group)
            self.notices.notice(
                chat, NoticeLevel.WARNING, "group", "You were removed from this group"
            )
            return
        if removed:
            self.rotate(body.group)
            self.notices.notice(
                chat, NoticeLevel.INFO, "group", f"Removed: users {sorted(removed)}"
            )
        if added:
            self.notices.notice(chat, NoticeLevel.INFO, "group", f"Added: users {sorted(added)}")


def _relayed_sender(update: SecretMessageUpdate) -> tuple[int, int]:
    return update.sender_user_id, update.sender_device_id


def forget_old_sessions(
    keys: SecretKeys, state: SecretState, group: str, user_id: int, device_id: int
) -> None:
    """Keep the newest few group sessions of one sender device, so the vault does not
    grow by a session every hundred messages forever."""
    theirs = [
        sid
        for sid, info in state.group_sessions.items()
        if (info.group, info.sender_user, info.sender_device) == (group, user_id, device_id)
    ]
    for session_id in theirs[: max(0, len(theirs) - (_SESSIONS_PER_SENDER - 1))]:
        keys.inbound.forget(session_id)
        del state.group_sessions[session_id]


def _gap_text(missing: int, who: str) -> str:
    plural = "message" if missing == 1 else "messages"
    return (
        f"{missing} secret {plural} from {who} did not arrive (dropped or delayed by the "
        "server, or expired before this device fetched them)"
    )


__all__ = ["Receiver", "forget_old_sessions"]
