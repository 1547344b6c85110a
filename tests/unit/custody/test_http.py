"""The custodian over HTTP: 200 with a signed answer, 403 with a refusal's code and message,
400 for a body that does not parse, and an audit entry for every one of them.

Whatever arrives, the service never answers 500 and its audit chain stays whole; a node's HTTP
client turns refusals into ``Refusal`` and anything it cannot read into
``CustodianUnreachable``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from samizdat.crypto.custody_keys import CustodianPublic, NodeKey
from samizdat.custody.audit import AuditError, verify_log
from samizdat.custody.client import CustodianUnreachable, HttpCustodianClient
from samizdat.custody.http import custodian_app
from samizdat.custody.node import CustodianRef, disclose_record, unseal_dc_key
from samizdat.custody.policy import Refusal, RefusalCode
from samizdat.custody.protocol import (
    MAX_REQUEST_BYTES,
    Answer,
    CustodianInfo,
    DiscloseRequest,
    SignedDisclose,
    SignedUnseal,
    answer_message,
    b64,
    unb64,
)
from samizdat.custody.service import Custodian
from tests.custody_requests import (
    CUSTODIAN,
    DAY_MS,
    DC,
    DC_KEY,
    NODE,
    CourtKey,
    dc_key_envelope,
    disclose_request,
    identity_envelope,
    signed_by,
    signed_unseal,
)

BASE_URL = "http://custodian.test"


@pytest.fixture
def court(custodian: Custodian) -> CourtKey:
    court = CourtKey("High Court of XB", "XB")
    custodian.add_court(court.name, court.public_key)
    return court


@pytest.fixture
async def http(custodian: Custodian) -> AsyncIterator[httpx.AsyncClient]:
    # No rate limit here: these tests send hundreds of requests from one address.
    app = custodian_app(custodian, requests_per_second=1e6, burst=1e6)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield client


def now_ms() -> int:
    return int(time.time() * 1000)


def public(custodian: Custodian) -> CustodianPublic:
    return CustodianPublic.decode(custodian.public_key)


def good_unseal(custodian: Custodian, node: NodeKey) -> dict[str, Any]:
    envelope = dc_key_envelope(DC, {CUSTODIAN: public(custodian)}, threshold=1)
    signed = signed_unseal(node, envelope, custodian=CUSTODIAN, dc=DC, issued_at_ms=now_ms())
    return signed.model_dump(mode="json")


def good_disclose(
    custodian: Custodian, court: CourtKey, *, with_order: bool = True
) -> dict[str, Any]:
    """A disclosure request signed by ``NODE`` (the ``node`` fixture enrols it)."""
    custodians = {CUSTODIAN: public(custodian)}
    envelope = identity_envelope(DC, 1, "phone", b"+999661234567", custodians, threshold=1)
    order = court.order(issued_at_ms=now_ms() - DAY_MS, expires_at_ms=now_ms() + DAY_MS)
    signed = disclose_request(
        envelope, order if with_order else None, custodian=CUSTODIAN, issued_at_ms=now_ms()
    )
    return signed.model_dump(mode="json")


async def post(
    http: httpx.AsyncClient, custodian: Custodian, path: str, body: bytes
) -> httpx.Response:
    """POST ``body`` and check the custodian logged exactly one entry for it."""
    before = len(custodian.audit)
    response = await http.post(path, content=body, headers={"content-type": "application/json"})
    assert len(custodian.audit.entries()) == before + 1
    return response


# answers ---------------------------------------------------------------------------------
async def test_a_good_unseal_is_answered_200_with_an_answer_signed_by_the_custodian(
    http: httpx.AsyncClient, custodian: Custodian, node: NodeKey
) -> None:
    signed = SignedUnseal.model_validate(good_unseal(custodian, node))

    response = await post(http, custodian, "/v1/unseal", signed.model_dump_json().encode())

    assert response.status_code == 200
    answer = Answer.model_validate_json(response.content)
    assert answer.custodian == CUSTODIAN
    message = answer_message(signed.request, unb64(answer.grant))
    assert public(custodian).verify(unb64(answer.signature), message)
    entry = custodian.audit.entries()[-1]
    assert (entry.kind, entry.outcome) == ("unseal", "granted")


async def test_key_order_and_whitespace_on_the_wire_do_not_change_the_signed_bytes(
    http: httpx.AsyncClient, custodian: Custodian, node: NodeKey
) -> None:
    body = good_unseal(custodian, node)
    reordered = {
        "signature": body["signature"],
        "request": dict(reversed(list(body["request"].items()))),
    }
    wire = orjson.dumps(reordered, option=orjson.OPT_INDENT_2)

    response = await post(http, custodian, "/v1/unseal", wire)

    assert response.status_code == 200


async def test_a_refusal_is_403_with_its_code_and_message(
    http: httpx.AsyncClient, custodian: Custodian, node: NodeKey, tmp_path: Path
) -> None:
    stranger = NodeKey.load_or_create(tmp_path / "stranger.key")
    body = good_unseal(custodian, stranger)

    response = await post(http, custodian, "/v1/unseal", orjson.dumps(body))

    assert response.status_code == 403
    refused = response.json()
    assert set(refused) == {"code", "message"}
    assert refused["code"] == "NODE_NOT_ENROLLED"
    assert refused["message"]
    entry = custodian.audit.entries()[-1]
    assert (entry.outcome, entry.reason) == ("refused", f"NODE_NOT_ENROLLED: {refused['message']}")


async def test_a_disclosure_without_an_order_is_403_no_order(
    http: httpx.AsyncClient, custodian: Custodian, node: NodeKey, court: CourtKey
) -> None:
    body = good_disclose(custodian, court, with_order=False)
    response = await post(http, custodian, "/v1/disclose", orjson.dumps(body))
    assert (response.status_code, response.json()["code"]) == (403, "NO_ORDER")


async def test_a_good_disclosure_is_answered_200(
    http: httpx.AsyncClient, custodian: Custodian, node: NodeKey, court: CourtKey
) -> None:
    body = good_disclose(custodian, court)
    response = await post(http, custodian, "/v1/disclose", orjson.dumps(body))
    assert response.status_code == 200
    assert Answer.model_validate_json(response.content).custodian == CUSTODIAN


def _with(body: dict[str, Any], key: str, value: object) -> dict[str, Any]:
    return {**body, "request": {**body["request"], key: value}}


@pytest.mark.parametrize(
    "unsigned",
    [
        lambda body: body["request"],
        lambda body: {"request": body["request"]},
        lambda body: {**body, "signature": None},
    ],
    ids=["bare-request", "no-signature", "null-signature"],
)
async def test_a_disclosure_without_a_signature_is_400_malformed(
    http: httpx.AsyncClient,
    custodian: Custodian,
    node: NodeKey,
    court: CourtKey,
    unsigned: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    body = unsigned(good_disclose(custodian, court))

    response = await post(http, custodian, "/v1/disclose", orjson.dumps(body))

    assert (response.status_code, response.json()["code"]) == (400, "MALFORMED")
    entry = custodian.audit.entries()[-1]
    assert (entry.kind, entry.outcome) == ("disclose", "refused")


async def test_a_disclosure_signed_by_another_key_is_403_bad_signature(
    http: httpx.AsyncClient, custodian: Custodian, node: NodeKey, court: CourtKey, tmp_path: Path
) -> None:
    good = SignedDisclose.model_validate_json(orjson.dumps(good_disclose(custodian, court)))
    forged = signed_by(NodeKey.load_or_create(tmp_path / "forger.key"), good.request)

    response = await post(http, custodian, "/v1/disclose", forged.model_dump_json().encode())

    assert (response.status_code, response.json()["code"]) == (403, "BAD_SIGNATURE")


@pytest.mark.parametrize(
    "spoil",
    [
        lambda body: b"this is not JSON",
        lambda body: b"",
        lambda body: b"[1, 2, 3]",
        lambda body: orjson.dumps({**body, "signature": 42}),
        lambda body: orjson.dumps(_with(body, "issued_at_ms", "1700000000000")),
        lambda body: orjson.dumps(_with(body, "issued_at_ms", 1.5)),
        lambda body: orjson.dumps(_with(body, "nonce", "short")),
        lambda body: orjson.dumps(_with(body, "kind", "disclose")),
        lambda body: orjson.dumps({**body, "note": "hello"}),
        lambda body: orjson.dumps(_with(body, "priority", "high")),
        lambda body: orjson.dumps({"signature": body["signature"]}),
    ],
    ids=[
        "not-json",
        "empty",
        "array",
        "signature-int",
        "issued-at-string",
        "issued-at-float",
        "nonce-pattern",
        "wrong-kind",
        "unknown-outer-field",
        "unknown-request-field",
        "missing-request",
    ],
)
async def test_a_body_that_does_not_parse_is_400_malformed(
    http: httpx.AsyncClient,
    custodian: Custodian,
    node: NodeKey,
    spoil: Callable[[dict[str, Any]], bytes],
) -> None:
    body = spoil(good_unseal(custodian, node))

    response = await post(http, custodian, "/v1/unseal", body)

    assert response.status_code == 400
    assert response.json()["code"] == "MALFORMED"
    entry = custodian.audit.entries()[-1]
    assert (entry.kind, entry.outcome) == ("unseal", "refused")
    assert entry.reason.startswith("MALFORMED: ")


async def test_a_body_over_256_kib_is_400_too_large(
    http: httpx.AsyncClient, custodian: Custodian
) -> None:
    response = await post(http, custodian, "/v1/disclose", b" " * (MAX_REQUEST_BYTES + 1))
    assert response.status_code == 400
    assert response.json()["code"] == "MALFORMED"
    assert "too large" in response.json()["message"]


async def test_a_streamed_body_over_256_kib_is_cut_off_without_a_declared_length(
    http: httpx.AsyncClient, custodian: Custodian
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b" " * (64 * 1024)

    before = len(custodian.audit)
    response = await http.post("/v1/unseal", content=chunks())
    assert "content-length" not in response.request.headers
    assert response.status_code == 400
    assert "too large" in response.json()["message"]
    assert len(custodian.audit.entries()) == before + 1


async def test_info_says_who_the_custodian_is_and_logs_nothing(
    http: httpx.AsyncClient, custodian: Custodian, node: NodeKey
) -> None:
    before = len(custodian.audit)
    response = await http.get("/v1/info")
    assert response.status_code == 200
    info = CustodianInfo.model_validate_json(response.content)
    assert (info.id, info.jurisdiction, info.public_key) == (
        CUSTODIAN,
        "XB",
        custodian.public_key,
    )
    assert (info.enrolled_nodes, info.audit_entries) == (1, before)
    assert info.audit_head == custodian.audit.head
    assert len(custodian.audit) == before


# fuzz ------------------------------------------------------------------------------------
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    [
        "kind",
        "custodian",
        "dc",
        "node_key",
        "envelope",
        "requester_key",
        "nonce",
        "issued_at_ms",
        "order",
        "resolved_user",
        "request",
        "signature",
    ]
)
B64_BYTES = st.binary(max_size=300).map(b64)
TIMES = st.integers(min_value=0, max_value=2**53 - 1)
# Per field, values that pass the wire schema, so the spoiled request reaches the policy.
WELL_TYPED = {
    "custodian": st.sampled_from([CUSTODIAN, "custodian-xc"]),
    "dc": st.sampled_from([DC, "elsewhere"]),
    "node_key": st.text(max_size=64),
    "envelope": B64_BYTES,
    "requester_key": st.binary(min_size=32, max_size=32).map(b64) | B64_BYTES,
    "nonce": st.from_regex(r"[A-Za-z0-9_-]{22}", fullmatch=True),
    "issued_at_ms": TIMES,
    "signature": st.binary(min_size=64, max_size=64).map(b64) | B64_BYTES,
    "order.court": st.sampled_from(["High Court of XB", "Another Court"]),
    "order.jurisdiction": st.from_regex(r"[A-Z]{2}", fullmatch=True),
    "order.subject": st.sampled_from(["user:1", "user:2"]) | st.text(min_size=1, max_size=20),
    "order.category": st.sampled_from(["terrorism", "fraud"]),
    "order.fields": st.lists(st.sampled_from(["phone", "ip", "email"]), max_size=3),
    "order.issued_at_ms": TIMES,
    "order.expires_at_ms": TIMES,
    "resolved_user": st.none() | st.integers(min_value=0, max_value=2**63 - 1),
}
UNSEAL_FIELDS = ["custodian", "dc", "node_key", "envelope", "requester_key", "nonce"]
UNSEAL_FIELDS += ["issued_at_ms", "signature"]
DISCLOSE_FIELDS = [f for f in WELL_TYPED if f != "dc"]


def typed_spoils(fields: list[str]) -> st.SearchStrategy[tuple[str, object]]:
    return st.sampled_from(fields).flatmap(lambda f: st.tuples(st.just(f), WELL_TYPED[f]))


BODIES = st.one_of(
    st.binary(max_size=400),
    st.dictionaries(FIELDS | st.text(max_size=12), JSON_VALUES, max_size=8).map(orjson.dumps),
    JSON_VALUES.map(orjson.dumps),
)
#: (path, body): garbage, a good request with any value in one field, or a good request with
#: a well-typed value in one field (which gets past parsing to the policy and the keys).
CASES = st.one_of(
    st.tuples(
        st.sampled_from(["/v1/unseal", "/v1/disclose"]),
        BODIES | st.tuples(FIELDS, JSON_VALUES),
    ),
    st.tuples(st.just("/v1/unseal"), typed_spoils(UNSEAL_FIELDS)),
    st.tuples(st.just("/v1/disclose"), typed_spoils(DISCLOSE_FIELDS)),
)


def _spoiled(good: dict[str, Any], field: str, value: object) -> bytes:
    if field == "signature":
        return orjson.dumps({**good, field: value})
    if field.startswith("order."):
        signed = good["request"]["order"]
        order = {**signed["order"], field.removeprefix("order."): value}
        return orjson.dumps(_with(good, "order", {**signed, "order": order}))
    return orjson.dumps(_with(good, field, value))


def _spoiled_and_signed(good: dict[str, Any], field: str, value: object) -> bytes:
    """A disclosure spoiled in one field of its request (or order), then signed by ``NODE`` as
    its node would, so a spoil that parses reaches the policy past the node's signature."""
    spoiled = _spoiled(good, field, value)
    if field == "signature":
        return spoiled
    try:
        request = DiscloseRequest.model_validate_json(
            orjson.dumps(orjson.loads(spoiled)["request"])
        )
    except ValidationError:
        return spoiled  # it does not parse: there is nothing a node could sign
    return signed_by(NODE, request).model_dump_json().encode()


