"""A WebSocket that speaks raw frames, for tests that send what the SDK never would.

``RawSocket`` sends any text or bytes and reads the server's replies, setting pushed updates
aside, so a test can check the exact error frame a malformed request gets and that the same
socket still answers the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from samizdat.client import Client
from samizdat.client.client import ws_url

REPLY_TIMEOUT = 10.0


class RawSocket:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.updates: list[dict[str, Any]] = []
        self._ids = itertools.count(1_000_000)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, server_url: str, *, from_ip: str | None = None) -> AsyncIterator[RawSocket]:
        """Connect; ``from_ip`` picks another loopback source (127.0.0.2...), which the
        server sees as another client address."""
        extra: dict[str, Any] = {"local_addr": (from_ip, 0)} if from_ip else {}
        async with connect(ws_url(server_url), max_size=2**22, open_timeout=10, **extra) as ws:
            yield cls(ws)

    async def send(self, frame: str | bytes | dict[str, Any]) -> None:
        if isinstance(frame, dict):
            frame = orjson.dumps(frame).decode()
        await self.ws.send(frame)

    async def reply(self, timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
        """The next frame that is not a pushed update."""
        async with asyncio.timeout(timeout):
            while True:
                frame = orjson.loads(await self.ws.recv())
                assert isinstance(frame, dict), frame
                if "update" in frame:
                    self.updates.append(frame)
                    continue
                return frame

    async def exchange(self, frame: str | bytes | dict[str, Any]) -> dict[str, Any]:
        await self.send(frame)
        return await self.reply()

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a well-formed request with a fresh id; return its reply frame (result or error)."""
        request_id = next(self._ids)
        reply = await self.exchange({"id": request_id, "method": method, "params": params})
        assert reply.get("id") == request_id, reply
        return reply

    async def result(self, method: str, **params: Any) -> Any:
        reply = await self.call(method, **params)
        assert "result" in reply, reply
        return reply["result"]

    async def authorize(self, token: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.result("auth.authorize", token=token)
        return result


def error_code(reply: dict[str, Any]) -> str:
    assert "error" in reply, f"expected an error, got {reply}"
    error = reply["error"]
    assert isinstance(error, dict), reply
    assert isinstance(error.get("message"), str), reply
    assert error["message"], reply
    return str(error["code"])


def token_of(client: Client) -> str:
    assert client.session is not None, "client is not signed in"
    return client.session.token


def user_id_of(client: Client) -> int:
    assert client.session is not None, "client is not signed in"
    return client.session.user_id


def device_id_of(client: Client) -> int:
    assert client.session is not None, "client is not signed in"
    return client.session.device_id


__all__ = ["REPLY_TIMEOUT", "RawSocket", "device_id_of", "error_code", "token_of", "user_id_of"]
