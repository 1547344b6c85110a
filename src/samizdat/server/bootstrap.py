"""Build a running server from settings: the embedded defaults unless configured otherwise."""

from __future__ import annotations

import logging

import uvicorn

from samizdat.bus.memory import InProcessBus
from samizdat.crypto import FileKeySource, Keyring
from samizdat.server.app import create_app
from samizdat.server.asgi import SamizdatApp
from samizdat.server.clock import SystemClock
from samizdat.server.settings import ServerSettings
from samizdat.server.verifier import CodeIssuer, WebhookVerifier
from samizdat.store.engine import open_engines
from samizdat.store.migrate import migrate
from samizdat.store.sql import SqlStore

log = logging.getLogger(__name__)

#: uvicorn drops a WebSocket frame beyond this size at the protocol level; frames between the
#: RPC limit and this size get a typed PAYLOAD_TOO_LARGE error and the socket stays open.
WS_HARD_LIMIT = 1024 * 1024


async def open_store(settings: ServerSettings) -> SqlStore:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    keyring = Keyring(FileKeySource(settings.data_dir / "dc.key").load())
    engines = open_engines(
        settings.database_url, sqlite_synchronous=settings.storage.sqlite_synchronous
    )
    await migrate(engines)
    return SqlStore(
        engines,
        keyring,
        max_batch=settings.storage.max_batch,
        secret_retention=settings.storage.secret_retention_seconds,
    )


async def build_app(settings: ServerSettings) -> SamizdatApp:
    store = await open_store(settings)
    verifier = None
    if settings.verifier.webhook_url is not None:
        verifier = WebhookVerifier(str(settings.verifier.webhook_url))
    issuer = CodeIssuer(verifier, dev_mode=settings.dev)
    return create_app(settings, store, InProcessBus(), SystemClock(), issuer)


async def serve(settings: ServerSettings) -> None:
    app = await build_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="none",
        ws="websockets-sansio",
        ws_max_size=max(WS_HARD_LIMIT, settings.limits.max_frame_bytes * 2),
        ws_ping_interval=30,
        ws_ping_timeout=30,
        # Compressing small JSON frames costs more CPU than it saves, and compressing
        # secret-bearing traffic invites CRIME-style attacks.
        ws_per_message_deflate=False,
        log_config=None,
        access_log=False,
        lifespan="on",
        backlog=4096,
    )
    await uvicorn.Server(config).serve()


__all__ = ["build_app", "open_store", "serve"]
