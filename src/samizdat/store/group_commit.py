"""Group commit: sends that arrive while a commit runs are committed together in the next.

Each sender's future resolves only after the transaction holding its message has committed,
so an acknowledgement always means "durable". A batch that fails for a reason of its own
(a constraint, bad data) is retried one send at a time so one bad send cannot sink the others;
a batch that fails because the database is down fails all its sends at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from samizdat.core.ids import UserId
from samizdat.core.model import Message
from samizdat.crypto import Keyring
from samizdat.protocol.errors import Unavailable
from samizdat.store.batch import SendOutcome, commit_sends_sync
from samizdat.store.database import Database

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _PendingSend:
    message: Message
    recipients: frozenset[UserId]
    remote: tuple[tuple[str, UserId], ...]
    future: asyncio.Future[SendOutcome] = field(repr=False)


class GroupCommit:
    def __init__(self, db: Database, keyring: Keyring, *, max_batch: int = 1024) -> None:
        self.db = db
        self.keyring = keyring
        self.max_batch = max_batch
        self._queue: asyncio.Queue[_PendingSend] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        #: Called with the number of sends in each group commit (the app wires a metric here).
        self.on_batch: Callable[[int], None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="group-commit")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def send(
        self,
        message: Message,
        recipients: frozenset[UserId],
        remote: tuple[tuple[str, UserId], ...] = (),
    ) -> SendOutcome:
        future: asyncio.Future[SendOutcome] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_PendingSend(message, recipients, remote, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._commit(batch)
            except Unavailable:  # the database is down: every item would fail the same way
                self._fail(batch, "storage is temporarily unavailable; retry the send")
            except Exception as exc:
                log.warning(
                    "group commit failed; retrying one by one", extra={"error": type(exc).__name__}
                )
                for item in batch:
                    if item.future.done():
                        continue
                    try:
                        await self._commit([item])
                    except Exception as single_exc:
                        self._fail([item], "message could not be stored; retry the send")
                        log.error("send failed", extra={"error": type(single_exc).__name__})

    @staticmethod
    def _fail(batch: list[_PendingSend], message: str) -> None:
        for item in batch:
            if not item.future.done():
                item.future.set_exception(Unavailable(message))

    async def _commit(self, batch: list[_PendingSend]) -> None:
        drafts = [(p.message, p.recipients, p.remote) for p in batch]
        keyring = self.keyring
        outcomes = await self.db.run_write(lambda conn: commit_sends_sync(conn, keyring, drafts))
        for item, outcome in zip(batch, outcomes, strict=True):
            if not item.future.done():
                item.future.set_result(outcome)
        if self.on_batch is not None:
            with contextlib.suppress(Exception):
                self.on_batch(len(batch))


__all__ = ["GroupCommit"]
