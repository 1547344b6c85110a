"""Lawful requests over HTTP, and the operator's public page.

``POST /legal/orders``          authorities submit every order of a case at once, as
                                ``{"orders": [ORDER, ...]}``; each case is decided, logged in
                                the transparency log, and answered (with the disclosure
                                package when granted)
``GET /legal``                  the operator page: legal entity, contact for authorities, the
                                DCs' and custodians' jurisdictions, the disclosure policy, the
                                latest signed tree head; JSON with ``Accept: application/json``
``GET /admin/legal/requests``   every request and its outcome (the operator's admin token)

An order is its own credential: a court's signature, checked here and again by each
custodian. A body that is not JSON, or an order that does not parse, gets 400 and is not
logged (it names no jurisdiction to count it under).
"""

from __future__ import annotations

import dataclasses
import html
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from samizdat.core.ratelimit import KeyedLimiter
from samizdat.crypto.signing_keys import SigningKey, encode_public_key
from samizdat.crypto.tokens import AdminToken
from samizdat.custody.protocol import CourtOrder
from samizdat.legal.intake import CaseOutcome, LegalDesk
from samizdat.legal.orders import OrderFormatError, parse_order
from samizdat.legal.policy import policy_summary
from samizdat.legal.review import review_submission
from samizdat.protocol.errors import (
    AuthError,
    ErrorCode,
    ProtocolError,
    SamizdatError,
    Unavailable,
)
from samizdat.server.http import bearer_token, error_response, json_response, read_capped
from samizdat.server.legal import RouterRecords, Rules, SqlRequestBook, load_rules
from samizdat.server.placement import DcRouter, ServedDc
from samizdat.server.settings import ConfigError, ServerSettings
from samizdat.server.transparency_http import add_transparency_routes
from samizdat.store.transparency import TransparencyStore

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 512 * 1024
MAX_ORDERS = 16  # a leaf names at most 16 jurisdictions


def _bad(message: str) -> ProtocolError:
    return ProtocolError(message, code=ErrorCode.INVALID_PARAMS)


def outcome_json(outcome: CaseOutcome) -> dict[str, Any]:
    body = dataclasses.asdict(outcome)
    body["accounts"] = outcome.accounts
    return body


async def _orders_of(request: Request) -> list[CourtOrder]:
    raw = await read_capped(request, MAX_BODY_BYTES)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _bad('the body must be JSON: {"orders": [ORDER, ...]}') from None
    orders = body.get("orders") if isinstance(body, dict) else None
    if not isinstance(orders, list) or not 1 <= len(orders) <= MAX_ORDERS:
        raise _bad(f'the body must be {{"orders": [...]}} with 1 to {MAX_ORDERS} orders')
    parsed = []
    for n, order in enumerate(orders):
        try:
            parsed.append(parse_order(orjson.dumps(order)))
        except OrderFormatError as exc:
            raise _bad(f"order {n + 1}: {exc}") from None
    return parsed


def _rules(settings: ServerSettings) -> Rules:
    try:
        return load_rules(settings)
    except ValueError as exc:  # the operator's registry or policy file is broken
        log.error("legal rules unreadable", extra={"why": str(exc)[:300]})
        raise Unavailable(
            "lawful requests are not being taken: the operator's court registry or "
            "disclosure policy is invalid"
        ) from None


def operator_info(
    settings: ServerSettings, rules: Rules, head: dict[str, Any] | None
) -> dict[str, Any]:
    """What a regulator's registry asks for; nothing about users."""
    places = {c.id: c.jurisdiction for c in settings.custodians}
    return {
        "operator": {
            "name": settings.legal.operator_name or "(not configured)",
            "contact": settings.legal.operator_contact or "(not configured)",
        },
        "dcs": [
            {
                "id": dc.id,
                "jurisdiction": dc.jurisdiction,
                "threshold": dc.threshold,
                "custodian_jurisdictions": [places[c] for c in dc.custodians],
            }
            for dc in settings.dcs
        ],
        "custodians": [{"id": c.id, "jurisdiction": c.jurisdiction} for c in settings.custodians],
        "policy": {
            **policy_summary(rules.policy),
            "recognised_jurisdictions": sorted(rules.recognised),
            "jurisdictions_required": rules.required,
            "ip_window_days": rules.ip_window_days,
        },
        "courts": [
            {"jurisdiction": c.jurisdiction, "name": c.name} for c in rules.registry.courts()
        ],
        "transparency_head": head,
        "submit": 'POST /legal/orders with every order of a case: {"orders": [...]}',
    }