# The custodian deliberately lives across examples: its one audit log must keep verifying
# after everything hypothesis throws at it, one entry per request.
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=CASES)
async def test_no_body_makes_the_custodian_fail_or_break_its_audit_chain(
    http: httpx.AsyncClient,
    custodian: Custodian,
    node: NodeKey,
    court: CourtKey,
    case: tuple[str, bytes | tuple[str, object]],
) -> None:
    path, body = case
    if isinstance(body, tuple):
        if path == "/v1/unseal":
            body = _spoiled(good_unseal(custodian, node), *body)
        else:
            body = _spoiled_and_signed(good_disclose(custodian, court), *body)
    before = len(custodian.audit)

    response = await http.post(path, content=body)

    event(f"HTTP {response.status_code}")
    assert response.status_code in (200, 400, 403)
    assert set(response.json()) >= ({"custodian"} if response.status_code == 200 else {"code"})
    assert len(verify_log(custodian.directory / "audit.log")) == before + 1


# the node's HTTP client ------------------------------------------------------------------
async def http_client(app: Starlette) -> HttpCustodianClient:
    client = HttpCustodianClient(CUSTODIAN, BASE_URL)
    await client._http.aclose()
    client._http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    return client


async def test_a_node_opens_its_dc_key_through_the_http_client(
    custodian: Custodian, node: NodeKey
) -> None:
    client = await http_client(custodian_app(custodian))
    envelope = dc_key_envelope(DC, {CUSTODIAN: public(custodian)}, threshold=1)
    ref = CustodianRef(CUSTODIAN, public(custodian), client)
    try:
        payload, outcomes = await unseal_dc_key(envelope, dc=DC, node_key=node, custodians=[ref])
        info = await client.info()
    finally:
        await client.aclose()
    assert payload == DC_KEY
    assert [o.ok for o in outcomes] == [True]
    assert info.id == CUSTODIAN


