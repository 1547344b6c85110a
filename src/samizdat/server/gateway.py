"""The WebSocket gateway: a thin shuttle between a socket and the sans-I/O protocol.

One socket per device. Frames are read in order; each request runs as its own task (up to
``max_inflight_per_connection`` at once, so a client can pipeline sends into one group
commit); replies and pushed updates leave through the connection's outbox. Bad frames get a
typed error frame and the socket stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.types import Receive, Scope, Send

from samizdat.protocol.errors import (
    WS_CLOSE_UNAUTHORIZED,
    AuthError,
    ErrorCode,
    InternalError,
    ProtocolError,
    SamizdatError,
)
from samizdat.protocol.frames import Request, decode_request, encode_error, encode_result
from samizdat.protocol.methods import AuthorizeParams, Method
from samizdat.protocol.session import ConnEvent, ConnState
from samizdat.server import wire
from samizdat.server.deps import Anonymous, Caller
from samizdat.server.hub import Close, Connection, Hub, SendText
from samizdat.server.rpc import Dispatcher

log = logging.getLogger(__name__)


class Gateway:
    def __init__(self, dispatcher: Dispatcher, hub: Hub) -> None:
        self.dispatcher = dispatcher
        self.hub = hub
        self.limits = dispatcher.deps.settings.limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A plain ASGI WebSocket app, mounted ahead of the HTTP framework so frames skip
        its middleware: the per-frame path is this loop and the protocol, nothing else."""
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        client = scope.get("client")
        ip = str(client[0]) if client else "unknown"

        async def send_text(text: str) -> None:
            await send({"type": "websocket.send", "text": text})

        async def close(code: int, reason: str) -> None:
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": code, "reason": reason})

        await self._serve(ip, receive, send_text, close)

    async def _serve(self, ip: str, receive: Receive, send: SendText, close: Close) -> None:
        conn = Connection(
            send,
            close,
            max_outbox=self.limits.max_outbox_frames,
            max_outbox_bytes=self.limits.max_outbox_bytes,
            conn_id=self.dispatcher.deps.new_id(),
        )
        pump = asyncio.create_task(conn.pump())
        inflight = asyncio.Semaphore(self.limits.max_inflight_per_connection)
        tasks: set[asyncio.Task[None]] = set()
        auth_deadline = asyncio.get_running_loop().time() + self.limits.auth_timeout_seconds
        try:
            while conn.closing is None:
                if conn.state.state is ConnState.AWAITING_AUTH:
                    remaining = auth_deadline - asyncio.get_running_loop().time()
                    try:
                        message = await asyncio.wait_for(receive(), max(remaining, 0.0))
                    except TimeoutError:
                        conn.close_soon(WS_CLOSE_UNAUTHORIZED, "authorise sooner; reconnect")
                        break
                else:
                    message = await receive()
                if message["type"] != "websocket.receive":
                    break
                data = message.get("text")
                if data is None:
                    data = message.get("bytes")
                if data is None:
                    continue
                await self._on_frame(conn, ip, data, inflight, tasks)
        finally:
            if conn.registered:
                log.info("device disconnected", extra={"device_id": conn.device_id})
            self.hub.unregister(conn)
            # In-flight requests are left to finish (at most max_inflight of them): a send
            # that commits must also be pushed, even if its sender has gone.
            if not pump.done():
                conn.close_soon(1000, "bye")
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pump, timeout=1.0)
                pump.cancel()

    async def _on_frame(
        self,
        conn: Connection,
        ip: str,
        data: str | bytes,
        inflight: asyncio.Semaphore,
        tasks: set[asyncio.Task[None]],
    ) -> None:
        try:
            request = decode_request(data, max_bytes=self.limits.max_frame_bytes)
        except ProtocolError as exc:
            conn.push(encode_error(exc.debug_context.get("request_id"), exc))
            return
        try:
            spec = self.dispatcher.method(request.method)
            conn.state.check_allowed(spec.needs_device)
            params = self.dispatcher.parse(spec, request.params)
            if spec.name == "auth.authorize":
                assert isinstance(params, AuthorizeParams)
                await self._authorize(conn, ip, request, params)
                return
            who: Caller | Anonymous
            if spec.needs_device:
                who = Caller(conn.user_id, conn.device_id, ip, conn.id)  # type: ignore[arg-type]
                self.dispatcher.check_rate(who)
            else:
                who = Anonymous(ip)
        except SamizdatError as exc:
            conn.push(encode_error(request.id, exc))
            return
        await inflight.acquire()
        task = asyncio.create_task(self._run(conn, spec, who, request, params, inflight))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _run(
        self,
        conn: Connection,
        spec: Method,
        who: Caller | Anonymous,
        request: Request,
        params: Any,
        inflight: asyncio.Semaphore,
    ) -> None:
        try:
            result = await self.dispatcher.call(spec, who, params)
            conn.push(encode_result(request.id, result))
        except SamizdatError as exc:
            conn.push(encode_error(request.id, exc))
        finally:
            inflight.release()

    async def _authorize(
        self, conn: Connection, ip: str, request: Request, params: AuthorizeParams
    ) -> None:
        if conn.state.state is not ConnState.AWAITING_AUTH:
            raise ProtocolError("this connection is already authorised", code=ErrorCode.BAD_FRAME)
        dcs = self.dispatcher.deps.dcs
        dcs.require_any_unsealed()  # sealed: UNAVAILABLE, as for every request
        auth = self.dispatcher.auth
        revocations = auth.revocations
        caller = await auth.authenticate(params.token, ip)
        home = await dcs.user_store(caller.user_id)  # the caller's own DC sealed: UNAVAILABLE
        if conn.closing is not None:
            return
        conn.user_id = caller.user_id
        conn.device_id = caller.device_id
        conn.state.fire(ConnEvent.AUTHORIZED)
        self.hub.register(conn)
        if auth.revocations != revocations and await auth.is_revoked(caller.device_id):
            self.hub.unregister(conn)  # revoked while we looked it up: the event missed us
            conn.revoke()
            raise AuthError("this device was logged out", code=ErrorCode.TOKEN_REVOKED)
        log.info(
            "device connected", extra={"user_id": caller.user_id, "device_id": caller.device_id}
        )
        try:
            await self.dispatcher.auth.on_connect(caller)
            profile = await home.own_profile(caller.user_id)
            if profile is None:
                raise AuthError("this account no longer exists; sign in again")
            account, phone, seq = profile
            me = wire.user(account, phone=phone, own=True)
        except Exception as exc:
            # Registered but unusable: close, so the client reconnects rather than waits.
            conn.close_soon(1011, "authorisation failed; reconnect")
            if isinstance(exc, SamizdatError) and exc.code is not ErrorCode.INTERNAL:
                raise
            log.exception("authorize failed")
            raise InternalError() from exc
        conn.push(
            encode_result(request.id, {"user": me, "device_id": caller.device_id, "seq": seq})
        )


__all__ = ["Gateway"]
