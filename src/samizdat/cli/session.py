"""From a profile directory to a connected ``Client``, and the look-ups commands share.

Every command but ``listen`` opens a one-shot client (``receive_updates=False``): it neither
catches up nor moves the profile's saved update number, so ``listen`` later still prints
everything that arrived since it last ran.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from samizdat.client import Client, Profile, Session
from samizdat.protocol.errors import AuthError, ErrorCode, SamizdatError
from samizdat.protocol.models import ChatKind

DEFAULT_PROFILE = Path("~/.samizdat")


class NotLoggedIn(AuthError):
    """The profile holds no session; the message says how to make one."""


def login_command(profile: Path) -> str:
    where = "" if profile == DEFAULT_PROFILE.expanduser() else f"--profile {profile} "
    return f"samizdat {where}login --server URL --phone NUMBER"


def load_session(profile: Path) -> Session:
    """The saved session, or NotLoggedIn (also for a corrupt profile file)."""
    try:
        session = Profile(profile).load()
    except (ValueError, TypeError) as exc:
        raise NotLoggedIn(
            f"the profile in {profile} is unreadable: run {login_command(profile)}",
            code=ErrorCode.UNAUTHORIZED,
        ) from exc
    if session is None:
        raise NotLoggedIn(
            f"not logged in: run {login_command(profile)}", code=ErrorCode.UNAUTHORIZED
        )
    return session


@asynccontextmanager
async def logged_in(profile: Path) -> AsyncIterator[Client]:
    """A connected, authorised one-shot client for the profile's session."""
    async with Client(session=load_session(profile), receive_updates=False) as client:
        yield client


def chat_ref(peer: str) -> str | int:
    """A chat id as int; ``@username`` and ``+phone`` stay strings for ``Client.chat``."""
    return int(peer) if peer.isdigit() else peer


async def chat_id(client: Client, peer: str) -> int:
    """The chat for PEER: a chat id is used as is (the server checks it), a user's 1:1 chat
    is opened (created if needed)."""
    ref = chat_ref(peer)
    if isinstance(ref, int):
        return ref
    return (await client.chat(ref)).id


class Names:
    """Display names for user and chat ids, each looked up at most once per command."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._users: dict[int, str] = {}
        self._chats: dict[int, str] = {}
        if client.me is not None:
            self._users[client.me.id] = client.me.display_name

    async def user(self, user_id: int) -> str:
        name = self._users.get(user_id)
        if name is None:
            try:
                name = (await self.client.get_user(user_id)).display_name
            except SamizdatError:
                name = f"user {user_id}"
            self._users[user_id] = name
        return name

    async def chat(self, chat: int) -> str:
        """A group's title, or the other user's name for a 1:1 chat."""
        title = self._chats.get(chat)
        if title is None:
            try:
                found = await self.client.chat(chat)
            except SamizdatError:
                title = f"chat {chat}"
            else:
                if found.kind is ChatKind.PRIVATE and found.peer_id is not None:
                    title = await self.user(found.peer_id)
                else:
                    title = found.title
            self._chats[chat] = title
        return title

    def remember_chat(self, chat: int, title: str) -> None:
        self._chats[chat] = title


__all__ = [
    "DEFAULT_PROFILE",
    "Names",
    "NotLoggedIn",
    "chat_id",
    "chat_ref",
    "load_session",
    "logged_in",
    "login_command",
]
