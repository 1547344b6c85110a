"""The custodian as an HTTP service (``samizdat custodian serve``): three routes, no more.

``POST /v1/unseal`` and ``POST /v1/disclose`` answer 200 with a signed ``Answer``, 403 with
a ``Refused`` (code and reason), or 400 for a body that does not parse; every one of them is
in the audit log. ``GET /v1/info`` says who the custodian is. Bodies over 256 KiB are refused
before they are read in full.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from samizdat.custody.audit import AuditError
from samizdat.custody.policy import Refusal, RefusalCode
from samizdat.custody.protocol import MAX_REQUEST_BYTES, Answer, DiscloseRequest, SignedUnseal
from samizdat.custody.service import Custodian, parse_model

log = logging.getLogger(__name__)


def _json(status: int, payload: object) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def _refused(refusal: Refusal) -> Response:
    status = 400 if refusal.code is RefusalCode.MALFORMED else 403
    return _json(status, {"code": str(refusal.code), "message": refusal.message})


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_REQUEST_BYTES):
        raise Refusal(RefusalCode.MALFORMED, "the request body is too large")
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > MAX_REQUEST_BYTES:
            raise Refusal(RefusalCode.MALFORMED, "the request body is too large")
    return bytes(chunks)


def custodian_app(custodian: Custodian) -> Starlette:
    def handler(
        kind: str,
        model: type[SignedUnseal] | type[DiscloseRequest],
        answer: Callable[[Any], Answer],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                try:
                    parsed = parse_model(model, await _body(request))
                except Refusal as refusal:
                    return _refused(custodian.refuse(kind, refusal, now=time.time()))
                try:
                    granted = answer(parsed)  # the custodian logs its own refusals
                except Refusal as refusal:
                    return _refused(refusal)
            except (AuditError, OSError) as exc:
                # No answer without its audit entry: say so, and answer nothing.
                log.error("custodian cannot write its audit log", extra={"error": str(exc)})
                return _json(503, {"code": "UNAVAILABLE", "message": "audit log unavailable"})
            return _json(200, granted.model_dump(mode="json"))

        return endpoint

    async def info(_: Request) -> Response:
        return _json(200, custodian.info().model_dump(mode="json"))

    unseal = handler("unseal", SignedUnseal, custodian.unseal)
    disclose = handler("disclose", DiscloseRequest, custodian.disclose)
    return Starlette(
        routes=[
            Route("/v1/unseal", unseal, methods=["POST"]),
            Route("/v1/disclose", disclose, methods=["POST"]),
            Route("/v1/info", info, methods=["GET"]),
        ]
    )


__all__ = ["custodian_app"]
