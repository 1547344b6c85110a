"""The custodian as an HTTP service (``samizdat custodian serve``): three routes, no more.

``POST /v1/unseal`` (a ``SignedUnseal``) and ``POST /v1/disclose`` (a ``SignedDisclose``),
each signed by an enrolled DC node, answer 200 with a signed ``Answer``, 403 with a
``Refused`` (code and reason), or 400 for a body that does not parse (an unsigned one among
them); every one of them is
in the audit log. Beyond a per-address rate they get 429 and are counted in a summary entry
once a minute; 503 if the audit log cannot be written (then nothing is answered).
``GET /v1/info`` says who the custodian is. Bodies over 256 KiB are refused
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

from samizdat.core.ratelimit import KeyedLimiter
from samizdat.custody.audit import AuditError
from samizdat.custody.policy import Refusal, RefusalCode
from samizdat.custody.protocol import MAX_REQUEST_BYTES, Answer, SignedDisclose, SignedUnseal
from samizdat.custody.service import Custodian, parse_model
from samizdat.protocol.errors import RateLimited

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


class RequestLimit:
    """Requests per source address. Over it: 429, read nothing, write nothing per request;
    the audit log gets one summary entry a minute with how many were turned away, so a
    flood can neither fill the disk nor push real answers past a node's deadline."""

    def __init__(self, custodian: Custodian, rate: float, burst: float) -> None:
        self.custodian = custodian
        self.limiter = KeyedLimiter[str](rate, burst, max_keys=10_000)
        self.turned_away = 0
        self.summarised_at = time.monotonic()

    def allow(self, request: Request) -> bool:
        source = request.client.host if request.client else "unknown"
        try:
            self.limiter.check(source, time.monotonic())
        except RateLimited:
            self.turned_away += 1
            self.summarise()
            return False
        self.summarise()
        return True

    def summarise(self) -> None:
        if self.turned_away and time.monotonic() - self.summarised_at >= 60:
            self.custodian.audit.append(
                at=time.time(),
                kind="rate-limit",
                outcome="refused",
                reason=f"{self.turned_away} requests over the per-address limit",
            )
            self.turned_away = 0
            self.summarised_at = time.monotonic()


def _audit_unavailable(exc: Exception) -> Response:
    log.error("custodian cannot use its audit log", extra={"error": str(exc)})
    return _json(503, {"code": "UNAVAILABLE", "message": "audit log unavailable"})


def custodian_app(
    custodian: Custodian, *, requests_per_second: float = 5.0, burst: float = 50.0
) -> Starlette:
    limit = RequestLimit(custodian, requests_per_second, burst)

    def handler(
        kind: str,
        model: type[SignedUnseal] | type[SignedDisclose],
        answer: Callable[[Any], Answer],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                if not limit.allow(request):
                    return _json(429, {"code": "RATE_LIMITED", "message": "too many requests"})
                try:
                    parsed = parse_model(model, await _body(request))
                except Refusal as refusal:
                    return _refused(custodian.refuse(kind, refusal, now=time.time()))
                try:
                    granted = answer(parsed)  # the custodian logs its own refusals
                except Refusal as refusal:
                    return _refused(refusal)
            except (AuditError, OSError) as exc:  # no answer without its audit entry
                return _audit_unavailable(exc)
            return _json(200, granted.model_dump(mode="json"))

        return endpoint

    async def info(_: Request) -> Response:
        try:
            return _json(200, custodian.info().model_dump(mode="json"))
        except (AuditError, OSError) as exc:  # its state cannot be read: as for every route
            return _audit_unavailable(exc)

    unseal = handler("unseal", SignedUnseal, custodian.unseal)
    disclose = handler("disclose", SignedDisclose, custodian.disclose)
    return Starlette(
        routes=[
            Route("/v1/unseal", unseal, methods=["POST"]),
            Route("/v1/disclose", disclose, methods=["POST"]),
            Route("/v1/info", info, methods=["GET"]),
        ]
    )


__all__ = ["custodian_app"]
