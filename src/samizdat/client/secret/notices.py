"""Notices in secret chats' histories, and the events that tell the SDK's handlers.

Loud ones (``ALERT``) are what a person must not miss: a message that did not decrypt,
missing or replayed messages, changed keys. Notices name users by id; the CLI shows names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from samizdat.client.secret.devices import Change
from samizdat.client.secret.events import SecretMessage, SecretNotice, VerificationRequested
from samizdat.client.secret.history import HistoryStore
from samizdat.client.secret.state import (
    DeviceChange,
    KnownDevice,
    NoticeLevel,
    SecretChat,
    SecretState,
)

log = logging.getLogger(__name__)

Event = SecretMessage | SecretNotice | VerificationRequested


class Notices:
    def __init__(
        self,
        state: SecretState,
        history: HistoryStore,
        *,
        clock: Callable[[], float],
        user_id: int,
    ) -> None:
        self.state, self.history, self.clock, self.user_id = state, history, clock, user_id
        self.events: list[Event] = []  # for the handlers, once the engine's lock is released

    def who(self, device: KnownDevice) -> str:
        if device.user_id == self.user_id:
            return f"your device {device.device_id}"
        return f"user {device.user_id}'s device {device.device_id}"

    def notice(self, chat: SecretChat, level: NoticeLevel, code: str, text: str) -> None:
        entry = chat.notice(self.clock(), level, code, text)
        self.history.touch(chat)
        self.events.append(SecretNotice(chat.id, entry))

    def alert(self, chat_id: str, code: str, text: str) -> None:
        chat = self.chat(chat_id)
        if chat is None:
            log.warning("secret-chat alert outside any chat: %s", code)
            return
        self.notice(chat, NoticeLevel.ALERT, code, text)

    def note_changes(self, changes: list[Change]) -> None:
        """Device-list changes, in every chat the device's user is in (all chats for one's
        own devices): a new device of a verified user or of one's own account is a
        warning, changed keys an alert."""
        for change, device in changes:
            own = device.user_id == self.user_id
            level, text = _device_change_text(
                change, device, own=own, verified=self.state.user_verified(device.user_id)
            )
            for chat in self.state.chats.values():
                if (
                    own
                    or chat.peer == device.user_id
                    or (chat.group is not None and device.user_id in chat.group.members)
                ):
                    self.notice(chat, level, f"device_{change.value}", text)

    def chat(self, chat_id: str) -> SecretChat | None:
        if not chat_id:
            return None
        if chat_id in self.state.chats:
            return self.state.chats[chat_id]
        if chat_id.startswith("u"):
            return self.state.direct_chat(int(chat_id[1:]), self.clock())
        return None


def _device_change_text(
    change: DeviceChange, device: KnownDevice, *, own: bool, verified: bool
) -> tuple[NoticeLevel, str]:
    whose = "your" if own else f"user {device.user_id}'s"
    match change:
        case DeviceChange.NEW if own:
            return NoticeLevel.WARNING, (
                f"A new device ({device.device_id}) was added to your account and gets copies "
                "of your secret messages. If it is not yours, log it out now: "
                f"samizdat devices revoke {device.device_id}"
            )
        case DeviceChange.NEW if verified:
            return NoticeLevel.WARNING, (
                f"User {device.user_id} has a new device ({device.device_id}), not verified: "
                "compare emoji with samizdat secret verify"
            )
        case DeviceChange.NEW:
            return NoticeLevel.INFO, f"User {device.user_id} has a new device ({device.device_id})"
        case DeviceChange.KEYS_CHANGED:
            return NoticeLevel.ALERT, (
                f"The keys of {whose} device {device.device_id} CHANGED. If it was not "
                "reinstalled, someone may be intercepting: compare safety numbers "
                "(samizdat secret fingerprint) before you trust it"
            )
        case DeviceChange.GONE:
            return (
                NoticeLevel.INFO,
                f"{whose.capitalize()} device {device.device_id} was logged out",
            )
    raise AssertionError(change)  # pragma: no cover - the match is exhaustive


def ttl_text(who: str, seconds: int) -> str:
    if seconds == 0:
        return f"{who} turned the self-destruct timer off"
    return f"{who} set messages to self-destruct {seconds} s after they are read"


__all__ = ["Event", "Notices", "ttl_text"]
