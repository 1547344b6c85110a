"""The async SDK: ``samizdat.client.Client``.

::

    async with Client("http://127.0.0.1:8080", profile=Path("~/.samizdat")) as client:
        @client.on(NewMessage)
        async def show(update: NewMessage) -> None:
            print(update.message.text)

        await client.send_message("@alice", "hello")
        await client.run_until_disconnected()

The client keeps one WebSocket. Updates arrive in order of their per-user number; if a number
is skipped (a dropped socket, a missed push) the client asks for the difference and delivers
what it missed before anything newer, so a handler sees every update exactly once.
Errors are raised as the same typed exceptions the server raised (``samizdat.protocol.errors``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from pydantic import TypeAdapter, ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from samizdat.client.events import AnyUpdate
from samizdat.client.handlers import Handler, Handlers
from samizdat.client.profile import Profile, Session
from samizdat.crypto.e2ee import DeviceCrypto
from samizdat.protocol.errors import (
    WS_CLOSE_REVOKED,
    AuthError,
    ErrorCode,
    NotFound,
    SamizdatError,
    Unavailable,
)
from samizdat.protocol.methods import MAX_ONE_TIME_KEYS_PER_UPLOAD
from samizdat.protocol.models import Chat, Device, Dialog, Message, Update, User, Wire
from samizdat.protocol.session import (
    ClientSession,
    ErrorReceived,
    ResponseReceived,
    UpdateReceived,
)

log = logging.getLogger(__name__)

E = TypeVar("E")
_UPDATE = TypeAdapter[Wire](Update)


def ws_url(server: str) -> str:
    base = server.rstrip("/")
    if base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    elif base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    return base + "/ws"


def _connection_lost(ws: ClientConnection | None) -> SamizdatError:
    if ws is not None and ws.close_code == WS_CLOSE_REVOKED:
        # The server answers nothing more once a device is revoked, not even the request
        # that revoked it: callers must see why, not a bare disconnect.
        return AuthError("this device was logged out; sign in again", code=ErrorCode.TOKEN_REVOKED)
    return Unavailable("connection to the server was lost")


class Client:
    """One device's connection to a server.

    ``receive_updates=False`` makes a one-shot client (a script that sends something and
    exits): it does not catch up on connect, ignores pushed updates and never advances the
    saved update number, so a later listener on the same profile still sees what it missed.
    """

    def __init__(
        self,
        server: str | None = None,
        *,
        profile: Path | None = None,
        session: Session | None = None,
        device_name: str = "samizdat-sdk",
        request_timeout: float = 30.0,
        receive_updates: bool = True,
    ) -> None:
        self.profile = Profile(profile) if profile is not None else None
        self.session = session or (self.profile.load() if self.profile else None)
        if server is None and self.session is None:
            raise ValueError("give a server URL, or a profile that has logged in")
        self.server = server or (self.session.server if self.session else "")
        self.device_name = device_name
        self.request_timeout = request_timeout
        self.receive_updates = receive_updates
        self._ws: ClientConnection | None = None
        self._proto = ClientSession()
        self._pending: dict[int | str, asyncio.Future[Any]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._handlers = Handlers(catch_all=AnyUpdate)
        self._queue: asyncio.Queue[tuple[int | None, dict[str, Any]]] = asyncio.Queue()
        self._dispatcher: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self._sync_lock = asyncio.Lock()
        self._own_seqs: set[int] = set()
        self.me: User | None = None

    # --- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the socket; if logged in, authorise and catch up on missed updates."""
        try:
            self._ws = await connect(ws_url(self.server), max_size=2**24, open_timeout=10)
        except OSError as exc:
            raise Unavailable(f"cannot reach {self.server}: {exc.strerror or exc}") from exc
        except InvalidURI as exc:
            raise Unavailable(f"{self.server!r} is not a server URL (http://host:port)") from exc
        except InvalidHandshake as exc:
            raise Unavailable(f"{self.server} did not accept a Samizdat connection") from exc
        self._closed.clear()
        self._reader = asyncio.create_task(self._read_loop())
        self._dispatcher = asyncio.create_task(self._dispatch_loop())
        if self.session is not None:
            try:
                await self._authorize(fresh=False)
            except BaseException:
                await self.close()  # a revoked token must not leave a socket and tasks behind
                raise

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        for task in (self._reader, self._dispatcher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._ws = None

    async def run_until_disconnected(self) -> None:
        await self._closed.wait()

    # --- raw calls -------------------------------------------------------------------------
    async def call(self, method: str, **params: Any) -> Any:
        """Call any RPC method; returns the result object or raises its typed error."""
        if self._ws is None:
            raise Unavailable("not connected; call connect() first")
        request_id, frame = self._proto.request(method, params)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self._ws.send(frame.decode())
            return await asyncio.wait_for(future, self.request_timeout)
        except ConnectionClosed as exc:
            raise _connection_lost(self._ws) from exc
        except TimeoutError as exc:
            raise Unavailable(
                f"{method} got no answer within {self.request_timeout:.0f} s"
            ) from exc
        finally:
            self._pending.pop(request_id, None)

    async def _read_loop(self) -> None:
        ws = self._ws
        assert ws is not None
        try:
            async for data in ws:
                event = self._proto.receive(data)
                match event:
                    case ResponseReceived(request_id, result):
                        future = self._pending.get(request_id)
                        if future is not None and not future.done():
                            future.set_result(result)
                    case ErrorReceived(request_id, error):
                        future = self._pending.get(request_id) if request_id is not None else None
                        if future is not None and not future.done():
                            future.set_exception(error)
                        else:
                            log.warning("server error without a request: %s", error.code)
                    case UpdateReceived(seq, update):
                        self._queue.put_nowait((seq, update))
        except ConnectionClosed:
            pass
        finally:
            lost = _connection_lost(ws)
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(lost)
            self._closed.set()

    # --- updates ---------------------------------------------------------------------------
    def on(self, event_type: type[E] | type[AnyUpdate]) -> Callable[[Handler], Handler]:
        """Register a handler for one update type (``NewMessage``...) or ``AnyUpdate``."""

        return self._handlers.on(event_type)

    async def _dispatch_loop(self) -> None:
        while True:
            seq, raw = await self._queue.get()
            try:
                if seq is None:
                    await self._emit(raw)
                    continue
                await self._on_numbered(seq, raw)
            except Exception:  # the dispatcher must outlive any one bad update
                log.exception("could not process an update")

    async def _on_numbered(self, seq: int, raw: dict[str, Any]) -> None:
        if not self.receive_updates:
            return
        async with self._sync_lock:
            session = self.session
            if session is None or seq <= session.seq:
                return
            if seq == session.seq + 1:
                await self._deliver(seq, raw)
                return
        await self.catch_up()  # a gap: the difference includes this update

    def _advance(self, seq: int) -> None:
        if self.session is not None and seq > self.session.seq:
            self.session.seq = seq
            if self._own_seqs:
                self._own_seqs = {s for s in self._own_seqs if s > seq}
            if self.profile is not None:
                self.profile.save(self.session)

    async def _seen_own(self, seq: int | None) -> None:
        """A result carried the number of our own change: advance, or catch up on a gap.

        Our own changes are never handed to handlers. Inside a handler (the dispatcher holds
        the sync lock) the number is only remembered: the next pushed update shows a gap, the
        difference fills it in, and this number is skipped there.
        """
        if seq is None or not self.receive_updates:
            return
        self._own_seqs.add(seq)
        if self._sync_lock.locked():
            return
        async with self._sync_lock:
            if self.session is None or seq <= self.session.seq:
                return
            if seq == self.session.seq + 1:
                self._advance(seq)
                return
        await self.catch_up()

    async def catch_up(self) -> int:
        """Fetch and deliver every update after the last one seen; returns how many."""
        if self.session is None:
            return 0
        count = 0
        async with self._sync_lock:
            while True:
                diff = await self.call("updates.difference", since=self.session.seq, limit=500)
                for item in diff["updates"]:
                    if item["seq"] > self.session.seq:
                        await self._deliver(item["seq"], item["update"])
                        count += 1
                if not diff["more"]:
                    return count

    async def _deliver(self, seq: int, raw: dict[str, Any]) -> None:
        """Apply numbered update ``seq``: advance past it, and hand it to the handlers unless
        it is our own change."""
        own = seq in self._own_seqs
        self._advance(seq)
        if not own:
            await self._emit(raw)

    async def _emit(self, raw: dict[str, Any]) -> None:
        """Hand one update to the handlers; one that cannot be parsed (an update type from a
        newer server, say) is logged and skipped."""
        try:
            update = _UPDATE.validate_python(raw)
        except ValidationError:
            log.warning("skipped an update this client does not understand: %s", raw.get("type"))
            return
        await self._handlers.emit(update)

    # --- account ---------------------------------------------------------------------------
    async def send_code(self, phone: str) -> int:
        """Ask for a login code; returns its length."""
        result = await self.call("auth.send_code", phone=phone)
        return int(result["code_length"])

    async def sign_in(self, phone: str, code: str, *, display_name: str | None = None) -> User:
        params: dict[str, Any] = {"phone": phone, "code": code, "device_name": self.device_name}
        if display_name is not None:
            params["display_name"] = display_name
        result = await self.call("auth.sign_in", **params)
        self.session = Session(
            self.server,
            result["token"],
            result["user"]["id"],
            result["device_id"],
            phone=result["user"].get("phone"),
        )
        async with self._sync_lock:  # no push may be applied against seq 0 meanwhile
            await self._authorize(fresh=True)
        if self.profile is not None:
            self.profile.save(self.session)
        return User.model_validate(result["user"])

    async def _authorize(self, *, fresh: bool) -> None:
        """Bind the socket to our device. A fresh login starts from the server's current
        update number (history comes from ``history``); a resumed one catches up."""
        assert self.session is not None
        result = await self.call("auth.authorize", token=self.session.token)
        self.me = self._with_own_phone(User.model_validate(result["user"]))
        if fresh:
            self.session.seq = int(result["seq"])
        elif self.receive_updates and int(result["seq"]) > self.session.seq:
            await self.catch_up()

    def _with_own_phone(self, me: User) -> User:
        """Your own number comes from this session when the server keeps no readable copy
        (the default: nobody sees it, and the server only holds it sealed to custodians)."""
        if me.phone is None and self.session is not None and self.session.phone is not None:
            return me.model_copy(update={"phone": self.session.phone})
        return me

    async def get_me(self) -> User:
        return self._with_own_phone(User.model_validate(await self.call("users.me")))

    async def set_username(self, username: str | None) -> User:
        return User.model_validate(await self.call("profile.set_username", username=username))

    async def update_profile(self, **changes: Any) -> User:
        """Showing your number (visibility other than nobody) sends it from the session:
        the server cannot read back the copy it keeps for the custodians."""
        visibility = changes.get("phone_visibility")
        if visibility not in (None, "nobody") and "phone" not in changes:
            if self.session is None or self.session.phone is None:
                raise SamizdatError(
                    "this session does not know your number; pass it (phone=...)",
                    code=ErrorCode.INVALID_PARAMS,
                )
            changes["phone"] = self.session.phone
        return self._with_own_phone(
            User.model_validate(await self.call("profile.update", **changes))
        )

    async def resolve(self, peer: str) -> User:
        return User.model_validate(await self.call("users.resolve", peer=peer))

    async def get_user(self, user_id: int) -> User:
        """A user by id, as the server lets you see them (phone only if their setting allows)."""
        return User.model_validate(await self.call("users.get", user_id=user_id))

    async def devices(self) -> list[Device]:
        return [Device.model_validate(d) for d in (await self.call("devices.list"))["devices"]]

    async def revoke_device(self, device_id: int) -> None:
        await self.call("devices.revoke", device_id=device_id)

    async def revoke_other_devices(self) -> int:
        return int((await self.call("devices.revoke_others"))["revoked"])

    async def log_out(self) -> None:
        """Revoke this device on the server, forget the session and clear the profile.

        The server closes the socket as it revokes the device, so its answer may never
        arrive; a close that says the device was revoked counts as success.
        """
        if self.session is None:
            return
        try:
            await self.revoke_device(self.session.device_id)
        except AuthError as exc:
            if exc.code is not ErrorCode.TOKEN_REVOKED:
                raise
        self.session = None
        if self.profile is not None:
            self.profile.clear()

    # --- chats -----------------------------------------------------------------------------
    async def chat(self, peer: str | int) -> Chat:
        """A chat from ``@username``, ``+phone`` (opens the 1:1 chat) or a chat id."""
        if isinstance(peer, int) or peer.isdigit():
            return Chat.model_validate(await self.call("chats.get", chat_id=int(peer)))
        if not peer.startswith(("@", "+")):
            raise NotFound(
                f"{peer!r} is not @username, +phone or a chat id", code=ErrorCode.CHAT_NOT_FOUND
            )
        user = await self.resolve(peer)
        return Chat.model_validate(await self.call("chats.open_private", user_id=user.id))

    async def create_group(self, title: str, members: list[str | int] | None = None) -> Chat:
        ids = [await self.user_id_of(m) for m in members or []]
        return Chat.model_validate(await self.call("groups.create", title=title, member_ids=ids))

    async def add_members(self, chat: str | int, members: list[str | int]) -> Chat:
        chat_id = (await self.chat(chat)).id
        ids = [await self.user_id_of(m) for m in members]
        return Chat.model_validate(await self.call("groups.add", chat_id=chat_id, user_ids=ids))

    async def remove_member(self, chat: str | int, member: str | int) -> Chat:
        chat_id = (await self.chat(chat)).id
        user_id = await self.user_id_of(member)
        return Chat.model_validate(
            await self.call("groups.remove", chat_id=chat_id, user_id=user_id)
        )

    async def rename_group(self, chat: str | int, title: str) -> Chat:
        chat_id = (await self.chat(chat)).id
        return Chat.model_validate(await self.call("groups.rename", chat_id=chat_id, title=title))

    async def leave(self, chat: str | int) -> None:
        await self.call("groups.leave", chat_id=(await self.chat(chat)).id)

    async def user_id_of(self, who: str | int) -> int:
        """A user id from an id, ``@username`` or ``+phone``."""
        if isinstance(who, int) or who.isdigit():
            return int(who)
        return (await self.resolve(who)).id

    async def dialogs(self, limit: int = 100) -> list[Dialog]:
        result = await self.call("dialogs.list", limit=limit)
        return [Dialog.model_validate(d) for d in result["dialogs"]]

    # --- messages --------------------------------------------------------------------------
    async def send_message(
        self,
        peer: str | int,
        text: str,
        *,
        reply_to: int | None = None,
        random_id: int | None = None,
    ) -> Message:
        """Send text; retrying with the same ``random_id`` never stores it twice."""
        chat_id = (await self.chat(peer)).id
        params: dict[str, Any] = {
            "chat_id": chat_id,
            "text": text,
            "random_id": random_id if random_id is not None else secrets.randbits(63),
        }
        if reply_to is not None:
            params["reply_to_id"] = reply_to
        result = await self.call("messages.send", **params)
        await self._seen_own(result["seq"])
        return Message.model_validate(result["message"])

    async def edit_message(self, chat_id: int, message_id: int, text: str) -> Message:
        result = await self.call("messages.edit", chat_id=chat_id, message_id=message_id, text=text)
        await self._seen_own(result["seq"])
        return Message.model_validate(result["message"])

    async def delete_messages(
        self, chat_id: int, message_ids: list[int], *, for_everyone: bool = False
    ) -> None:
        result = await self.call(
            "messages.delete", chat_id=chat_id, message_ids=message_ids, for_everyone=for_everyone
        )
        await self._seen_own(result["seq"])

    async def forward_messages(
        self, from_chat: int, message_ids: list[int], to: str | int
    ) -> list[Message]:
        to_chat = (await self.chat(to)).id
        result = await self.call(
            "messages.forward",
            from_chat_id=from_chat,
            message_ids=message_ids,
            to_chat_id=to_chat,
            random_id=secrets.randbits(62),
        )
        await self._seen_own(result["seq"])
        return [Message.model_validate(m) for m in result["messages"]]

    async def react(self, chat_id: int, message_id: int, emoji: str | None) -> None:
        result = await self.call(
            "messages.react", chat_id=chat_id, message_id=message_id, emoji=emoji
        )
        await self._seen_own(result["seq"])

    async def mark_read(self, chat_id: int, max_id: int) -> None:
        result = await self.call("messages.read", chat_id=chat_id, max_id=max_id)
        await self._seen_own(result["seq"])

    async def typing(self, chat_id: int) -> None:
        await self.call("messages.typing", chat_id=chat_id)

    async def history(
        self, peer: str | int, *, limit: int = 50, before_id: int | None = None
    ) -> list[Message]:
        chat_id = (await self.chat(peer)).id
        params: dict[str, Any] = {"chat_id": chat_id, "limit": limit}
        if before_id is not None:
            params["before_id"] = before_id
        result = await self.call("messages.history", **params)
        return [Message.model_validate(m) for m in result["messages"]]

    # --- end-to-end keys -----------------------------------------------------------------
    async def upload_keys(
        self,
        crypto: DeviceCrypto,
        one_time_keys: int = 50,
        *,
        before_upload: Callable[[], Awaitable[None]] | None = None,
    ) -> int:
        """Publish this device's signed identity keys, one-time keys and a fallback key;
        returns how many one-time keys the server now holds. ``before_upload`` runs after
        the new private keys exist and before the server sees them (save them there: a key
        the server hands out must never be one the device forgot)."""
        if self.session is None:
            raise Unavailable("sign in before publishing keys")
        params = crypto.device_keys_upload(self.session.user_id, self.session.device_id)
        params["one_time_keys"] = crypto.new_one_time_keys(one_time_keys)
        params["fallback_key"] = crypto.new_fallback_key()
        if before_upload is not None:
            await before_upload()
        return int((await self.call("keys.upload", **params))["one_time_key_count"])

    async def ensure_one_time_keys(
        self,
        crypto: DeviceCrypto,
        *,
        threshold: int = 20,
        target: int = 50,
        before_upload: Callable[[], Awaitable[None]] | None = None,
    ) -> int:
        """Top up one-time keys when the server holds fewer than ``threshold``, and replace
        the fallback key once it has been handed out; returns how many one-time keys were
        uploaded. ``before_upload`` is as for ``upload_keys``."""
        if self.session is None:
            raise Unavailable("sign in before publishing keys")
        if not 0 <= threshold <= target:
            raise ValueError("need 0 <= threshold <= target")
        count = await self.call("keys.count")
        held, has_fallback = int(count["one_time_key_count"]), bool(count["fallback_key"])
        uploaded = 0
        while (held < threshold and held < target) or not has_fallback:
            params = crypto.device_keys_upload(self.session.user_id, self.session.device_id)
            batch = min(target - held, MAX_ONE_TIME_KEYS_PER_UPLOAD) if held < threshold else 0
            if batch:
                params["one_time_keys"] = crypto.new_one_time_keys(batch)
                threshold = target  # once topping up, fill up to the target
            if not has_fallback:
                params["fallback_key"] = crypto.new_fallback_key()
            if before_upload is not None:
                await before_upload()
            result = await self.call("keys.upload", **params)
            new_held = int(result["one_time_key_count"])
            uploaded += new_held - held
            held, has_fallback = new_held, True  # one is held now, whether new or not
        return uploaded

    async def query_keys(self, user_ids: list[int]) -> list[dict[str, Any]]:
        devices: list[dict[str, Any]] = (await self.call("keys.query", user_ids=user_ids))[
            "devices"
        ]
        return devices

    async def claim_keys(self, device_ids: list[int]) -> list[dict[str, Any]]:
        keys: list[dict[str, Any]] = (await self.call("keys.claim", device_ids=device_ids))["keys"]
        return keys

    # --- secret-message relay ---------------------------------------------------------------
    async def send_secret(
        self,
        messages: list[dict[str, Any]] | None = None,
        *,
        group: dict[str, Any] | None = None,
        recipients: list[int] | None = None,
    ) -> list[int]:
        """Relay Olm ciphertexts (``device_id``, ``olm_type``, ``ciphertext``) and/or one
        group ciphertext (``ciphertext``, ``device_ids``); see ``secret.send``."""
        params: dict[str, Any] = {}
        if messages:
            params["messages"] = messages
        if group is not None:
            params["group"] = group
        if recipients:
            params["recipients"] = recipients
        ids: list[int] = (await self.call("secret.send", **params))["ids"]
        return ids

    async def pending_secret(self, limit: int = 100) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (await self.call("secret.pending", limit=limit))["messages"]
        return found

    async def ack_secret(self, ids: list[int]) -> int:
        return int((await self.call("secret.ack", ids=ids))["deleted"])


__all__ = ["Client", "ws_url"]
