"""Shared fixtures: a real server per module on each backend, and signed-in clients."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from samizdat.client import Client
from tests.cli_runner import Listener, Person, sign_in_profile
from tests.harness import IN_CI, ServerProcess, new_test_phone, postgres_available, signed_in
from tests.secret_devices import People

BACKENDS = ["sqlite", "postgres"]


def _require_backend(backend: str) -> None:
    if backend == "postgres" and not postgres_available():
        if IN_CI:
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is required when CI=true")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not running")


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One server process per test module and backend; tests use fresh users, so they share it."""
    _require_backend(request.param)
    proc = ServerProcess(tmp_path_factory.mktemp(f"server-{request.param}"), backend=request.param)
    proc.start()
    yield proc
    proc.cleanup()


@pytest.fixture(params=BACKENDS)
def fresh_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of one's own, for tests that kill or reconfigure it."""
    _require_backend(request.param)
    proc = ServerProcess(tmp_path / "server", backend=request.param)
    yield proc
    proc.cleanup()


@pytest.fixture
async def people(server: ServerProcess, tmp_path: Path) -> AsyncIterator[People]:
    """Secret-chat users and devices, closed when the test ends."""
    crowd = People(server, tmp_path)
    yield crowd
    await crowd.close()


@pytest.fixture
async def alice(server: ServerProcess) -> AsyncIterator[Client]:
    client = await signed_in(server.url, "Alice")
    yield client
    await client.close()


@pytest.fixture
async def bob(server: ServerProcess) -> AsyncIterator[Client]:
    client = await signed_in(server.url, "Bob")
    yield client
    await client.close()


@pytest.fixture
async def carol(server: ServerProcess) -> AsyncIterator[Client]:
    client = await signed_in(server.url, "Carol")
    yield client
    await client.close()


@pytest.fixture
def person(server: ServerProcess, tmp_path: Path) -> Callable[..., Person]:
    """Make a logged-in profile through the SDK: ``person("Bob", username=True)``."""

    made = itertools.count()

    def make(name: str, *, username: bool = False, phone: str | None = None) -> Person:
        phone = phone or new_test_phone()[0]
        handle = f"{name.lower()}_{phone[-8:]}" if username else None
        profile = tmp_path / f"{name.lower()}-{next(made)}"
        user_id = asyncio.run(sign_in_profile(server.url, profile, phone, name, handle))
        return Person(profile, phone, user_id, name, handle)

    return make


@pytest.fixture
def listen() -> Iterator[Callable[..., Listener]]:
    started: list[Listener] = []

    def start(profile: Path, env: dict[str, str] | None = None) -> Listener:
        started.append(Listener(profile, env))
        return started[-1]

    yield start
    for listener in started:
        listener.close()
