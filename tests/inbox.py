"""Watching a real client receive updates, and expecting typed errors, in feature tests.

An ``Inbox`` records every update a client's handlers are given, in the order the SDK
delivers them: numbered updates in sequence and each once, typing as it comes. Tests await
the next one with a timeout instead of sleeping. To show that something did *not* arrive, a
test makes a later update happen and checks that it is the next one: updates to one user are
numbered, so anything pushed earlier would have come first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import orjson
import pytest

from samizdat.client import AnyUpdate, Client
from samizdat.protocol.errors import ErrorCode, SamizdatError
from samizdat.protocol.models import Wire
from tests.harness import second_device
from tests.raw_socket import RawSocket

#: Seconds to wait for a pushed update before the test fails.
WAIT = 10.0

U = TypeVar("U", bound=Wire)


class Inbox:
    """Every update one client is given, to be awaited in order."""

    def __init__(self, client: Client) -> None:
        self._queue: asyncio.Queue[Wire] = asyncio.Queue()
        client.on(AnyUpdate)(self._queue.put)

    async def next(self, kind: type[U], timeout: float = WAIT) -> U:
        """The next update; it must be a ``kind``."""
        update = await asyncio.wait_for(self._queue.get(), timeout)
        assert isinstance(update, kind), f"expected {kind.__name__}, got {update!r}"
        return update

    async def next_of(self, kind: type[U], timeout: float = WAIT) -> U:
        """The next ``kind``, passing over updates of other types."""
        async with asyncio.timeout(timeout):
            while True:
                update = await self._queue.get()
                if isinstance(update, kind):
                    return update

    def taken_now(self) -> list[Wire]:
        """Every update delivered so far and not yet taken, without waiting."""
        found: list[Wire] = []
        while not self._queue.empty():
            found.append(self._queue.get_nowait())
        return found


@contextlib.contextmanager
def refused(code: ErrorCode) -> Iterator[None]:
    """Expect the block to raise the typed error ``code`` (as the SDK raises it)."""
    with pytest.raises(SamizdatError) as caught:
        yield
    assert caught.value.code is code, f"expected {code.value}, got {caught.value!r}"


async def next_push(raw: RawSocket, timeout: float = WAIT) -> dict[str, Any]:
    """The next update frame pushed to a raw socket (set-aside ones first)."""
    if raw.updates:
        return raw.updates.pop(0)
    async with asyncio.timeout(timeout):
        while True:
            frame = orjson.loads(await raw.ws.recv())
            if "update" in frame:
                assert isinstance(frame, dict)
                return frame


def uid(client: Client) -> int:
    """The signed-in user's id."""
    assert client.session is not None, "client is not signed in"
    return client.session.user_id


async def phone_of(client: Client) -> str:
    """The signed-in user's number (a user always sees their own)."""
    phone = (await client.get_me()).phone
    assert phone is not None
    return phone


@contextlib.asynccontextmanager
async def another_device(server_url: str, user: Client | str) -> AsyncIterator[Client]:
    """Another signed-in SDK device of a user (given by a client or a test number)."""
    phone = user if isinstance(user, str) else await phone_of(user)
    device = await second_device(server_url, phone, device_name="another")
    try:
        yield device
    finally:
        await device.close()


@contextlib.asynccontextmanager
async def raw_device(
    server_url: str, phone: str, *, display_name: str | None = None
) -> AsyncIterator[tuple[RawSocket, dict[str, Any]]]:
    """A device of the user with test number ``phone`` on a raw, authorised socket.

    Yields the socket and the ``auth.sign_in`` result (token, device_id, user).
    """
    async with RawSocket.open(server_url) as raw:
        await raw.result("auth.send_code", phone=phone)
        params: dict[str, Any] = {"phone": phone, "code": phone[6] * 5, "device_name": "raw"}
        if display_name is not None:
            params["display_name"] = display_name
        signed: dict[str, Any] = await raw.result("auth.sign_in", **params)
        await raw.authorize(signed["token"])
        yield raw, signed


async def private_chat(a: Client, b: Client) -> int:
    """The id of the 1:1 chat between two signed-in clients (opened by ``a``)."""
    chat = await a.call("chats.open_private", user_id=uid(b))
    return int(chat["id"])


__all__ = [
    "WAIT",
    "Inbox",
    "another_device",
    "next_push",
    "phone_of",
    "private_chat",
    "raw_device",
    "refused",
    "uid",
]
