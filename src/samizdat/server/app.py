"""``create_app``: explicit wiring of settings, store, bus, clock and verifier into an ASGI app."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from samizdat.bus.events import BusEvent, DevicesRevoked
from samizdat.bus.ports import Bus
from samizdat.core.ids import SnowflakeGenerator
from samizdat.crypto.tokens import AdminToken
from samizdat.protocol.errors import AuthError, SamizdatError
from samizdat.server.asgi import SamizdatApp
from samizdat.server.clock import Clock
from samizdat.server.dc_keeper import DcKeeper
from samizdat.server.deps import Deps
from samizdat.server.directory import ChatDirectory
from samizdat.server.gateway import Gateway
from samizdat.server.http import add_rpc_routes, error_response, install_openapi
from samizdat.server.hub import Hub
from samizdat.server.metrics import Metrics
from samizdat.server.rpc import Dispatcher
from samizdat.server.services.auth import AuthService
from samizdat.server.settings import ServerSettings
from samizdat.server.verifier import CodeIssuer
from samizdat.store.sql import SqlStore

log = logging.getLogger(__name__)


def create_app(
    settings: ServerSettings,
    store: SqlStore,
    bus: Bus,
    clock: Clock,
    issuer: CodeIssuer,
    keeper: DcKeeper,
    admin: AdminToken,
) -> SamizdatApp:
    """Build the ASGI app. The caller owns store/bus lifetimes only until the app starts:
    the app's lifespan starts them and closes them on shutdown."""
    metrics = Metrics()
    deps = Deps(
        settings,
        store,
        bus,
        clock,
        SnowflakeGenerator(settings.node_id),
        metrics,
        ChatDirectory(store),
    )
    store.commits.on_batch = metrics.batch_size.observe
    auth = AuthService(deps, issuer)
    dispatcher = Dispatcher(deps, auth)
    hub = Hub(metrics, deps.chats.invalidate)

    def on_event(event: BusEvent) -> None:
        if isinstance(event, DevicesRevoked):
            auth.forget(event.device_ids)
        hub.handle(event)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await store.start()
        await bus.start(on_event)
        await keeper.start()
        log.info("samizdat ready", extra={"dev": settings.dev, "dc": str(keeper.state)})
        try:
            yield
        finally:
            await bus.close()
            await keeper.stop()
            await store.close()
            await issuer.aclose()

    app = FastAPI(
        title="Samizdat",
        version="0.1.0",
        description="RPC over HTTP: every method of the WebSocket protocol, one POST each.",
        lifespan=lifespan,
    )
    app.state.deps = deps
    app.state.hub = hub
    add_rpc_routes(app, dispatcher)
    install_openapi(app)

    @app.get("/health", include_in_schema=False)
    async def health() -> Response:
        """200 only when this node can serve: database reachable and DC unsealed."""
        try:
            await store.ping()
            store.keyring.require_unsealed()
        except SamizdatError as exc:
            return error_response(exc)
        return Response(b'{"status":"ok"}', media_type="application/json")

    @app.get("/status", include_in_schema=False)
    async def status() -> Response:
        """The served DC (sealed or not) and whether each of its custodians answers."""
        body = {"dcs": [await keeper.status()]}
        return Response(orjson.dumps(body), media_type="application/json")

    @app.post("/admin/rotate-key", include_in_schema=False)
    async def rotate_key(request: Request) -> Response:
        """Start re-keying the served DC (``samizdat dc rotate-key``); progress in /status."""
        presented = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not admin.matches(presented):
            return error_response(AuthError("this needs the operator's admin token"))
        try:
            new_key = keeper.start_rotation()
        except SamizdatError as exc:
            return error_response(exc)
        return Response(orjson.dumps({"new_key": new_key}), media_type="application/json")

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return SamizdatApp(app, Gateway(dispatcher, hub))


__all__ = ["create_app"]
