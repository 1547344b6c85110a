"""Secret chats: end-to-end encrypted 1:1 chats and groups across all of a user's devices."""

from samizdat.client.secret.engine import SecretChats, UnverifiedDevices
from samizdat.client.secret.events import SecretMessage, SecretNotice, VerificationRequested
from samizdat.client.secret.state import (
    KnownDevice,
    MessageEntry,
    NoticeEntry,
    NoticeLevel,
    SecretChat,
    Trust,
)
from samizdat.client.secret.verification import VerificationFailed
from samizdat.client.secret.verify import Fingerprint, fingerprints, verify

__all__ = [
    "Fingerprint",
    "KnownDevice",
    "MessageEntry",
    "NoticeEntry",
    "NoticeLevel",
    "SecretChat",
    "SecretChats",
    "SecretMessage",
    "SecretNotice",
    "Trust",
    "UnverifiedDevices",
    "VerificationFailed",
    "VerificationRequested",
    "fingerprints",
    "verify",
]
