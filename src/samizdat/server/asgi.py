"""The outermost ASGI app: ``/ws`` goes straight to the gateway, everything else to FastAPI.

Plain ASGI, so a WebSocket frame passes through no HTTP middleware on its way in or out.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

WS_PATH = "/ws"


class SamizdatApp:
    def __init__(self, http: ASGIApp, gateway: ASGIApp) -> None:
        self.http = http
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == WS_PATH:
            await self.gateway(scope, receive, send)
        else:
            await self.http(scope, receive, send)


__all__ = ["WS_PATH", "SamizdatApp"]