def _page(info: dict[str, Any]) -> str:
    def esc(value: object) -> str:
        return html.escape(str(value))

    operator = info["operator"]
    dcs = "".join(
        f"<tr><td>{esc(d['id'])}</td><td>{esc(d['jurisdiction'])}</td>"
        f"<td>{esc(', '.join(d['custodian_jurisdictions']))}</td>"
        f"<td>{esc(d['threshold'])}</td></tr>"
        for d in info["dcs"]
    )
    policy = "".join(
        f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in info["policy"].items()
    )
    head = info["transparency_head"]
    head_text = (
        "empty"
        if head is None
        else f"size {head['tree_size']}, root {head['root_hash']}, signed {head['timestamp_ms']}"
    )
    return (
        "<!doctype html><meta charset=utf-8><title>Samizdat: legal</title>"
        "<style>body{font-family:sans-serif;max-width:50em;margin:2em auto}"
        "td,th{padding:.2em .6em;text-align:left}</style>"
        f"<h1>Legal information</h1><p>Operator: <b>{esc(operator['name'])}</b><br>"
        f"Contact for authorities: {esc(operator['contact'])}</p>"
        "<h2>Data centres and key custodians</h2><table><tr><th>DC</th><th>jurisdiction</th>"
        f"<th>custodians in</th><th>orders needed</th></tr>{dcs}</table>"
        f"<h2>Disclosure policy</h2><table>{policy}</table>"
        "<p>Only a phone number and IP addresses can ever be disclosed; never message content, "
        "contacts, media or keys. Submit every order of a case together: "
        "<code>POST /legal/orders</code>.</p>"
        f"<h2>Transparency log</h2><p>Latest signed tree head: {esc(head_text)}. "
        'See <a href="/transparency">/transparency</a>.</p>'
    )


def add_legal_routes(
    app: Starlette,
    settings: ServerSettings,
    desk: LegalDesk,
    book: SqlRequestBook,
    transparency: Callable[[], TransparencyStore],
    admin: AdminToken,
    log_key: bytes,
) -> None:
    per_hour = settings.limits.legal_submissions_per_ip_per_hour
    limiter: KeyedLimiter[str] = KeyedLimiter(
        per_hour / 3600.0, per_hour, max_keys=10_000, what="submissions"
    )

    async def submit(request: Request) -> Response:
        try:
            orders = await _orders_of(request)
            if settings.limits.rate_limits:  # one unit per case: each is a log entry
                cases = len({order.order.case for order in orders})
                address = request.client.host if request.client else ""
                limiter.check(address, time.monotonic(), cost=min(cases, limiter.burst))
            rules = _rules(settings)
            reviews = review_submission(
                orders,
                registry=rules.registry,
                policy=rules.policy,
                recognised=rules.recognised,
                required=rules.required,
                now_ms=int(desk.clock() * 1000),
            )
            outcomes = await desk.decide(reviews, rules.terms)
        except SamizdatError as exc:
            return error_response(exc)
        return json_response({"cases": [outcome_json(o) for o in outcomes]})

    async def operator(request: Request) -> Response:
        try:
            rules = _rules(settings)
        except SamizdatError as exc:
            return error_response(exc)
        head = await transparency().head()
        shown = (
            None if head is None else {**head.model_dump(), "log_key": encode_public_key(log_key)}
        )
        info = operator_info(settings, rules, shown)
        wants_json = "application/json" in request.headers.get("accept", "")
        if wants_json or request.query_params.get("format") == "json":
            return json_response(info)
        return HTMLResponse(_page(info))

    async def requests(request: Request) -> Response:
        if not admin.matches(bearer_token(request)):
            return error_response(AuthError("this needs the operator's admin token"))
        return json_response({"requests": await book.requests()})

    app.add_route("/legal/orders", submit, methods=["POST"], include_in_schema=False)
    app.add_route("/legal", operator, methods=["GET"], include_in_schema=False)
    app.add_route("/admin/legal/requests", requests, methods=["GET"], include_in_schema=False)


def install_legal(
    app: Starlette,
    settings: ServerSettings,
    served: Sequence[ServedDc],
    dcs: DcRouter,
    admin: AdminToken,
    log_key: SigningKey,
) -> None:
    """The intake, the operator page and the transparency log, kept in the default DC's
    database (public records only) and signed with ``log_key``."""
    try:  # a broken registry or policy stops the start, rather than a request later
        load_rules(settings)
    except ValueError as exc:
        raise ConfigError(f"lawful requests: {exc}") from exc
    default = next(dc for dc in served if dc.settings.id == settings.dc.id)
    store = TransparencyStore(default.store.db)
    book = SqlRequestBook(store, log_key)
    desk = LegalDesk(RouterRecords(dcs, served, settings), book)
    add_legal_routes(app, settings, desk, book, lambda: store, admin, log_key.public)
    add_transparency_routes(app, lambda: store, log_key.public)


__all__ = [
    "MAX_BODY_BYTES",
    "MAX_ORDERS",
    "add_legal_routes",
    "install_legal",
    "operator_info",
    "outcome_json",
]
