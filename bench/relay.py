"""The raw upper bound: the same wire format with no storage, no models, no checks.

``python -m bench.relay --port 8765`` serves, on uvicorn with uvloop and the same WebSocket
implementation uvicorn picks for Samizdat:

* ``GET /health``;
* ``POST /api/<method>`` for the load generator's setup: ``auth.send_code``, ``auth.sign_in``
  (any code), ``chats.open_private``, ``groups.create``, ``groups.add``;
* ``/ws``: ``auth.authorize`` (a token it issued, or any other token as a fresh fake user),
  then ``messages.send``: parse the frame, look the chat's members up, serialise the message
  once, acknowledge, and push ``{"seq", "update": {"type": "new_message"}}`` to every other
  connected device of every member, in memory, in the handler.

It is what a messenger costs when it does nothing but route JSON: the ceiling Samizdat's
numbers should be read against. It is a plain ASGI callable (no Starlette routing) so the
framework adds nothing either.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn

JSONDict = dict[str, Any]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ID_BASE = 115_410_098_659_328


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    def to_wire(self) -> JSONDict:
        return {"code": self.code, "message": str(self)}


@dataclass(slots=True)
class Chat:
    id: int
    kind: str
    title: str
    creator_id: int
    members: list[int]
    message_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(ID_BASE))

    def to_wire(self, viewer: int) -> JSONDict:
        peer = next((m for m in self.members if m != viewer), viewer)
        return {
            "id": self.id,
            "kind": self.kind,
            "title": self.title,
            "member_count": len(self.members),
            "admin_ids": [self.creator_id] if self.kind == "group" else [],
            "creator_id": self.creator_id,
            "peer_id": peer if self.kind == "private" else None,
        }


@dataclass(slots=True)
class Socket:
    user_id: int
    device_id: int
    send: Send


class Relay:
    """In-memory state and the two protocol front ends (HTTP setup, WebSocket messaging)."""

    def __init__(self) -> None:
        # Ids as wide as Samizdat's (about 2**47), so frames are the same size.
        self.user_ids = itertools.count(ID_BASE)
        self.device_ids = itertools.count(ID_BASE)
        self.chat_ids = itertools.count(ID_BASE)
        self.users_by_phone: dict[str, int] = {}
        self.names: dict[int, str] = {}
        self.tokens: dict[str, tuple[int, int]] = {}
        self.chats: dict[int, Chat] = {}
        self.private: dict[tuple[int, int], int] = {}
        self.online: dict[int, list[Socket]] = {}
        self.seq: dict[int, int] = {}

    # --- ASGI -----------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self.websocket(receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path: str = scope["path"]
        status, payload = 200, b'{"status":"ok"}'
        try:
            if path == "/health":
                pass
            elif path.startswith("/api/") and scope["method"] == "POST":
                token = None
                for name, value in scope["headers"]:
                    if name == b"authorization" and value.startswith(b"Bearer "):
                        token = value[7:].decode()
                params = orjson.loads(body) if body else {}
                payload = orjson.dumps(self.call(path[5:], params, token))
            else:
                raise ApiError(404, "NOT_FOUND", f"no route {path}")
        except ApiError as exc:
            status, payload = exc.status, orjson.dumps({"error": exc.to_wire()})
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            status = 400
            payload = orjson.dumps({"error": {"code": "INVALID_PARAMS", "message": str(exc)}})
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    # --- setup API ------------------------------------------------------------------------
    def call(self, method: str, params: JSONDict, token: str | None) -> JSONDict:
        if method == "auth.send_code":
            return {"expires_in": 300, "code_length": 5}
        if method == "auth.sign_in":
            phone = str(params["phone"])
            new_user = phone not in self.users_by_phone
            if new_user:
                self.users_by_phone[phone] = next(self.user_ids)
            user_id = self.users_by_phone[phone]
            self.names.setdefault(user_id, str(params.get("display_name") or phone))
            device_id = next(self.device_ids)
            token = f"relay-{device_id}-{user_id}"
            self.tokens[token] = (user_id, device_id)
            return {
                "token": token,
                "device_id": device_id,
                "user": self.user(user_id),
                "new_user": new_user,
            }
        if token not in self.tokens:
            raise ApiError(401, "UNAUTHORIZED", "unknown token")
        me = self.tokens[token][0]
        if method == "chats.open_private":
            peer = int(params["user_id"])
            key = (min(me, peer), max(me, peer))
            if key not in self.private:
                chat = self.new_chat("private", "", me, [me, peer] if peer != me else [me])
                self.private[key] = chat.id
            return self.chats[self.private[key]].to_wire(me)
        if method == "groups.create":
            ids = [me, *(int(i) for i in params.get("member_ids", []) if int(i) != me)]
            return self.new_chat("group", str(params["title"]), me, ids).to_wire(me)
        if method == "groups.add":
            chat = self.chats[int(params["chat_id"])]
            present = set(chat.members)
            chat.members.extend(int(i) for i in params["user_ids"] if int(i) not in present)
            return chat.to_wire(me)
        raise ApiError(404, "METHOD_NOT_FOUND", f"the relay does not serve {method}")

    def new_chat(self, kind: str, title: str, creator: int, members: list[int]) -> Chat:
        chat = Chat(next(self.chat_ids), kind, title, creator, list(dict.fromkeys(members)))
        self.chats[chat.id] = chat
        return chat

    def user(self, user_id: int) -> JSONDict:
        return {"id": user_id, "display_name": self.names.get(user_id, f"u{user_id}")}

    # --- WebSocket ------------------------------------------------------------------------
    async def websocket(self, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        socket: Socket | None = None
        try:
            while True:
                event = await receive()
                if event["type"] == "websocket.disconnect":
                    return
                raw = event.get("text") or event.get("bytes") or b"{}"
                frame = orjson.loads(raw)
                request_id, method = frame.get("id"), frame.get("method")
                params = frame.get("params") or {}
                if socket is None:
                    if method != "auth.authorize":
                        await self.reply_error(send, request_id, "UNAUTHORIZED", "authorize first")
                        continue
                    socket = self.authorize(str(params.get("token", "")), send)
                    result = {
                        "user": self.user(socket.user_id),
                        "device_id": socket.device_id,
                        "seq": self.seq.get(socket.user_id, 0),
                    }
                    await send(text(orjson.dumps({"id": request_id, "result": result})))
                elif method == "messages.send":
                    await self.send_message(socket, request_id, params)
                else:
                    await self.reply_error(send, request_id, "METHOD_NOT_FOUND", str(method))
        finally:
            if socket is not None:
                self.online[socket.user_id].remove(socket)

    def authorize(self, token: str, send: Send) -> Socket:
        if token not in self.tokens:  # any token is welcome: a fresh fake user
            self.tokens[token] = (next(self.user_ids), next(self.device_ids))
        user_id, device_id = self.tokens[token]
        socket = Socket(user_id, device_id, send)
        self.online.setdefault(user_id, []).append(socket)
        return socket

    async def send_message(self, socket: Socket, request_id: Any, params: JSONDict) -> None:
        chat = self.chats.get(int(params.get("chat_id", 0)))
        if chat is None or socket.user_id not in chat.members:
            await self.reply_error(socket.send, request_id, "CHAT_NOT_FOUND", "no such chat")
            return
        message: JSONDict = {
            "id": next(chat.message_ids),
            "chat_id": chat.id,
            "sender_id": socket.user_id,
            "date": time.time(),
            "text": params.get("text"),
            "reply_to_id": params.get("reply_to_id"),
            "forward": None,
            "edit_date": None,
            "deleted": False,
            "reactions": {},
        }
        seq = self.seq
        seq[socket.user_id] = sender_seq = seq.get(socket.user_id, 0) + 1
        ack = orjson.dumps({"id": request_id, "result": {"message": message, "seq": sender_seq}})
        await socket.send(text(ack))
        body = orjson.dumps({"type": "new_message", "message": message})
        for member in chat.members:
            if member != socket.user_id:
                seq[member] = member_seq = seq.get(member, 0) + 1
            else:
                member_seq = sender_seq
            targets = self.online.get(member)
            if not targets:
                continue
            frame = text(b'{"seq":%d,"update":%b}' % (member_seq, body))
            for target in targets:
                if target is not socket:
                    try:
                        await target.send(frame)
                    except Exception:  # a closing socket; its reader cleans up
                        continue

    @staticmethod
    async def reply_error(send: Send, request_id: Any, code: str, message: str) -> None:
        await send(
            text(orjson.dumps({"id": request_id, "error": {"code": code, "message": message}}))
        )


def text(payload: bytes) -> Message:
    return {"type": "websocket.send", "text": payload.decode()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback only (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--ws",
        default="auto",
        choices=["auto", "websockets", "websockets-sansio", "wsproto"],
        help="uvicorn WebSocket implementation (default: what uvicorn picks, as Samizdat does)",
    )
    args = parser.parse_args()
    if args.host != "127.0.0.1":
        parser.error("the relay binds 127.0.0.1 only")
    uvicorn.run(
        Relay(),
        host=args.host,
        port=args.port,
        loop="uvloop",
        ws=args.ws,
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=4096,
    )


if __name__ == "__main__":
    main()
