"""What ``SecretChats.on(...)`` handlers receive: decrypted messages and loud notices."""

from __future__ import annotations

from dataclasses import dataclass

from samizdat.client.secret.state import MessageEntry, NoticeEntry


@dataclass(frozen=True, slots=True)
class SecretMessage:
    """A secret message this device decrypted (or sent from another of my devices)."""

    chat_id: str
    entry: MessageEntry


@dataclass(frozen=True, slots=True)
class SecretNotice:
    """Something the user must see: a gap, a message that did not decrypt, a changed key,
    a new device, a membership or timer change."""

    chat_id: str
    entry: NoticeEntry


@dataclass(frozen=True, slots=True)
class VerificationRequested:
    """A peer's device asks to compare emoji: answer with ``SecretChats.verify(peer)``."""

    user_id: int
    device_id: int
    transaction: str


__all__ = ["SecretMessage", "SecretNotice", "VerificationRequested"]
