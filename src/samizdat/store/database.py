"""Transactions on one DC's database: reads, serialised writes, and whole-batch writes.

Every write on a node goes through one lock, so SQLite sees one writer at a time and the
group commit never interleaves with other writes. Driver errors become our typed errors here:
a broken uniqueness rule is a ``StoreConflict``, anything else ``Unavailable``, logged by type
only (the engines hide statement parameters, so no row value reaches a log).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from samizdat.protocol.errors import Conflict, ErrorCode, Unavailable
from samizdat.store.engine import CheckpointMode, Engines

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class StoreConflict(Conflict):
    """A write broke a uniqueness rule: someone else made the same change first."""


class Database:
    def __init__(self, engines: Engines) -> None:
        self.engines = engines
        self._write_lock = asyncio.Lock()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction, serialised with every other write on this node."""
        async with self._write_lock:
            try:
                async with self.engines.writer.begin() as conn:
                    yield conn
            except IntegrityError as exc:
                raise StoreConflict(
                    "that conflicts with a change made at the same moment; try again",
                    code=ErrorCode.CHAT_INVALID,
                ) from exc
            except SQLAlchemyError as exc:
                log.error("storage write failed", extra={"error": type(exc).__name__})
                raise Unavailable("storage is temporarily unavailable") from exc

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engines.reader.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            log.error("storage read failed", extra={"error": type(exc).__name__})
            raise Unavailable("storage is temporarily unavailable") from exc

    async def run_write(self, work: Callable[[Connection], _T]) -> _T:
        """Run synchronous ``work`` in one write transaction, serialised like ``write``.

        SQLite with ``synchronous=NORMAL``: right here on the event loop, because the commit is
        a write to the WAL that never waits for the disk, and a thread hop would cost more
        than the batch (measured in bench/). SQLite with FULL: in the writer thread, since
        each commit fsyncs. PostgreSQL: through ``run_sync`` on asyncpg.
        """
        async with self._write_lock:
            try:
                sync_writer = self.engines.sync_writer
                if sync_writer is not None:

                    def transaction() -> _T:
                        with sync_writer.begin() as conn:
                            return work(conn)

                    if self.engines.inline_commits:
                        return transaction()
                    loop = asyncio.get_running_loop()
                    return await loop.run_in_executor(self._thread, transaction)
                async with self.engines.writer.begin() as conn:
                    return await conn.run_sync(work)
            except IntegrityError as exc:
                raise StoreConflict("a concurrent change won; try again") from exc
            except SQLAlchemyError as exc:
                log.error("storage write failed", extra={"error": type(exc).__name__})
                raise Unavailable("storage is temporarily unavailable") from exc

    async def make_durable(self) -> None:
        """Everything committed so far survives a power cut: SQLite copies its WAL into the
        database and fsyncs (a FULL checkpoint, in the worker thread); PostgreSQL already
        fsyncs its WAL at commit."""
        await self.checkpoint("FULL")

    async def checkpoint(self, mode: CheckpointMode = "PASSIVE") -> None:
        """Copy SQLite's WAL into the database, in the worker thread (it fsyncs)."""
        if self.engines.checkpointer is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._thread, self.engines.checkpoint, mode)

    async def close(self) -> None:
        await self.engines.dispose()
        self._thread.shutdown(wait=True)


__all__ = ["Database", "StoreConflict"]
