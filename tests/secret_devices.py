"""Real devices with secret chats open, for integration tests.

A ``Device`` is a signed-in ``Client`` with its own vault (a fast KDF cost: tests only) and a
``SecretChats`` engine, recording every decrypted message and notice it is given. Several
devices of one user share the phone number; a test clock lets timers and rotation be tested
without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samizdat.client import Client
from samizdat.client.secret import (
    MessageEntry,
    NoticeEntry,
    SecretChats,
    SecretMessage,
    SecretNotice,
)
from samizdat.crypto.vault import KdfCost, Vault
from samizdat.protocol.models import SecretMessageUpdate
from tests.harness import ServerProcess, second_device, signed_in, sql

FAST = KdfCost(time_cost=1, memory_kib=8 * 1024, parallelism=1)  # tests only
WAIT = 10.0
_dirs = itertools.count()


class Clock:
    """Wall time plus whatever the test adds."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        import time

        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Device:
    client: Client
    secret: SecretChats
    vault_dir: Path
    messages: asyncio.Queue[SecretMessage] = field(default_factory=asyncio.Queue)
    notices: list[NoticeEntry] = field(default_factory=list)
    raw: list[SecretMessageUpdate] = field(default_factory=list)

    @property
    def user_id(self) -> int:
        assert self.client.me is not None
        return self.client.me.id

    @property
    def device_id(self) -> int:
        assert self.client.session is not None
        return self.client.session.device_id

    async def next_text(self, timeout: float = WAIT) -> MessageEntry:
        return (await asyncio.wait_for(self.messages.get(), timeout)).entry

    def texts(self, chat_id: str) -> list[str]:
        chat = self.secret.state.chats.get(chat_id)
        if chat is None:
            return []
        return [e.text for e in chat.history if isinstance(e, MessageEntry)]

    def notice_codes(self, chat_id: str) -> list[str]:
        chat = self.secret.state.chats.get(chat_id)
        if chat is None:
            return []
        return [e.code for e in chat.history if isinstance(e, NoticeEntry)]

    async def close(self) -> None:
        await self.secret.close()
        await self.client.close()


async def open_device(
    client: Client,
    root: Path,
    *,
    clock: Callable[[], float] | None = None,
    vault_dir: Path | None = None,
    **engine: Any,
) -> Device:
    directory = vault_dir or root / f"vault-{next(_dirs)}"
    vault = Vault.open(directory, "correct horse battery staple", cost=FAST)
    kwargs: dict[str, Any] = dict(engine)
    if clock is not None:
        kwargs["clock"] = clock
    secret = SecretChats(client, vault, **kwargs)
    device = Device(client, secret, directory)
    client.on(SecretMessageUpdate)(device.raw.append)
    secret.on(SecretMessage)(device.messages.put)
    secret.on(SecretNotice)(lambda n: device.notices.append(n.entry))
    await secret.open()
    return device


async def new_user(server: ServerProcess, root: Path, name: str, **engine: Any) -> Device:
    return await open_device(await signed_in(server.url, name), root, **engine)


async def another_device_of(
    server: ServerProcess, root: Path, user: Device, **engine: Any
) -> Device:
    phone = user.client.test_phone  # type: ignore[attr-defined]
    return await open_device(await second_device(server.url, phone), root, **engine)


async def restarted(server: ServerProcess, device: Device, root: Path) -> Device:
    """The same device after its process ended: a new connection, the vault as on disk."""
    client = Client(server.url, session=device.client.session)
    await client.connect()
    return await open_device(client, root, vault_dir=device.vault_dir)


class People:
    """Users and devices for one test, all closed at its end (the ``people`` fixture)."""

    def __init__(self, server: ServerProcess, root: Path) -> None:
        self.server, self.root = server, root
        self._opened: list[Device] = []

    async def user(self, name: str, **engine: Any) -> Device:
        return self._keep(await new_user(self.server, self.root, name, **engine))

    async def device_of(self, user: Device, **engine: Any) -> Device:
        return self._keep(await another_device_of(self.server, self.root, user, **engine))

    async def restarted(self, device: Device) -> Device:
        return self._keep(await restarted(self.server, device, self.root))

    def _keep(self, device: Device) -> Device:
        self._opened.append(device)
        return device

    async def close(self) -> None:
        for device in self._opened:
            with contextlib.suppress(Exception):  # some were closed (or revoked) by the test
                await device.close()


@contextlib.asynccontextmanager
async def devices(*opened: Device) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for device in opened:
            with contextlib.suppress(Exception):
                await device.close()


async def settle(*devices: Device, rounds: int = 3) -> None:
    """Let pushes in flight be processed: fetch whatever is still queued, a few times."""
    for _ in range(rounds):
        await asyncio.sleep(0.05)
        for device in devices:
            await device.secret.sync()


# --- playing a malicious server: reach into its queue -----------------------------------------
async def inbox_rows(server: ServerProcess, device_id: int) -> list[dict[str, Any]]:
    """The ciphertexts waiting for a device, straight from the server's database."""
    return [
        dict(r)
        for r in await _sql(
            server, "SELECT * FROM secret_inbox WHERE device_id = $1 ORDER BY id", device_id
        )
    ]


_injected = itertools.count(1)


async def queue_row(server: ServerProcess, row: dict[str, Any], **changes: Any) -> None:
    """Put a (copied, perhaps altered) row into a device's queue, as a malicious server would."""
    row = {**row, **changes}
    await run_sql(
        server,
        "INSERT INTO secret_inbox (id, device_id, sender_user_id, sender_device_id, olm_type, "
        "ciphertext, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        *(row[k] for k in ("id", "device_id", "sender_user_id", "sender_device_id")),
        *(row[k] for k in ("olm_type", "ciphertext", "created_at")),
    )


async def inject(server: ServerProcess, device: Device, update: SecretMessageUpdate) -> None:
    """Queue a copy of a ciphertext another device got for ``device``, then let it fetch."""
    import base64

    row = {
        "id": 2**53 - next(_injected) * 1000,
        "device_id": device.device_id,
        "sender_user_id": update.sender_user_id,
        "sender_device_id": update.sender_device_id,
        "olm_type": update.olm_type,
        "ciphertext": base64.b64decode(update.ciphertext),
        "created_at": update.sent_at,
    }
    await queue_row(server, row)
    await device.secret.sync()


async def run_sql(server: ServerProcess, sql: str, *args: Any) -> None:
    await _sql(server, sql, *args)


async def _sql(server: ServerProcess, statement: str, *args: Any) -> list[Any]:
    return await sql(server, statement, *args)
