"""Build a running server from settings: the embedded defaults unless configured otherwise."""

from __future__ import annotations

import logging

import uvicorn

from samizdat.bus.memory import InProcessBus
from samizdat.crypto import Keyring
from samizdat.crypto.custody_keys import NodeKey
from samizdat.crypto.signing_keys import SigningKey
from samizdat.crypto.tokens import AdminToken
from samizdat.server.app import create_app
from samizdat.server.asgi import SamizdatApp
from samizdat.server.clock import SystemClock
from samizdat.server.custodians import custodian_refs
from samizdat.server.dc_keeper import DcKeeper
from samizdat.server.legal import LOG_KEY_FILE, legal_dir
from samizdat.server.placement import ServedDc
from samizdat.server.settings import ServerSettings
from samizdat.server.verifier import CodeIssuer, WebhookVerifier
from samizdat.store.engine import open_engines
from samizdat.store.identity import DAY, Custody
from samizdat.store.migrate import migrate
from samizdat.store.sql import SqlStore

log = logging.getLogger(__name__)
ADMIN_TOKEN_FILE = "admin.token"

#: uvicorn drops a WebSocket frame beyond this size at the protocol level; frames between the
#: RPC limit and this size get a typed PAYLOAD_TOO_LARGE error and the socket stays open.
WS_HARD_LIMIT = 1024 * 1024


async def open_dcs(settings: ServerSettings) -> list[ServedDc]:
    """Every configured DC's database (migrated) with a sealed keyring, and its keeper.

    Nothing is unsealed here; ``DcKeeper.start`` (in the app's lifespan) asks the custodians.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    node_keys = {dc.id: NodeKey.load_or_create(settings.node_key_file(dc)) for dc in settings.dcs}
    refs_by_dc = custodian_refs(settings, node_keys)
    served = []
    for dc in settings.dcs:
        refs = refs_by_dc[dc.id]
        by_id = {ref.custodian_id: ref for ref in refs}
        custody = Custody(
            dc.id, tuple(by_id[c].public.recipient(c) for c in dc.custodians), dc.threshold
        )
        engines = open_engines(
            settings.database_url_of(dc), sqlite_synchronous=settings.storage.sqlite_synchronous
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
        default = dc.id == settings.dc.id
        keeper = DcKeeper(
            dc, store, node_keys[dc.id], refs, data_dir=settings.data_dir, legacy_key=default
        )
        served.append(ServedDc(dc, store, keeper))
    return served


async def build_app(settings: ServerSettings) -> SamizdatApp:
    served = await open_dcs(settings)
    verifier = None
    if settings.verifier.webhook_url is not None:
        verifier = WebhookVerifier(str(settings.verifier.webhook_url))
    issuer = CodeIssuer(verifier, dev_mode=settings.dev)
    admin = AdminToken(settings.data_dir / ADMIN_TOKEN_FILE)
    log_key = SigningKey.load_or_create(legal_dir(settings) / LOG_KEY_FILE)
    return create_app(settings, served, InProcessBus(), SystemClock(), issuer, admin, log_key)


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


__all__ = ["ADMIN_TOKEN_FILE", "build_app", "open_dcs", "serve"]
