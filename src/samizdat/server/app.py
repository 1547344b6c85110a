"""``create_app``: explicit wiring of settings, store, bus, clock and verifier into an ASGI app."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Sequence

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from samizdat.bus.events import BusEvent, DevicesRevoked
from samizdat.bus.ports import Bus
from samizdat.core.ids import SnowflakeGenerator
from samizdat.crypto.signing_keys import SigningKey
from samizdat.crypto.tokens import AdminToken
from samizdat.protocol.errors import AuthError, NotFound, SamizdatError
from samizdat.server.asgi import SamizdatApp
from samizdat.server.clock import Clock
from samizdat.server.deps import Deps
from samizdat.server.directory import ChatDirectory
from samizdat.server.gateway import Gateway
from samizdat.server.http import add_rpc_routes, bearer_token, error_response, install_openapi
from samizdat.server.hub import Hub
from samizdat.server.legal_http import install_legal
from samizdat.server.metrics import Metrics
from samizdat.server.placement import DcRouter, ServedDc
from samizdat.server.rpc import Dispatcher
from samizdat.server.services.auth import AuthService
from samizdat.server.services.publish import publish_fetched
from samizdat.server.settings import ServerSettings
from samizdat.server.verifier import CodeIssuer

log = logging.getLogger(__name__)


def create_app(
    settings: ServerSettings,
    served: Sequence[ServedDc],
    bus: Bus,
    clock: Clock,
    issuer: CodeIssuer,
    admin: AdminToken,
    log_key: SigningKey,
) -> SamizdatApp:
    """Build the ASGI app. The caller owns store/bus lifetimes only until the app starts:
    the app's lifespan starts them and closes them on shutdown."""
    metrics = Metrics()
    dcs = DcRouter(served, settings.homing, settings.dc.id)
    deps = Deps(
        settings,
        dcs,
        bus,
        clock,
        SnowflakeGenerator(settings.node_id),
        metrics,
        ChatDirectory(dcs),
    )
    for dc in served:
        dc.store.commits.on_batch = metrics.batch_size.observe

    dcs.on_moved = functools.partial(publish_fetched, deps)
    auth = AuthService(deps, issuer)
    dispatcher = Dispatcher(deps, auth)
    hub = Hub(metrics, deps.chats.invalidate)

    def on_event(event: BusEvent) -> None:
        if isinstance(event, DevicesRevoked):
            auth.forget(event.device_ids)
        hub.handle(event)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for dc in served:
            await dc.store.start()
        await bus.start(on_event)
        await asyncio.gather(*(dc.keeper.start() for dc in served))
        await dcs.start()
        states = {dc.settings.id: str(dc.keeper.state) for dc in served}
        log.info("samizdat ready", extra={"dev": settings.dev, "dcs": states})
        try:
            yield
        finally:
            await dcs.stop()
            await bus.close()
            for dc in served:
                await dc.keeper.stop()
            for dc in served:
                await dc.store.close()
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
    install_legal(app, settings, served, dcs, admin, log_key)
    install_openapi(app)

    @app.get("/health", include_in_schema=False)
    async def health() -> Response:
        """200 when this node can serve: every database reachable and some DC unsealed (the
        body names any sealed DC: its users get UNAVAILABLE while the others are served)."""
        try:
            for dc in served:
                await dc.store.ping()
            dcs.require_any_unsealed()
        except SamizdatError as exc:
            return error_response(exc)
        sealed = [dc.settings.id for dc in served if not dc.store.keyring.unsealed]
        body = {"status": "ok", "sealed": sealed} if sealed else {"status": "ok"}
        return Response(orjson.dumps(body), media_type="application/json")

    @app.get("/status", include_in_schema=False)
    async def status() -> Response:
        """Each served DC (sealed or not) and whether each of its custodians answers."""
        body = {"dcs": await asyncio.gather(*(dc.keeper.status() for dc in served))}
        return Response(orjson.dumps(body), media_type="application/json")

    @app.post("/admin/rotate-key", include_in_schema=False)
    async def rotate_key(request: Request) -> Response:
        """Start re-keying a served DC (``samizdat dc rotate-key``; ``?dc=`` names it, else the
        default DC); progress in /status."""
        if not admin.matches(bearer_token(request)):
            return error_response(AuthError("this needs the operator's admin token"))
        wanted = request.query_params.get("dc", settings.dc.id)
        chosen = next((dc for dc in served if dc.settings.id == wanted), None)
        if chosen is None:
            return error_response(NotFound(f"this node serves no DC {wanted[:32]!r}"))
        try:
            new_key = chosen.keeper.start_rotation()
        except SamizdatError as exc:
            return error_response(exc)
        return Response(orjson.dumps({"new_key": new_key}), media_type="application/json")

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return SamizdatApp(app, Gateway(dispatcher, hub))


__all__ = ["create_app"]
