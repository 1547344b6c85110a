"""Real servers in real processes, and logged-in real clients, for integration tests.

``ServerProcess`` runs ``python -m samizdat serve`` on a free loopback port with its own data
directory and, for PostgreSQL, its own freshly created database; it can be killed with
SIGKILL and restarted on the same data to test durability. ``ChildProcess`` is what it shares
with the custodian processes of ``tests/custodians.py``: start, wait for HTTP 200, stop.

``sql`` reads and writes a DC's database behind the server's back, ``dc_states`` and
``dc_status`` read ``/status``, and ``wait_until`` polls a condition from async tests.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from samizdat.client import Client

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
IN_CI = os.environ.get("CI", "").lower() == "true"

TEST_LIMITS = """
[limits]
auth_per_ip_per_minute = 100000
codes_per_phone_per_hour = 1000
requests_per_second = 100000
request_burst = 100000
legal_submissions_per_ip_per_hour = 100000
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _pg(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def postgres_available() -> bool:
    try:
        asyncio.run(_pg("SELECT 1"))
    except (OSError, asyncpg.PostgresError):
        return False
    return True


def create_pg_database() -> str:
    name = f"samizdat_test_{secrets.token_hex(6)}"
    asyncio.run(_pg(f'CREATE DATABASE "{name}"'))
    return name


def drop_pg_database(name: str) -> None:
    asyncio.run(
        _pg(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )
    )
    asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{name}"'))


class ChildProcess:
    """A child process serving HTTP on loopback ``port``, its output appended to ``log_path``;
    what ``ServerProcess`` and ``tests.custodians.CustodianProcess`` share."""

    port: int
    proc: subprocess.Popen[bytes] | None

    @property
    def name(self) -> str:
        """Who it is, in failure messages."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, size: int = 3000) -> str:
        return self.log_path.read_text()[-size:] if self.log_path.exists() else ""

    def launch(self, args: Sequence[str]) -> None:
        """Start ``args`` without waiting (see ``wait_http``)."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def wait_http(self, path: str, timeout: float = 30.0) -> None:
        """Return once ``GET path`` answers 200; fail (with the log's end) if the process exits
        first or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + path, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: no 200 from {path} after {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM, as an operator stopping the service would; SIGKILL after 10 s."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


@dataclass
class ServerProcess(ChildProcess):
    data_dir: Path
    backend: str = "sqlite"
    extra_config: str = TEST_LIMITS
    dev: bool = True
    port: int = field(default_factory=free_port)
    pg_database: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    #: The DC new accounts are homed in (``+999662...`` go to ``xb``, ``+999663...`` to ``xc``).
    default_dc: str = "xa"

    @property
    def name(self) -> str:
        return "server"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def sqlite_path(self) -> Path:
        """The default DC's SQLite file."""
        return self.dc_sqlite_path(self.default_dc)

    def dc_sqlite_path(self, dc: str) -> Path:
        """A DC's SQLite file: every DC's but the default DC's on PostgreSQL."""
        return self.data_dir / f"dc-{dc}.sqlite3"

    def start(self, *, wait_unsealed: bool = True) -> ServerProcess:
        """Start the process; wait until it serves with every DC unsealed or, with
        ``wait_unsealed=False``, only until it answers ``/status`` (DCs may stay sealed)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.extra_config
        if self.backend == "postgres":
            if self.pg_database is None:
                self.pg_database = create_pg_database()
            config += (
                f'\n[storage]\ndatabase_url = "postgresql+asyncpg://postgres@127.0.0.1:5432/'
                f'{self.pg_database}"\n'
            )
        config_path = self.data_dir / "config.toml"
        config_path.write_text(config)
        args = [
            sys.executable,
            "-m",
            "samizdat",
            "serve",
            "--data",
            str(self.data_dir),
            "--port",
            str(self.port),
            "--config",
            str(config_path),
        ]
        if self.dev:
            args.append("--dev")
        self.launch(args)
        if not wait_unsealed:
            self.wait_http("/status")
            return self
        self.wait_http("/health")
        deadline = time.monotonic() + 30.0
        while "sealed" in httpx.get(self.url + "/health", timeout=5).json():
            if time.monotonic() > deadline:  # /health is 200 once *some* DC serves
                raise RuntimeError(f"a DC is still sealed after 30 s:\n{self.log_tail()}")
            time.sleep(0.05)
        return self

    def cleanup(self) -> None:
        self.stop()
        if self.pg_database is not None:
            drop_pg_database(self.pg_database)
            self.pg_database = None


async def sql(
    server: ServerProcess,
    statement: str,
    *args: Any,
    dc: str | None = None,
    sqlite_path: Path | None = None,
    pg_database: str | None = None,
) -> list[Any]:
    """Run SQL on a DC's database behind the server's back (``$1`` placeholders), as someone
    holding the disk could; rows come back as mappings.

    The database is DC ``dc``'s (on the embedded topology: the default DC on the server's
    backend, the others in their SQLite files), by default the default DC's, unless
    ``sqlite_path`` or ``pg_database`` names another (one of them, not both)."""
    if sqlite_path is not None and pg_database is not None:
        raise ValueError("name a SQLite file or a PostgreSQL database, not both")
    if dc is not None and dc != server.default_dc:
        sqlite_path = server.dc_sqlite_path(dc)
    if sqlite_path is None and pg_database is None:
        if server.backend == "postgres":
            pg_database = server.pg_database
        else:
            sqlite_path = server.sqlite_path
    if sqlite_path is None:
        conn = await asyncpg.connect(
            f"postgresql://postgres@127.0.0.1:5432/{pg_database}", timeout=5
        )
        try:
            return list(await conn.fetch(statement, *args))
        finally:
            await conn.close()
    converted = re.sub(r"\$\d+", "?", statement)
    path = sqlite_path

    def work() -> list[Any]:
        db = sqlite3.connect(path, timeout=10)
        db.row_factory = sqlite3.Row
        try:
            rows = db.execute(converted, args).fetchall()
            db.commit()
            return rows
        finally:
            db.close()

    return await asyncio.to_thread(work)


def _served_dcs(url: str) -> list[dict[str, Any]]:
    reply = httpx.get(url + "/status", timeout=10)
    assert reply.status_code == 200, f"/status: HTTP {reply.status_code}: {reply.text}"
    dcs: list[dict[str, Any]] = reply.json()["dcs"]
    return dcs


def dc_status(url: str, dc: str | None = None) -> dict[str, Any]:
    """One DC's record in the server's ``/status`` (state, last_error, rotation, custodians,
    ...): DC ``dc``, or the first DC the server lists."""
    dcs = _served_dcs(url)
    return dcs[0] if dc is None else next(d for d in dcs if d["id"] == dc)


def dc_states(url: str) -> dict[str, str]:
    """``/status`` in short: each served DC's id and state ("sealed", "unsealed", ...)."""
    return {d["id"]: d["state"] for d in _served_dcs(url)}


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]],
    timeout: float = 30.0,
    what: str = "the condition",
    *,
    interval: float = 0.1,
) -> float:
    """Poll ``predicate`` (plain or async) every ``interval`` seconds without blocking the
    event loop; return the seconds it took, fail naming ``what`` after ``timeout``."""
    started = time.monotonic()
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(interval)