async def test_a_node_opens_a_record_through_the_http_client(
    custodian: Custodian, node: NodeKey, court: CourtKey
) -> None:
    client = await http_client(custodian_app(custodian))
    keys = {CUSTODIAN: public(custodian)}
    envelope = identity_envelope(DC, 1, "phone", b"+999661234567", keys, threshold=1)
    order = court.order(
        subject="@alice_w", issued_at_ms=now_ms() - DAY_MS, expires_at_ms=now_ms() + DAY_MS
    )
    ref = CustodianRef(CUSTODIAN, public(custodian), client)
    try:
        payload, outcomes = await disclose_record(
            envelope, orders={CUSTODIAN: order}, custodians=[ref], resolved_user=1, node_key=node
        )
    finally:
        await client.aclose()
    assert payload == b"+999661234567"
    assert [o.ok for o in outcomes] == [True]
    assert custodian.audit.entries()[-1].subject.endswith(" via:username")


async def test_the_http_client_raises_a_refusal_with_the_custodians_code(
    custodian: Custodian, node: NodeKey, tmp_path: Path
) -> None:
    stranger = NodeKey.load_or_create(tmp_path / "stranger.key")
    signed = SignedUnseal.model_validate(good_unseal(custodian, stranger))
    client = await http_client(custodian_app(custodian))
    try:
        with pytest.raises(Refusal) as caught:
            await client.unseal(signed)
    finally:
        await client.aclose()
    assert caught.value.code is RefusalCode.NODE_NOT_ENROLLED


