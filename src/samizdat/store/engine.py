"""Engines for a DC's database: SQLite in WAL mode (default) or PostgreSQL.

SQLite gets one writer connection and a small pool of readers, because SQLite has one writer
at a time anyway and WAL lets readers run beside it. ``synchronous`` is the fsync policy:
NORMAL (default) makes every commit durable against a process crash (``kill -9``) because the
WAL write reaches the OS before the commit returns; FULL also survives power loss, at a cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SqliteSync = Literal["NORMAL", "FULL"]
CheckpointMode = Literal["PASSIVE", "FULL"]


@dataclass(frozen=True, slots=True)
class Engines:
    """Engines of one database.

    SQLite only: ``sync_writer`` runs group commits synchronously, ``inline_commits`` says a
    commit never waits for the disk (``synchronous=NORMAL``: the WAL write is one ``write()``)
    so it may run on the event loop itself, and ``checkpointer`` copies the WAL into the
    database (and fsyncs) off the event loop, since automatic checkpoints are turned off.
    """

    writer: AsyncEngine
    reader: AsyncEngine
    dialect: str
    sync_writer: Engine | None = None
    inline_commits: bool = False
    checkpointer: Engine | None = None

    def checkpoint(self, mode: CheckpointMode = "PASSIVE") -> None:
        """Copy SQLite's WAL into the database; call from a worker thread. PASSIVE never
        blocks writers or readers; FULL waits for them and copies (and fsyncs) everything
        committed so far."""
        if self.checkpointer is not None:
            with self.checkpointer.connect() as conn:
                conn.exec_driver_sql(f"PRAGMA wal_checkpoint({mode})")

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()
        for engine in (self.sync_writer, self.checkpointer):
            if engine is not None:
                engine.dispose()


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def _sqlite_pragmas(synchronous: SqliteSync) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA temp_store=MEMORY")
        # Overwrite deleted content (a number no longer shown, erased IP records) rather
        # than leave it in free pages; some SQLite builds default to off.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.execute("PRAGMA wal_autocheckpoint=0")  # Engines.checkpoint does it, off-loop
        cursor.close()

    return on_connect


def open_engines(url: str, *, sqlite_synchronous: SqliteSync = "NORMAL") -> Engines:
    """Create engines for ``url`` (``sqlite+aiosqlite:///...`` or ``postgresql+asyncpg://...``)."""
    if url.startswith("sqlite"):
        # hide_parameters: an error's text never carries row values (ids, hashes, ciphertext)
        writer = create_async_engine(url, pool_size=1, max_overflow=0, hide_parameters=True)
        reader = create_async_engine(url, pool_size=4, max_overflow=4, hide_parameters=True)
        sync_url = url.replace("sqlite+aiosqlite", "sqlite+pysqlite", 1)
        sync_writer, checkpointer = (
            create_engine(
                sync_url,
                pool_size=1,
                max_overflow=0,
                hide_parameters=True,
                connect_args={"check_same_thread": False},
            )
            for _ in range(2)
        )
        for sync_engine in (writer.sync_engine, reader.sync_engine, sync_writer, checkpointer):
            event.listen(sync_engine, "connect", _sqlite_pragmas(sqlite_synchronous))
        return Engines(
            writer,
            reader,
            "sqlite",
            sync_writer,
            inline_commits=sqlite_synchronous == "NORMAL",
            checkpointer=checkpointer,
        )
    if url.startswith("postgresql"):
        shared = create_async_engine(
            url, pool_size=10, max_overflow=10, pool_pre_ping=True, hide_parameters=True
        )
        return Engines(shared, shared, "postgresql")
    raise ValueError(f"unsupported database URL scheme: {url.split(':', 1)[0]!r}")


__all__ = ["CheckpointMode", "Engines", "SqliteSync", "open_engines", "sqlite_url"]
