"""A lean WebSocket device for load generation: authorize, then requests and pushed updates.

Not the SDK: it does the least a client must (one reader task, orjson, no models) so the
load generator spends its CPU on load rather than on itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

JSONDict = dict[str, Any]
ReplyHandler = Callable[[JSONDict, int], None]
"""Called with the frame and its receive time (``time.monotonic_ns()``)."""


class RequestFailed(Exception):
    def __init__(self, method: str, error: JSONDict) -> None:
        super().__init__(f"{method}: {error.get('code')}: {error.get('message')}")
        self.code = str(error.get("code"))


class DeviceClosed(Exception):
    pass


class Device:
    """One authorized WebSocket connection.

    ``on_update`` receives every frame that is not a reply (``{"seq"?, "update"}``), with its
    receive time. Replies go to the handler registered for their id.
    """

    def __init__(self, ws: ClientConnection, authorization: JSONDict) -> None:
        self.ws = ws
        self.authorization = authorization
        self.on_update: ReplyHandler | None = None
        self._pending: dict[int, ReplyHandler] = {}
        self._next_id = 2
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    @classmethod
    async def connect(
        cls, ws_url: str, token: str, *, timeout: float = 30.0, start: bool = True
    ) -> Device:
        """Open the socket and authorize; raises RequestFailed, OSError or TimeoutError."""
        async with asyncio.timeout(timeout):
            ws = await connect(
                ws_url,
                compression=None,  # see bench/README: measure the server, not zlib
                proxy=None,  # loopback only, never an environment proxy
                ping_interval=None,  # idle clients stay idle; the server may still ping
                open_timeout=timeout,
                close_timeout=2,
                max_queue=256,
            )
            try:
                await ws.send(
                    orjson.dumps(
                        {"id": 1, "method": "auth.authorize", "params": {"token": token}}
                    ).decode()
                )
                while True:
                    frame = orjson.loads(await ws.recv(decode=False))
                    if frame.get("id") == 1:
                        break
                if "error" in frame:
                    raise RequestFailed("auth.authorize", frame["error"])
            except BaseException:
                await ws.close()
                raise
        device = cls(ws, frame["result"])
        if start:
            device.start()
        return device

    def start(self) -> None:
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        recv = self.ws.recv
        loads = orjson.loads
        pending = self._pending
        try:
            while True:
                raw = await recv(decode=False)
                now = time.monotonic_ns()
                frame = loads(raw)
                request_id = frame.get("id")
                if request_id is not None:
                    handler = pending.pop(request_id, None)
                    if handler is not None:
                        handler(frame, now)
                elif self.on_update is not None:
                    self.on_update(frame, now)
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            closed = {"error": {"code": "CLOSED", "message": "connection closed"}}
            for handler in list(pending.values()):
                handler(closed, time.monotonic_ns())
            pending.clear()

    async def send_request(self, method: str, params: JSONDict, on_reply: ReplyHandler) -> int:
        """Send without waiting for the reply; ``on_reply`` gets it (or a CLOSED error)."""
        if self.closed.is_set():
            raise DeviceClosed(method)
        request_id = self._next_id
        self._next_id += 1
        self._pending[request_id] = on_reply
        frame = orjson.dumps({"id": request_id, "method": method, "params": params})
        await self.ws.send(frame.decode())
        return request_id

    async def call(self, method: str, params: JSONDict, *, timeout: float = 30.0) -> JSONDict:
        """Send and wait for the result; raises RequestFailed on an error reply."""
        future: asyncio.Future[JSONDict] = asyncio.get_running_loop().create_future()

        def resolve(frame: JSONDict, _now: int) -> None:
            if not future.done():
                future.set_result(frame)

        await self.send_request(method, params, resolve)
        async with asyncio.timeout(timeout):
            frame = await future
        if "error" in frame:
            raise RequestFailed(method, frame["error"])
        result: JSONDict = frame["result"]
        return result

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await self._reader


__all__ = ["Device", "DeviceClosed", "ReplyHandler", "RequestFailed"]