def junk_app(status: int, content: bytes) -> Starlette:
    async def answer(_: Request) -> Response:
        return Response(content, status_code=status, media_type="application/json")

    return Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST"])])


@pytest.mark.parametrize(
    ("status", "content"),
    [
        (500, b'{"code": "INTERNAL", "message": "boom"}'),
        (502, b"<html>bad gateway</html>"),
        (200, b"garbage"),
        (200, b'{"custodian": "custodian-xb"}'),
        (403, b"<html>forbidden</html>"),
        (400, b'{"error": "nope"}'),
        (301, b""),
    ],
    ids=["500", "502", "200-garbage", "200-partial", "403-html", "400-other-shape", "301"],
)
async def test_an_answer_the_client_cannot_read_means_the_custodian_is_unreachable(
    custodian: Custodian, node: NodeKey, status: int, content: bytes
) -> None:
    signed = SignedUnseal.model_validate(good_unseal(custodian, node))
    client = await http_client(junk_app(status, content))
    try:
        with pytest.raises(CustodianUnreachable):
            await client.unseal(signed)
        with pytest.raises(CustodianUnreachable):
            await client.info()
    finally:
        await client.aclose()


async def test_a_refusal_code_the_client_does_not_know_becomes_malformed(
    custodian: Custodian, node: NodeKey
) -> None:
    signed = SignedUnseal.model_validate(good_unseal(custodian, node))
    client = await http_client(junk_app(403, b'{"code": "NEW_RULE", "message": "no"}'))
    try:
        with pytest.raises(Refusal) as caught:
            await client.unseal(signed)
    finally:
        await client.aclose()
    assert (caught.value.code, caught.value.message) == (RefusalCode.MALFORMED, "no")


