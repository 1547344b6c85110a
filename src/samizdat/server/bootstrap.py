"""Build a running server from settings: the embedded defaults unless configured otherwise."""

from __future__ import annotations

import logging

import uvicorn

from samizdat.bus.memory import InProcessBus
from samizdat.crypto import Keyring
from samizdat.crypto.custody_keys import NodeKey
from samizdat.crypto.tokens import AdminToken
from samizdat.server.app import create_app
from samizdat.server.asgi import SamizdatApp
from samizdat.server.clock import SystemClock
from samizdat.server.custodians import custodian_refs
from samizdat.server.dc_keeper import DcKeeper
from samizdat.server.settings import ServerSettings
from samizdat.server.verifier import CodeIssuer, WebhookVerifier
from samizdat.store.engine import open_engines
from samizdat.store.identity import DAY, Custody
from samizdat.store.migrate import migrate
from samizdat.store.sql import SqlStore

log = logging.getLogger(__name__)
NODE_KEY_FILE = "node.key"
ADMIN_TOKEN_FILE = "admin.token"

#: uvicorn drops a WebSocket frame beyond this size at the protocol level; frames between the
#: RPC limit and this size get a typed PAYLOAD_TOO_LARGE error and the socket stays open.
WS_HARD_LIMIT = 1024 * 1024


async def open_dc(settings: ServerSettings) -> tuple[SqlStore, DcKeeper]:
    """The served DC's database (migrated) with a sealed keyring, and its keeper.

    Nothing is unsealed here; ``DcKeeper.start`` (in the app's lifespan) asks the custodians.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    dc = settings.dc
    node_key = NodeKey.load_or_create(settings.data_dir / NODE_KEY_FILE)
    refs = custodian_refs(settings, node_key)
    by_id = {ref.custodian_id: ref for ref in refs}
    custody = Custody(
        dc.id, tuple(by_id[c].public.recipient(c) for c in dc.custodians), dc.threshold
    )
    engines = open_engines(
        settings.database_url, sqlite_synchronous=settings.storage.sqlite_synchronous
    )
    await migrate(engines)
    store = SqlStore(
        engines,
        Keyring(dc.id),
        custody,
        max_batch=settings.storage.max_batch,
        secret_retention=settings.storage.secret_retention_seconds,
        ip_retention=settings.identity.ip_retention_days * DAY,
    )
    keeper = DcKeeper(dc, store, node_key, refs, data_dir=settings.data_dir)
    return store, keeper


async def build_app(settings: ServerSettings) -> SamizdatApp:
    store, keeper = await open_dc(settings)
    verifier = None
    if settings.verifier.webhook_url is not None:
        verifier = WebhookVerifier(str(settings.verifier.webhook_url))
    issuer = CodeIssuer(verifier, dev_mode=settings.dev)
    admin = AdminToken(settings.data_dir / ADMIN_TOKEN_FILE)
    return create_app(settings, store, InProcessBus(), SystemClock(), issuer, keeper, admin)


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


__all__ = ["ADMIN_TOKEN_FILE", "NODE_KEY_FILE", "build_app", "open_dc", "serve"]
