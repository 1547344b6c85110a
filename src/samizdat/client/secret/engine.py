"""Secret chats for the SDK: ``SecretChats`` on top of a connected ``Client``.

::

    vault = Vault.open(profile_dir, passphrase)
    async with Client(profile=profile_dir) as client:
        secret = SecretChats(client, vault)
        await secret.open()                     # keys published, waiting messages decrypted
        secret.on(SecretMessage)(print)
        await secret.send("@bob", "the press is in the cellar", ttl=60)

Every message is encrypted on this device, once per receiving device (Olm) or once per
group with a Megolm session shared over Olm, and goes to all of the peer's devices and to
this user's other devices. The server only relays ciphertext. What arrives is checked
before it is shown: who it claims to be from and for, its place in the sender's sequence
(gaps, late arrivals and replays become notices, never silent), and for groups that the
sender is a member. Keys and state are saved in the vault before anything is acknowledged
to the server, so a crash loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import ValidationError

from samizdat.client.client import Client
from samizdat.client.handlers import Handler, Handlers
from samizdat.client.secret.devices import Change, DeviceDirectory, ForgedKeys
from samizdat.client.secret.events import VerificationRequested
from samizdat.client.secret.history import HistoryStore
from samizdat.client.secret.notices import Notices, ttl_text
from samizdat.client.secret.outbox import Outgoing, plan
from samizdat.client.secret.payloads import (
    MAX_SECRET_GROUP_MEMBERS,
    Body,
    ChatStarted,
    DeviceEnvelope,
    GroupEnvelope,
    GroupLeave,
    GroupState,
    Read,
    RoomKey,
    SasStart,
    SetTtl,
    Text,
    ttl_valid,
)
from samizdat.client.secret.receiving import Receiver, forget_old_sessions
from samizdat.client.secret.state import (
    GroupInfo,
    GroupSessionInfo,
    KnownDevice,
    MessageEntry,
    NoticeLevel,
    OutboundInfo,
    SecretChat,
    SecretState,
    Stream,
    Trust,
    VerificationRequest,
)
from samizdat.crypto.secret_keys import SecretKeys
from samizdat.crypto.vault import Vault
from samizdat.protocol.errors import Conflict, ErrorCode, NotFound, SamizdatError
from samizdat.protocol.models import SecretMessageUpdate

log = logging.getLogger(__name__)

WEEK = 7 * 24 * 3600.0
#: A group session is replaced after this many messages (and after a week, and whenever
#: the members or their devices shrink).
ROTATE_AFTER_MESSAGES = 100
ONE_TIME_KEYS = 50
ONE_TIME_KEYS_THRESHOLD = 20
_SEND_ATTEMPTS = 3
#: Verification requests remembered (the newest); more is someone flooding.
_MAX_REQUESTS = 16
_RETRY_CODES = {ErrorCode.DEVICE_LIST_CHANGED, ErrorCode.DEVICE_NOT_FOUND}

ConfirmDevices = Callable[[list[KnownDevice]], Awaitable[bool]]


class UnverifiedDevices(Conflict):
    """A verified peer has a device nobody verified (new, or its keys changed)."""

    def __init__(self, devices: list[KnownDevice]) -> None:
        names = ", ".join(f"user {d.user_id} device {d.device_id}" for d in devices)
        super().__init__(
            f"not sent: {names} is new and unverified; verify it "
            "(samizdat secret verify) or allow unverified devices for this send",
            code=ErrorCode.DEVICE_UNVERIFIED,
        )
        self.devices = devices


def new_message_id() -> str:
    return secrets.token_hex(16)


class SecretChats:
    def __init__(
        self,
        client: Client,
        vault: Vault,
        *,
        clock: Callable[[], float] = time.time,
        confirm_new_devices: ConfirmDevices | None = None,
    ) -> None:
        self.client = client
        self.vault = vault
        self.clock = clock
        self.confirm_new_devices = confirm_new_devices
        self.history_store = HistoryStore(vault)
        self._lock = asyncio.Lock()
        self._handlers = Handlers()
        self._to_ack: list[int] = []
        self._dirty = False
        self._flush_task: asyncio.Task[None] | None = None
        self._sas_watch: dict[int, asyncio.Queue[Any]] = {}  # user id -> a running verify
        self.keys: SecretKeys
        self.state: SecretState
        self.directory: DeviceDirectory
        self.notices = Notices(SecretState(), self.history_store, clock=clock, user_id=0)
        self.receiver: Receiver
        self.user_id = 0
        self.device_id = 0
        self.opened = False
        self._listening = False

    # --- lifecycle -------------------------------------------------------------------------
    async def open(self) -> None:
        """Load (or create and publish) this device's keys, then decrypt what is waiting."""
        session = self.client.session
        if session is None or self.client.me is None:
            raise SamizdatError("sign in before opening secret chats", code=ErrorCode.UNAUTHORIZED)
        self.user_id, self.device_id = session.user_id, session.device_id
        stored = self.vault.load_device()
        state = SecretState.model_validate_json(stored[1]) if stored else SecretState()
        for chat in state.chats.values():
            self.history_store.load(chat)
        if stored is None or stored[0].device.device_id != self.device_id:
            # A new device (or this profile logged in again): a fresh identity; the old
            # device's sessions and counts mean nothing now, its chats and history stay.
            self.keys = SecretKeys.create(self.device_id)
            state = state.model_copy(
                update={"device_id": self.device_id, "sent": {}, "received": {}, "processed": []}
            )
            state.group_sessions.clear()
            state.outbound.clear()
            self.state = state
            await self._publish_keys(new_device=True)
        else:
            self.keys, self.state = stored[0], state
            await self._publish_keys(new_device=False)
        self.directory = DeviceDirectory(
            self.client,
            self.keys,
            self.state,
            user_id=self.user_id,
            device_id=self.device_id,
            clock=self.clock,
        )
        self.notices = Notices(
            self.state, self.history_store, clock=self.clock, user_id=self.user_id
        )
        self.receiver = Receiver(
            self.keys,
            self.state,
            self.directory,
            self.history_store,
            self.notices,
            clock=self.clock,
            user_id=self.user_id,
            device_id=self.device_id,
            rotate=self._rotate,
            on_sas=self._on_sas,
        )
        if not self._listening:
            self.client.on(SecretMessageUpdate)(self._on_push)
            self._listening = True
        self.opened = True
        await self.purge_expired()
        await self.sync()

    async def _publish_keys(self, *, new_device: bool) -> None:
        """Publish (or top up) keys; new private keys are saved before the server gets the
        public halves."""
        if new_device:
            await self.client.upload_keys(self.keys.device, ONE_TIME_KEYS, before_upload=self._save)
        else:
            await self.client.ensure_one_time_keys(
                self.keys.device,
                threshold=ONE_TIME_KEYS_THRESHOLD,
                target=ONE_TIME_KEYS,
                before_upload=self._save,
            )

    async def close(self) -> None:
        await self.flush()

    def on(self, event_type: type) -> Callable[[Handler], Handler]:
        """Register a handler for ``SecretMessage``, ``SecretNotice`` or
        ``VerificationRequested``."""
        return self._handlers.on(event_type)

    # --- saving and acknowledging ------------------------------------------------------------
    async def _save(self) -> None:
        """Save history and then keys and state. Everything is captured here, on the event
        loop (so it is one consistent moment); sealing and writing (with fsync) run in a
        thread, so other work goes on meanwhile."""
        history = self.history_store.collect(self.state.chats)  # first: the state counts them
        device = self.vault.seal_device(self.keys, self.state.model_dump_json().encode())
        self._dirty = False

        def write() -> None:
            history.write(self.vault)
            device.write()

        await asyncio.to_thread(write)

    async def flush(self) -> None:
        """Save, then acknowledge what was processed (so the server may delete it)."""
        async with self._lock:
            if self._dirty or self.history_store.dirty:
                await self._save()
            ids, self._to_ack = self._to_ack, []
        for start in range(0, len(ids), 200):
            with contextlib.suppress(SamizdatError):  # unacknowledged ones come again; skipped
                await self.client.ack_secret(ids[start : start + 200])
        await self._emit()

    def _flush_soon(self) -> None:
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(0)  # let a burst of pushes coalesce into one save
        try:
            await self.flush()
        except Exception:  # the next flush retries; a listener must not die of it
            log.exception("could not save secret-chat state")

    async def _emit(self) -> None:
        events, self.notices.events = self.notices.events, []
        for event in events:
            await self._handlers.emit(event)

    # --- chats -----------------------------------------------------------------------------
    def chats(self) -> list[SecretChat]:
        return sorted(self.state.chats.values(), key=lambda c: c.created_at)

    async def resolve(self, peer: str | int | SecretChat) -> SecretChat:
        """The secret chat for ``@username``, ``+phone``, a user id, or a secret group's
        title or id (it need not exist yet for a user: it is created locally)."""
        if isinstance(peer, SecretChat):
            return peer
        if isinstance(peer, str) and peer in self.state.chats:
            return self.state.chats[peer]
        if isinstance(peer, str) and not peer.startswith(("@", "+")) and not peer.isdigit():
            by_id = [c for c in self.state.chats.values() if peer in {c.id, c.id[1:]}]
            by_title = [
                c
                for c in self.state.chats.values()
                if c.group is not None and c.group.title == peer
            ]
            if by_id:
                return by_id[0]
            if len(by_title) > 1:
                raise SamizdatError(
                    f"{len(by_title)} secret groups are called {peer!r}; give the group's id "
                    "(samizdat secret chats shows them)",
                    code=ErrorCode.CHAT_INVALID,
                )
            if by_title:
                return by_title[0]
            raise NotFound(
                f"no secret group called {peer!r}; give @username, +phone or a user id for a "
                "1:1 secret chat",
                code=ErrorCode.CHAT_NOT_FOUND,
            )
        user_id = int(peer) if isinstance(peer, int) or peer.isdigit() else None
        if user_id is None:
            user_id = (await self.client.resolve(str(peer))).id
        if user_id == self.user_id:
            raise NotFound(
                "a secret chat needs another user (your devices already get copies)",
                code=ErrorCode.USER_NOT_FOUND,
            )
        chat = self.state.direct_chat(user_id, self.clock())
        self._dirty = True  # perhaps new
        return chat

    async def start(
        self, peer: str | int | SecretChat, *, allow_unverified: bool = False
    ) -> SecretChat:
        """Start a 1:1 secret chat: Olm sessions to every device of the peer and to this
        user's other devices, and a first message that tells them."""
        chat = await self.resolve(peer)
        if chat.peer is None:
            raise NotFound("that is a secret group", code=ErrorCode.CHAT_NOT_FOUND)
        async with self._lock:
            await self._send_olm(chat, ChatStarted(chat=chat.id, ttl=chat.ttl), allow_unverified)
            chat.notice(self.clock(), NoticeLevel.INFO, "started", "Secret chat started")
            self.history_store.touch(chat)
        await self.flush()
        return chat

    async def send(
        self,
        peer: str | int | SecretChat,
        text: str,
        *,
        ttl: int | None = None,
        allow_unverified: bool = False,
    ) -> MessageEntry:
        """Encrypt and send ``text``; ``ttl`` (seconds, 0 for none) overrides the chat's
        self-destruct timer for this message."""
        chat = await self.resolve(peer)
        seconds = _checked_ttl(chat.ttl if ttl is None else ttl)
        if chat.left:
            raise NotFound("you are no longer in this secret group", code=ErrorCode.NOT_MEMBER)
        body = Text(chat=chat.id, id=new_message_id(), text=text, ttl=seconds, sent_at=self.clock())
        entry = MessageEntry(
            id=body.id,
            sender_user=self.user_id,
            sender_device=self.device_id,
            text=text,
            sent_at=body.sent_at,
            received_at=body.sent_at,
            ttl=seconds,
            outgoing=True,
        )
        async with self._lock:
            # In the history before the save that precedes the relay: one save per send.
            chat.history.append(entry)
            self.history_store.touch(chat)
            try:
                if chat.group is not None:
                    await self._send_group(chat, body, allow_unverified)
                else:
                    await self._send_olm(chat, body, allow_unverified)
            except BaseException:
                index = chat.history.index(entry)
                del chat.history[index]
                self.history_store.touch(chat, index)
                await self._save()
                raise
        await self.flush()
        return entry

    async def set_ttl(
        self, peer: str | int | SecretChat, seconds: int, *, allow_unverified: bool = False
    ) -> SecretChat:
        """Set the chat's self-destruct timer for new messages, on every end."""
        _checked_ttl(seconds)
        chat = await self.resolve(peer)
        async with self._lock:
            await self._send_olm(chat, SetTtl(chat=chat.id, ttl=seconds), allow_unverified)
            chat.ttl = seconds
            chat.notice(self.clock(), NoticeLevel.INFO, "ttl", ttl_text("You", seconds))
            self.history_store.touch(chat)
        await self.flush()
        return chat

    async def mark_read(self, peer: str | int | SecretChat) -> list[MessageEntry]:
        """The person has seen the chat: timers of its unread messages start, here and (by a
        read receipt) on the senders' devices."""
        chat = await self.resolve(peer)
        async with self._lock:
            read, first = chat.read_unread(self.clock())
            if not read:
                return []
            self.history_store.touch(chat, first)
            ids = [e.id for e in read]
            try:
                for start in range(0, len(ids), 100):
                    body = Read(chat=chat.id, ids=ids[start : start + 100])
                    await self._send_olm(chat, body, allow_unverified=True)
            except SamizdatError as exc:  # the receipt is a courtesy; reading succeeded
                log.warning("could not send a read receipt: %s", exc.code)
        await self.flush()
        return read

    async def purge_expired(self) -> int:
        """Delete every message whose self-destruct time has come; returns how many chats
        changed."""
        changed = 0
        async with self._lock:
            now = self.clock()
            for chat in self.state.chats.values():
                first = chat.purge_expired(now)
                if first is not None:
                    self.history_store.touch(chat, first)
                    changed += 1
        if changed:
            await self.flush()
        return changed

    # --- groups ----------------------------------------------------------------------------
    async def create_group(
        self, title: str, members: Sequence[str | int], *, allow_unverified: bool = False
    ) -> SecretChat:
        """Create a secret group (you are its admin) and tell every member's devices."""
        user_ids = {await self.client.user_id_of(m) for m in members} - {self.user_id}
        _check_group_size(len(user_ids) + 1)
        group_id = secrets.token_hex(16)
        chat = SecretChat(
            id=f"g{group_id}",
            group=GroupInfo(
                title=title, admin=self.user_id, members=sorted({*user_ids, self.user_id})
            ),
            created_at=self.clock(),
        )
        async with self._lock:
            self.state.chats[chat.id] = chat
            self._dirty = True
            await self._send_group_state(chat, chat.member_ids(self.user_id), allow_unverified)
            chat.notice(self.clock(), NoticeLevel.INFO, "group", f"You created {title!r}")
            self.history_store.touch(chat)
        await self.flush()
        return chat

    async def add_members(
        self, group: str, members: Sequence[str | int], *, allow_unverified: bool = False
    ) -> SecretChat:
        chat = self._admin_group(await self.resolve(group))
        assert chat.group is not None
        added = {await self.client.user_id_of(m) for m in members} - set(chat.group.members)
        _check_group_size(len(chat.group.members) + len(added))
        async with self._lock:
            chat.group.members = sorted({*chat.group.members, *added})
            chat.group.epoch += 1
            await self._send_group_state(chat, chat.member_ids(self.user_id), allow_unverified)
            chat.notice(self.clock(), NoticeLevel.INFO, "group", f"Added {sorted(added)}")
            self.history_store.touch(chat)
        await self.flush()
        return chat

    async def remove_member(
        self, group: str, member: str | int, *, allow_unverified: bool = False
    ) -> SecretChat:
        """Remove a member: they are told, and every remaining member's next message uses a
        new group session they never get."""
        chat = self._admin_group(await self.resolve(group))
        assert chat.group is not None
        removed = await self.client.user_id_of(member)
        if removed not in chat.group.members or removed == self.user_id:
            raise NotFound("not a member of this secret group", code=ErrorCode.USER_NOT_FOUND)
        async with self._lock:
            before = chat.member_ids(self.user_id)
            chat.group.members = [m for m in chat.group.members if m != removed]
            chat.group.epoch += 1
            await self._send_group_state(chat, before, allow_unverified)
            self._rotate(chat.id[1:])
            chat.notice(self.clock(), NoticeLevel.INFO, "group", f"Removed user {removed}")
            self.history_store.touch(chat)
        await self.flush()
        return chat

    async def leave_group(self, group: str, *, allow_unverified: bool = False) -> None:
        chat = await self.resolve(group)
        if chat.group is None or chat.left:
            raise NotFound("not a secret group you are in", code=ErrorCode.CHAT_NOT_FOUND)
        async with self._lock:
            await self._send_olm(chat, GroupLeave(group=chat.id[1:]), allow_unverified)
            chat.left = True
            self._rotate(chat.id[1:])
            chat.notice(self.clock(), NoticeLevel.INFO, "group", "You left the group")
            self.history_store.touch(chat)
        await self.flush()

    def _admin_group(self, chat: SecretChat) -> SecretChat:
        if chat.group is None or chat.left:
            raise NotFound("not a secret group you are in", code=ErrorCode.CHAT_NOT_FOUND)
        if chat.group.admin != self.user_id:
            raise SamizdatError(
                "only the group's creator can change its members", code=ErrorCode.NOT_ADMIN
            )
        return chat

    async def _send_group_state(
        self, chat: SecretChat, to: list[int], allow_unverified: bool
    ) -> None:
        assert chat.group is not None
        body = GroupState(
            group=chat.id[1:],
            title=chat.group.title,
            admin=chat.group.admin,
            members=chat.group.members,
            epoch=chat.group.epoch,
            ttl=chat.ttl,
        )
        await self._fan_out(
            to, lambda devices, otks: self._olm_outgoing(to, devices, otks, body), allow_unverified
        )

    def _rotate(self, group_id: str) -> None:
        self.keys.drop_outbound(group_id)
        self.state.outbound.pop(group_id, None)
        self._dirty = True

    # --- sending -----------------------------------------------------------------------------
    async def _send_olm(self, chat: SecretChat, body: Body, allow_unverified: bool) -> None:
        users = chat.member_ids(self.user_id)
        await self._fan_out(
            users,
            lambda devices, otks: self._olm_outgoing(users, devices, otks, body),
            allow_unverified,
            need_peer=chat.peer,
        )

    def _olm_outgoing(
        self,
        users: list[int],
        devices: list[KnownDevice],
        otks: dict[int, str],
        body: Body,
        *,
        group_key_of: str | None = None,
    ) -> Outgoing:
        return Outgoing(
            recipients=users,
            olm=[(d, self._seal(d, otks, body, group_key_of)) for d in devices],
        )

    def _seal(
        self, device: KnownDevice, otks: dict[int, str], body: Body, group_key_of: str | None
    ) -> dict[str, Any]:
        envelope = DeviceEnvelope(
            sender_user=self.user_id,
            sender_device=self.device_id,
            recipient_user=device.user_id,
            recipient_device=device.device_id,
            recipient_key=device.identity_key,
            n=self.state.next_count(device.identity_key),
            body=body,
        )
        return self.keys.encrypt_to_device(
            device.identity_key,
            otks.get(device.device_id),
            envelope.model_dump(mode="json"),
            group_key_of=group_key_of,
        )

    async def _fan_out(
        self,
        users: list[int],
        build: Callable[[list[KnownDevice], dict[int, str]], Outgoing],
        allow_unverified: bool,
        *,
        need_peer: int | None = None,
    ) -> list[KnownDevice]:
        """Encrypt for every current device of ``users`` and relay; a device list the server
        says is stale is fetched again and the send redone (at most three times)."""
        for attempt in range(_SEND_ATTEMPTS):
            devices, changes = await self.directory.devices_of(users, refresh=attempt > 0)
            self._note_changes(changes)
            self._refuse_forged(users)
            if need_peer is not None and not any(d.user_id == need_peer for d in devices):
                if attempt == 0:
                    continue  # perhaps the list is old: look again
                raise NotFound(
                    "that user has no device that can receive secret chats yet (each device "
                    "publishes its keys when it logs in, or on its first `samizdat secret` "
                    "command)",
                    code=ErrorCode.DEVICE_NOT_FOUND,
                )
            await self._check_trust(devices, allow_unverified)
            otks = await self.directory.one_time_keys(devices)
            counts = dict(self.state.sent)
            requests = plan(build(devices, otks))
            # Write-ahead: the sessions and counts that made these ciphertexts are saved
            # before any leaves, so a crash can never make this device reuse a message key.
            await self._save()
            delivered: set[int] = set()
            try:
                for params in requests:
                    await self.client.send_secret(**params)
                    delivered.update(m["device_id"] for m in params.get("messages", []))
            except SamizdatError as exc:
                if exc.code in _RETRY_CODES:
                    # The server refused before storing anything: counts go back for devices
                    # that got nothing, so their next number follows the last one they saw.
                    # After any other failure (a timeout, say) the ciphertext may have been
                    # stored, so the numbers stay used: at worst the receiver sees a gap.
                    for device in devices:
                        if device.device_id not in delivered:
                            self._restore_count(device.identity_key, counts)
                await self._save()
                if exc.code not in _RETRY_CODES or attempt == _SEND_ATTEMPTS - 1:
                    raise
                continue
            return devices
        raise AssertionError("unreachable")  # pragma: no cover

    def _note_changes(self, changes: list[Change]) -> None:
        if changes:
            self.notices.note_changes(changes)
            self._dirty = True  # the devices this device knows changed

    def _refuse_forged(self, users: list[int]) -> None:
        """A device whose keys are not signed by itself is the server (or someone) trying to
        slip a key in: say so loudly and send nothing."""
        forged = sorted((u, d) for u, d in self.directory.forged if u in users)
        if not forged:
            return
        for user, device in forged:
            self.notices.alert(
                f"u{user}" if user != self.user_id else "",
                "forged_keys",
                f"The server handed out keys for user {user}'s device {device} that the device "
                "did not sign: someone may be trying to intercept. Nothing was sent",
            )
        raise ForgedKeys(
            f"keys of {len(forged)} device(s) are not signed by those devices: nothing was "
            "sent; the server may be tampering with keys"
        )

    def _restore_count(self, identity_key: str, counts: dict[str, int]) -> None:
        if identity_key in counts:
            self.state.sent[identity_key] = counts[identity_key]
        else:
            self.state.sent.pop(identity_key, None)

    async def _check_trust(self, devices: list[KnownDevice], allow_unverified: bool) -> None:
        risky = [d for d in devices if d.trust is Trust.NEW and self.state.user_verified(d.user_id)]
        if not risky or allow_unverified:
            return
        if self.confirm_new_devices is not None and await self.confirm_new_devices(risky):
            for device in risky:
                device.trust = Trust.ACCEPTED
            self._dirty = True
            return
        raise UnverifiedDevices(risky)

    async def _send_group(self, chat: SecretChat, body: Text, allow_unverified: bool) -> None:
        group = chat.group
        assert group is not None
        if group.seen_epoch > group.epoch:
            raise SamizdatError(
                "this group was changed (a member added or removed) but the change has not "
                "reached this device yet, so it may still list someone who was removed: not "
                "sent. Try again later; if it persists, the server may be withholding it",
                code=ErrorCode.CHAT_INVALID,
            )
        group_id = chat.id[1:]
        users = chat.member_ids(self.user_id)
        built = False

        def build(devices: list[KnownDevice], otks: dict[int, str]) -> Outgoing:
            nonlocal built
            if built:  # a retry: the last session's index moved past what anyone received
                self._rotate(group_id)
            built = True
            outbound, info = self._outbound_for(group_id, users, devices)
            need_key = [d for d in devices if d.identity_key not in info.shared_with]
            info.shared_with.extend(d.identity_key for d in need_key)  # saved before relaying
            key_body = RoomKey(group=group_id, session_id=outbound.session_id, epoch=group.epoch)
            olm = [(d, self._seal(d, otks, key_body, group_id)) for d in need_key]
            envelope = GroupEnvelope(
                group=group_id,
                epoch=group.epoch,
                sender_user=self.user_id,
                sender_device=self.device_id,
                body=body,
            )
            ciphertext = self.keys.encrypt_group(group_id, envelope.model_dump(mode="json"))
            return Outgoing(users, olm, ciphertext, devices)

        try:
            await self._fan_out(users, build, allow_unverified)
        except SamizdatError:
            self._rotate(group_id)  # its index moved past what anyone received
            raise

    def _outbound_for(
        self, group_id: str, users: list[int], devices: list[KnownDevice]
    ) -> tuple[Any, OutboundInfo]:
        """This device's group session, replaced when a week old, after 100 messages, when
        a member or a device it was shared with is gone, or after a failed send."""
        outbound = self.keys.outbound(group_id)
        info = self.state.outbound.get(group_id)
        now = self.clock()
        live = {d.identity_key for d in devices}
        if (
            outbound is None
            or info is None
            or info.session_id != outbound.session_id
            or outbound.message_index >= ROTATE_AFTER_MESSAGES
            or now - outbound.created_at >= WEEK
            or not set(info.members) <= set(users)
            or not set(info.shared_with) <= live
        ):
            forget_old_sessions(self.keys, self.state, group_id, self.user_id, self.device_id)
            outbound = self.keys.new_outbound(group_id, now)
            info = OutboundInfo(session_id=outbound.session_id, members=users)
            self.state.outbound[group_id] = info
            self.state.group_sessions[outbound.session_id] = GroupSessionInfo(
                group=group_id,
                sender_user=self.user_id,
                sender_device=self.device_id,
                sender_key=self.keys.identity_key,
                seen=Stream(last=outbound.message_index),
            )
        return outbound, info

    # --- receiving ---------------------------------------------------------------------------
    async def sync(self) -> int:
        """Fetch and decrypt everything waiting for this device; returns how many."""
        total = 0
        while True:
            waiting = await self.client.pending_secret(limit=100)
            for raw in waiting:
                try:
                    update = SecretMessageUpdate.model_validate(raw)
                except ValidationError:
                    log.warning("the server sent a malformed secret-message envelope")
                    if isinstance(raw, dict) and isinstance(raw.get("id"), int):
                        self._to_ack.append(raw["id"])  # or it blocks the queue for ever
                    continue
                await self._receive(update)
            total += len(waiting)
            await self.flush()  # saves, acknowledges, then hands events to the handlers
            if len(waiting) < 100:
                return total

    async def _on_push(self, update: SecretMessageUpdate) -> None:
        if not self.opened:
            return  # it stays queued on the server; open() fetches it
        await self._receive(update)
        self._flush_soon()
        await self._emit()

    async def _receive(self, update: SecretMessageUpdate) -> None:
        async with self._lock:
            if self.state.was_processed(update.id):
                self._to_ack.append(update.id)
                return
            try:
                await self.receiver.process(update)
            except SamizdatError as exc:  # e.g. the server unreachable mid-way: try again later
                log.warning("could not process a secret message now: %s", exc.code)
                return
            self.state.mark_processed(update.id)
            self._to_ack.append(update.id)
            self._dirty = True

    # --- verification hooks (see verify.py) --------------------------------------------------
    def _on_sas(self, body: Any, sender: KnownDevice) -> None:
        watcher = self._sas_watch.get(sender.user_id)
        if watcher is not None:
            watcher.put_nowait((body, sender))
            return
        if isinstance(body, SasStart):
            requests = self.state.verification_requests
            requests[body.txn] = VerificationRequest(
                user_id=sender.user_id, device_id=sender.device_id, at=self.clock()
            )
            for stale in sorted(requests, key=lambda t: requests[t].at)[:-_MAX_REQUESTS]:
                del requests[stale]
            self.notices.events.append(
                VerificationRequested(sender.user_id, sender.device_id, body.txn)
            )


def _checked_ttl(seconds: int) -> int:
    if not ttl_valid(seconds):
        raise SamizdatError(
            "a self-destruct timer is 0 (off) or 5 seconds to 1 week",
            code=ErrorCode.INVALID_PARAMS,
        )
    return seconds


def _check_group_size(members: int) -> None:
    if members > MAX_SECRET_GROUP_MEMBERS:
        raise SamizdatError(
            f"a secret group has at most {MAX_SECRET_GROUP_MEMBERS} members",
            code=ErrorCode.INVALID_PARAMS,
        )


__all__ = [
    "ONE_TIME_KEYS",
    "ROTATE_AFTER_MESSAGES",
    "WEEK",
    "SecretChats",
    "UnverifiedDevices",
    "new_message_id",
]