async def database_dump(server: ServerProcess) -> dict[str, bytes]:
    """Every row of every PostgreSQL table, as the bytes a database dump would show."""
    assert server.pg_database is not None
    conn = await asyncpg.connect(
        f"postgresql://postgres@127.0.0.1:5432/{server.pg_database}", timeout=10
    )
    try:
        tables = [
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        dump: dict[str, bytes] = {}
        for table in tables:
            parts: list[bytes] = []
            for row in await conn.fetch(f'SELECT * FROM "{table}"'):
                for value in row.values():
                    if isinstance(value, bytes | bytearray | memoryview):
                        parts.append(bytes(value))
                    else:
                        parts.append(str(value).encode())
            dump[f"table {table}"] = b"\x00".join(parts)
        return dump
    finally:
        await conn.close()


_numbers = itertools.count(int.from_bytes(secrets.token_bytes(3), "big") * 10)


def new_test_phone(digit: int = 1) -> tuple[str, str]:
    """A fresh reserved test number and its dev-mode code."""
    return f"+99966{digit}{next(_numbers) % 10**8:08d}", str(digit) * 5


async def signed_in(
    url: str, name: str = "user", *, device_name: str = "test", digit: int = 1
) -> Client:
    """A new account on a fresh test number ``+99966<digit>...`` (whose dev code is
    ``digit`` five times), signed in on a connected client."""
    phone, code = new_test_phone(digit)
    client = Client(url, device_name=device_name)
    try:
        await client.connect()
        await client.send_code(phone)
        await client.sign_in(phone, code, display_name=name)
    except BaseException:
        await client.close()  # refused (a sealed DC, say): no socket left open
        raise
    client.test_phone = phone  # type: ignore[attr-defined]
    return client


async def second_device(url: str, phone: str, *, device_name: str = "second") -> Client:
    client = Client(url, device_name=device_name)
    await client.connect()
    await client.send_code(phone)
    await client.sign_in(phone, "1" * 5 if phone[6] == "1" else phone[6] * 5)
    client.test_phone = phone  # type: ignore[attr-defined]
    return client
