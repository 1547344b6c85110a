"""HTTP side: ``POST /api/<method>`` for scripts (same methods, same errors), health, metrics.

Bodies are parsed by the same dispatcher as WebSocket frames, so errors are identical; the
OpenAPI document is generated from the method table (``GET /openapi.json``, docs at ``/docs``).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from pydantic.json_schema import models_json_schema

from samizdat.protocol.errors import HTTP_STATUS, AuthError, ErrorCode, ProtocolError, SamizdatError
from samizdat.protocol.methods import METHODS, Method
from samizdat.server.deps import Anonymous, Caller
from samizdat.server.rpc import Dispatcher


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type="application/json")


def error_response(exc: SamizdatError) -> Response:
    return json_response({"error": exc.to_wire()}, HTTP_STATUS[exc.code])


async def read_capped(request: Request, limit: int) -> bytes:
    """The request body, refused (PAYLOAD_TOO_LARGE) as soon as it passes ``limit`` bytes,
    so an oversized body is never held in memory whole."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProtocolError(
            f"body exceeds the {limit}-byte limit", code=ErrorCode.PAYLOAD_TOO_LARGE
        )
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise ProtocolError(
                f"body exceeds the {limit}-byte limit", code=ErrorCode.PAYLOAD_TOO_LARGE
            )
    return raw


async def _body(request: Request, limit: int) -> dict[str, Any]:
    raw = await read_capped(request, limit)
    if not raw.strip():
        return {}
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError("body is not valid JSON") from exc
    if not isinstance(parsed, dict):
        raise ProtocolError("body must be a JSON object", code=ErrorCode.INVALID_PARAMS)
    return parsed


def bearer_token(request: Request) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, or "" if there is none."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _device_token(request: Request) -> str:
    token = bearer_token(request)
    if not token:
        raise AuthError("send 'Authorization: Bearer <device token>'")
    return token


def add_rpc_routes(app: FastAPI, dispatcher: Dispatcher) -> None:
    limit = dispatcher.deps.settings.limits.max_frame_bytes

    def endpoint_for(spec: Method) -> Any:
        async def endpoint(request: Request) -> Response:
            ip = request.client.host if request.client else "unknown"
            try:
                # As on the WebSocket: who is calling is settled before what they sent is read.
                who: Caller | Anonymous = Anonymous(ip)
                if spec.needs_device:
                    who = await dispatcher.auth.authenticate(_device_token(request), ip)
                    dispatcher.check_rate(who)
                params = dispatcher.parse(spec, await _body(request, limit))
                return json_response(await dispatcher.call(spec, who, params))
            except SamizdatError as exc:
                return error_response(exc)

        endpoint.__name__ = spec.name.replace(".", "_")
        return endpoint

    for spec in METHODS.values():
        if spec.http:
            app.add_api_route(
                f"/api/{spec.name}",
                endpoint_for(spec),
                methods=["POST"],
                summary=spec.summary,
                tags=[spec.name.split(".")[0]],
                responses={200: {"model": spec.result}},
            )

    @app.api_route("/api/{name:path}", methods=["POST"], include_in_schema=False)
    async def unknown(name: str) -> Response:
        return error_response(
            ProtocolError(f"unknown method {name[:64]!r}", code=ErrorCode.UNKNOWN_METHOD)
        )


def install_openapi(app: FastAPI) -> None:
    """Add each method's request body schema (FastAPI does not parse these bodies itself)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, routes=app.routes, description=app.description
        )
        specs = [s for s in METHODS.values() if s.http]
        _, defs = models_json_schema(
            [(s.params, "validation") for s in specs],
            ref_template="#/components/schemas/{model}",
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(defs.get("$defs", {}))
        security = {"bearer": {"type": "http", "scheme": "bearer"}}
        schema["components"]["securitySchemes"] = security
        for spec in specs:
            operation = schema["paths"][f"/api/{spec.name}"]["post"]
            operation["requestBody"] = {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{spec.params.__name__}"}
                    }
                },
            }
            if spec.needs_device:
                operation["security"] = [{"bearer": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = [
    "add_rpc_routes",
    "bearer_token",
    "error_response",
    "install_openapi",
    "json_response",
    "read_capped",
]