async def test_a_custodian_that_cannot_be_reached_is_unreachable() -> None:
    def refuse_connection(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = HttpCustodianClient(CUSTODIAN, BASE_URL)
    await client._http.aclose()
    client._http = httpx.AsyncClient(transport=httpx.MockTransport(refuse_connection))
    try:
        with pytest.raises(CustodianUnreachable, match="ConnectError"):
            await client.info()
    finally:
        await client.aclose()


async def test_a_flood_from_one_address_is_turned_away_without_an_entry_per_request(
    custodian: Custodian,
) -> None:
    app = custodian_app(custodian, requests_per_second=1.0, burst=3.0)
    transport = httpx.ASGITransport(app=app)
    before = len(custodian.audit)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        statuses = [(await client.post("/v1/unseal", content=b"{}")).status_code for _ in range(20)]
        info = await client.get("/v1/info")
    assert statuses[:3] == [400, 400, 400]
    assert set(statuses[3:]) == {429}
    assert info.status_code == 200
    assert len(custodian.audit) == before + 3  # the three it read; the rest are not written


async def test_a_custodian_that_cannot_use_its_audit_log_answers_503_and_grants_nothing(
    http: httpx.AsyncClient,
    custodian: Custodian,
    node: NodeKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise AuditError("disk gone")

    body = orjson.dumps(good_unseal(custodian, node))
    monkeypatch.setattr(custodian.audit, "append", broken)
    monkeypatch.setattr(custodian, "refresh", broken)
    answered = await http.post("/v1/unseal", content=body)
    info = await http.get("/v1/info")
    assert (answered.status_code, answered.json()["code"]) == (503, "UNAVAILABLE")
    assert (info.status_code, info.json()["code"]) == (503, "UNAVAILABLE")
