"""Megolm group sessions for secret groups (vodozemac).

A sender device encrypts a group message once with its outbound session; every member device
that holds the matching inbound session opens it. The session key is handed over Olm, at the
ratchet's *current* index, so a device that receives it later cannot open earlier messages.
Rotating (a fresh outbound session, shared only with the current members) keeps a removed
member out of what follows.

On the wire a group message is ``base64(session id (32 bytes) || Megolm message)``: the
session id is public (it is the session's Ed25519 key, which signs every message) and tells
the receiver which inbound session to use, as Matrix's ``session_id`` field does.

Megolm itself does not stop a relay from replaying a message (an inbound session opens the
same index again and again); callers track the indices they have seen.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import vodozemac


class MegolmError(ValueError):
    """A group message did not open: unknown session (never shared with this device, or
    shared only after the message was sent), tampered, or malformed. Never a wrong text."""


@dataclass(frozen=True, slots=True)
class GroupPlaintext:
    session_id: str
    message_index: int
    plaintext: bytes


class OutboundGroup:
    """This device's current sending session for one secret group."""

    def __init__(self, session: vodozemac.GroupSession, created_at: float) -> None:
        self._session = session
        self.created_at = created_at

    @classmethod
    def create(cls, now: float) -> OutboundGroup:
        return cls(vodozemac.GroupSession(), now)

    @property
    def session_id(self) -> str:
        return str(self._session.session_id)

    @property
    def message_index(self) -> int:
        """How many messages this session has encrypted."""
        return int(self._session.message_index)

    def encrypt(self, plaintext: bytes) -> str:
        """The group message in its wire form (standard base64, what ``secret.send`` relays)."""
        message = self._session.encrypt(plaintext).to_bytes()
        return base64.b64encode(_session_id_bytes(self.session_id) + message).decode()

    def session_key(self) -> str:
        """The key at the current index: whoever gets it reads from the next message on."""
        return str(self._session.session_key.to_base64())

    def pickle(self, key: bytes) -> str:
        return str(self._session.pickle(key))

    @classmethod
    def from_pickle(cls, pickled: str, key: bytes, created_at: float) -> OutboundGroup:
        return cls(vodozemac.GroupSession.from_pickle(pickled, key), created_at)


class InboundGroups:
    """The inbound sessions this device holds, by session id."""

    def __init__(self) -> None:
        self._sessions: dict[str, vodozemac.InboundGroupSession] = {}

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._sessions

    def add(self, session_id: str, session_key: str) -> None:
        """Import a shared key; MegolmError if it is malformed or is not the key of
        ``session_id`` (a sender cannot pass one session off as another). An already-known
        session is kept as is: a re-share cannot rewind it to an earlier index."""
        if session_id in self._sessions:
            return
        try:
            session = vodozemac.InboundGroupSession(vodozemac.SessionKey(session_key))
        except Exception as exc:  # vodozemac raises several types; all mean "not a key"
            raise MegolmError("the shared group key is malformed") from exc
        if session.session_id != session_id:
            raise MegolmError("the shared group key does not belong to the session it names")
        self._sessions[session_id] = session

    def first_index(self, session_id: str) -> int:
        """The first message index the held key opens (what it was shared at)."""
        return int(self._sessions[session_id].first_known_index)

    def forget(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def decrypt(self, ciphertext: str) -> GroupPlaintext:
        """Open a group message; MegolmError if this device holds no key that opens it."""
        session_id, body = split_group_message(ciphertext)
        session = self._sessions.get(session_id)
        if session is None:
            raise MegolmError("no key for this group message's session")
        try:
            opened = session.decrypt(vodozemac.MegolmMessage.from_bytes(body))
        except Exception as exc:  # unknown index, bad signature or MAC, malformed
            raise MegolmError("the group message did not decrypt") from exc
        return GroupPlaintext(session_id, int(opened.message_index), bytes(opened.plaintext))

    def pickle(self, key: bytes) -> dict[str, str]:
        return {sid: str(s.pickle(key)) for sid, s in self._sessions.items()}

    @classmethod
    def from_pickle(cls, pickled: dict[str, str], key: bytes) -> InboundGroups:
        restored = cls()
        for session_id, data in pickled.items():
            restored._sessions[session_id] = vodozemac.InboundGroupSession.from_pickle(data, key)
        return restored


def _session_id_bytes(session_id: str) -> bytes:
    return base64.b64decode(session_id + "=" * (-len(session_id) % 4))


def split_group_message(ciphertext: str) -> tuple[str, bytes]:
    """The session id a group message names, and the Megolm message; MegolmError if the
    wire form is malformed. The id is only a hint: the session's signature decides."""
    try:
        raw = base64.b64decode(ciphertext, validate=True)
    except ValueError as exc:
        raise MegolmError("not a group message") from exc
    if len(raw) <= _SESSION_ID_BYTES:
        raise MegolmError("not a group message")
    session_id = base64.b64encode(raw[:_SESSION_ID_BYTES]).decode().rstrip("=")
    return session_id, raw[_SESSION_ID_BYTES:]


_SESSION_ID_BYTES = 32

__all__ = [
    "GroupPlaintext",
    "InboundGroups",
    "MegolmError",
    "OutboundGroup",
    "split_group_message",
]
