"""Fuzzing the RPC surface of a live server: whatever a client sends, it gets one typed answer.

Frames are built from the method table itself (each method's parameter model, read through
its JSON schema, generously: values in range, at the edges and out of range, ids the server
knows and ids it does not), mixed with junk methods, junk params, junk ids and junk bytes.
The property: every frame gets exactly one reply, a result or an error whose code is an
``ErrorCode`` and never INTERNAL; the socket stays open; ``/health`` stays ok.

One SQLite server for the module and one long-lived socket pair (authorised and not) keep the
run fast; storage-specific input is covered by the integration tests on both backends.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, Phase, assume, find, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from websockets.exceptions import ConnectionClosed

from samizdat.client import Client
from samizdat.crypto.e2ee import DeviceCrypto
from samizdat.protocol.errors import HTTP_STATUS, ErrorCode, ProtocolError
from samizdat.protocol.frames import Request, decode_request
from samizdat.protocol.methods import METHODS
from tests.harness import ServerProcess, new_test_phone, signed_in
from tests.raw_socket import RawSocket, device_id_of, token_of, user_id_of

LIVE_SETTINGS = settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
INT64 = 2**63

# --- strategies -------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


@dataclass
class Known:
    """Values the server will recognise, so generated requests reach past the lookups.

    ``ids`` maps what an id names ("chat", "message", "user", "device") to ids that exist; a
    field gets the pool its name points to (``chat_id``, ``from_chat_id``, ``message_ids``...).
    """

    ids: dict[str, list[int]] = field(default_factory=dict)
    strings: list[str] = field(default_factory=list)

    def pool(self, field_name: str) -> list[int]:
        for kind, ids in self.ids.items():
            if (
                kind in field_name
                or (kind == "message" and field_name in ("max_id", "before_id"))
                or (kind == "user" and field_name == "recipients")
            ):
                return ids
        return [i for ids in self.ids.values() for i in ids]


def often(
    good: st.SearchStrategy[Any], *rare: st.SearchStrategy[Any], percent: int = 80
) -> st.SearchStrategy[Any]:
    """``good`` ``percent`` times in a hundred, else one of ``rare``.

    Spelled with a 0..99 draw because Hypothesis favours the last branch of ``one_of`` far
    more than its share, which would leave most frames junk.
    """
    if not rare:
        return good
    other = st.one_of(rare)
    return st.integers(0, 99).flatmap(lambda n: good if n < percent else other)


def from_schema(
    node: dict[str, Any], defs: dict[str, Any], known: Known, name: str = ""
) -> st.SearchStrategy[Any]:
    """Values for a JSON schema node: mostly valid, with edges and near misses."""
    if "$ref" in node:
        return from_schema(defs[node["$ref"].rsplit("/", 1)[-1]], defs, known, name)
    if "anyOf" in node:
        return st.one_of([from_schema(option, defs, known, name) for option in node["anyOf"]])
    if "enum" in node:
        return often(st.sampled_from(node["enum"]), st.text(max_size=12))
    match node.get("type"):
        case "integer":
            low = node.get("minimum", node.get("exclusiveMinimum", -INT64 - 1) + 1)
            high = node.get("maximum", node.get("exclusiveMaximum", INT64) - 1)
            edges = st.sampled_from([low, high, low - 1, high + 1, 0, -1])
            in_range = [i for i in known.pool(name) if low <= i <= high]
            if in_range and name.endswith(("id", "ids")):
                return often(st.sampled_from(in_range), st.integers(low, high), edges)
            return often(st.integers(low, high), edges)
        case "string":
            low = node.get("minLength", 0)
            high = node.get("maxLength", 64)
            chars = st.characters(codec="utf-8")
            valid = st.text(chars, min_size=max(low, 1), max_size=min(high, 40))
            # Hypothesis draws text of at most ~8k characters; longer edges repeat one char.
            edges = st.sampled_from([high, high + 1]).flatmap(
                lambda n: (
                    st.text(chars, min_size=n, max_size=n)
                    if n <= 4096
                    else st.characters(codec="utf-8").map(lambda c: c * n)
                )
            )
            return often(valid, st.sampled_from([*known.strings, ""]), edges)
        case "boolean":
            return st.booleans()
        case "null":
            return st.none()
        case "array":
            items = from_schema(node.get("items", {}), defs, known, name)
            low = node.get("minItems", 0)
            high = node.get("maxItems", 8)
            return often(
                st.lists(items, min_size=low, max_size=min(high, 4)),
                st.lists(items, min_size=high + 1, max_size=high + 1),
            )
        case "object":
            return object_from_schema(node, defs, known)
    return json_values


def object_from_schema(
    node: dict[str, Any], defs: dict[str, Any], known: Known
) -> st.SearchStrategy[dict[str, Any]]:
    properties = node.get("properties", {})
    required = set(node.get("required", []))
    return st.fixed_dictionaries(
        {
            name: from_schema(sub, defs, known, name)
            for name, sub in properties.items()
            if name in required
        },
        optional={
            name: from_schema(sub, defs, known, name)
            for name, sub in properties.items()
            if name not in required
        },
    )


@st.composite
def mutated(draw: st.DrawFn, params: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """A well-formed params object with one thing wrong: a value, a missing or an extra key."""
    value = dict(draw(params))
    match draw(st.sampled_from(["replace", "drop", "add"])):
        case "replace" if value:
            value[draw(st.sampled_from(sorted(value)))] = draw(json_values)
        case "drop" if value:
            del value[draw(st.sampled_from(sorted(value)))]
        case _:
            value[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
    return value


def params_for(method: str, known: Known) -> st.SearchStrategy[Any]:
    random_params = st.dictionaries(st.text(max_size=12), json_values, max_size=5)
    spec = METHODS.get(method)
    if spec is None:
        return random_params
    schema = spec.params.model_json_schema()
    shaped = object_from_schema(schema, schema.get("$defs", {}), known)
    return often(shaped, mutated(shaped), random_params, json_values, percent=70)


method_names = often(
    st.sampled_from(sorted(METHODS)),
    st.sampled_from(sorted(METHODS)).map(str.upper),
    st.sampled_from(sorted(METHODS)).flatmap(lambda m: st.text(max_size=4).map(lambda t: m + t)),
    st.text(max_size=30),
)
valid_ids = st.integers(0, 2**53 - 1) | st.text(min_size=1, max_size=64)
junk_ids = st.one_of(
    st.integers(-(2**64), -1),
    st.integers(2**53, 2**64),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.just(""),
    st.text(min_size=65, max_size=80),
    st.lists(st.integers(), max_size=2),
)
MISSING = object()


def maybe(value: st.SearchStrategy[Any], percent: int) -> st.SearchStrategy[Any]:
    """``value`` ``percent`` times in a hundred, else MISSING (the key is left out)."""
    return often(value, st.just(MISSING), percent=percent)


@st.composite
def frames(draw: st.DrawFn, known: Known) -> tuple[bool, str | bytes, str]:
    """(send on the authorised socket?, frame, method for the report)."""
    authorised = draw(st.integers(0, 99)) < 80
    kind = draw(
        often(
            st.just("request"),
            st.sampled_from(["junk json", "junk text", "junk bytes"]),
            percent=90,
        )
    )
    if kind == "junk json":
        return authorised, dumps(draw(json_values)), "?"
    if kind == "junk text":
        return authorised, draw(st.text(st.characters(codec="utf-8"), max_size=60)), "?"
    if kind == "junk bytes":
        return authorised, draw(st.binary(max_size=60)), "?"
    method = draw(method_names)
    parts = {
        "id": draw(maybe(often(valid_ids, junk_ids, percent=90), 95)),
        "method": draw(often(st.just(method), json_values, percent=95)),
        "params": draw(maybe(params_for(method, known), 95)),
    }
    frame = {key: value for key, value in parts.items() if value is not MISSING}
    if draw(st.integers(0, 99)) >= 97:
        frame[draw(st.text(max_size=6))] = draw(json_values)
    return authorised, dumps(frame), method


def dumps(value: Any) -> str:
    """JSON text; the stdlib writes integers of any size, which orjson refuses to."""
    return json.dumps(value, ensure_ascii=False)


def expected_reply_id(frame: str | bytes) -> int | str | None:
    """The id the server must echo: the frame's, when it is an object with a valid id."""
    try:
        parsed = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict):
        return None
    value = parsed.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 0 <= value < 2**53:
        return value
    if isinstance(value, str) and 0 < len(value) <= 64:
        return value
    return None


# --- the live server --------------------------------------------------------------------------


class Live:
    """A server, two long-lived sockets (authorised and not) and the loop they live on."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.runner = asyncio.Runner()
        self.http = httpx.Client(base_url=server.url, timeout=10)
        self.known = Known()
        self.sockets: dict[bool, RawSocket] = {}
        self._contexts: dict[bool, Any] = {}
        self._sentinels = iter(range(10**9))
        #: How each method was answered: "ok" or the error code, to show how deep the run got.
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.client: Client | None = None
        self.runner.run(self._setup())

    async def _setup(self) -> None:
        self.client = await signed_in(self.server.url, "Fuzzer")
        other = await signed_in(self.server.url, "Other")
        me, peer = user_id_of(self.client), user_id_of(other)
        private = await self.client.call("chats.open_private", user_id=peer)
        group = await self.client.call("groups.create", title="fuzz", member_ids=[peer])
        sent = await self.client.call(
            "messages.send", chat_id=group["id"], text="fuzz me", random_id=1
        )
        theirs = await other.call(
            "messages.send", chat_id=private["id"], text="not yours", random_id=2
        )
        # With keys, the peer's device is one `secret.send` must address when the peer is
        # among its `recipients`.
        await other.upload_keys(DeviceCrypto.create(), one_time_keys=5)
        await other.close()
        self.known.ids = {
            "chat": [private["id"], group["id"]],
            "message": [sent["message"]["id"], theirs["message"]["id"]],
            "user": [me, peer],
            "device": [device_id_of(other)],
        }
        phone, code = new_test_phone()
        self.known.strings = [phone, code, "+999661", "@nobody_here", "👍", "everybody"]
        for authorised in (True, False):
            await self._connect(authorised)

    async def _connect(self, authorised: bool) -> None:
        context = RawSocket.open(self.server.url)
        sock = await context.__aenter__()
        if authorised:
            assert self.client is not None
            await sock.authorize(token_of(self.client))
        self.sockets[authorised] = sock
        self._contexts[authorised] = context

    def roundtrip(self, authorised: bool, frame: str | bytes) -> dict[str, Any]:
        return self.runner.run(self._roundtrip(authorised, frame))

    async def _roundtrip(self, authorised: bool, frame: str | bytes) -> dict[str, Any]:
        sock = self.sockets[authorised]
        try:
            await sock.send(frame)
            reply = await sock.reply()
            sentinel = f"sentinel-{next(self._sentinels)}"
            await sock.send({"id": sentinel, "method": "auth.send_code", "params": {"phone": ""}})
            after = await sock.reply()
        except ConnectionClosed as exc:
            await self._contexts[authorised].__aexit__(None, None, None)
            await self._connect(authorised)
            raise AssertionError(f"the server closed the socket: {exc}") from exc
        assert after.get("id") == sentinel, f"an extra reply: {after}"
        return reply

    def healthy(self) -> bool:
        alive = self.server.proc is not None and self.server.proc.poll() is None
        return alive and self.http.get("/health").status_code == 200

    def close(self) -> None:
        async def teardown() -> None:
            for context in self._contexts.values():
                await context.__aexit__(None, None, None)
            if self.client is not None:
                await self.client.close()

        self.runner.run(teardown())
        self.runner.close()
        self.http.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = ServerProcess(tmp_path_factory.mktemp("fuzz"))
    server.start()
    session = Live(server)
    yield session
    session.close()
    server.cleanup()


def check_reply(reply: dict[str, Any], frame: str | bytes, method: str) -> None:
    assert reply.get("id", "missing") == expected_reply_id(frame), (reply, frame)
    assert set(reply) in ({"id", "result"}, {"id", "error"}), reply
    if "result" in reply:
        return
    error = reply["error"]
    code = ErrorCode(error["code"])  # raises if the code is not one of ours
    assert isinstance(error["message"], str), reply
    assert error["message"], reply
    assert code is not ErrorCode.INTERNAL, (reply, frame)
    # The only honest UNAVAILABLE here: a real number, and no SMS gateway configured.
    if code is ErrorCode.UNAVAILABLE:
        assert method == "auth.send_code", (reply, frame)
    if code is ErrorCode.FLOOD_WAIT:
        assert error["retry_after"] > 0, reply


def test_every_frame_gets_exactly_one_typed_reply_and_the_server_stays_up(live: Live) -> None:
    assert live.client is not None
    own_device = device_id_of(live.client)

    @LIVE_SETTINGS
    @given(frames(live.known))
    def run(case: tuple[bool, str | bytes, str]) -> None:
        authorised, frame, method = case
        # Logging our own socket out would be the server doing as told, not a failure.
        assume(not (method == "devices.revoke" and str(own_device) in str(frame)))
        reply = live.roundtrip(authorised, frame)
        check_reply(reply, frame, method)
        assert live.healthy()
        outcome = "ok" if "result" in reply else reply["error"]["code"]
        live.outcomes[(method if method in METHODS else "?", outcome)] += 1

    run()
    assert live.healthy()
    assert "result" in live.roundtrip(True, orjson.dumps({"id": 1, "method": "users.me"}))
    # The run reached past parsing into the services, not just the frame checks.
    answered = {method for (method, outcome) in live.outcomes if outcome == "ok"}
    assert len(answered) >= 5, live.outcomes


def test_every_http_body_gets_a_typed_status_and_the_server_stays_up(live: Live) -> None:
    assert live.client is not None
    headers = {"Authorization": f"Bearer {token_of(live.client)}"}
    http_methods = sorted(name for name, spec in METHODS.items() if spec.http)

    @settings(LIVE_SETTINGS, max_examples=150)
    @given(
        # Unknown names stay URL-safe: httpx itself rewrites "." segments and control bytes.
        st.sampled_from(http_methods)
        | st.from_regex(r"[A-Za-z0-9_]{1,12}(\.[A-Za-z0-9_]{1,12})?", fullmatch=True),
        st.data(),
        st.booleans(),
    )
    def run(method: str, data: st.DataObject, authorised: bool) -> None:
        body = dumps(data.draw(params_for(method, live.known))).encode()
        response = live.http.post(
            f"/api/{method}", content=body, headers=headers if authorised else {}
        )
        if response.status_code == 200:
            return
        error = response.json()["error"]
        code = ErrorCode(error["code"])
        assert code is not ErrorCode.INTERNAL, (method, body, error)
        assert response.status_code == HTTP_STATUS[code], (method, body, error)

    run()
    assert live.healthy()


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
        ),
        max_leaves=12,
    )


def _order_like() -> st.SearchStrategy[Any]:
    """Near-orders: the right keys with wrong or random values, or random JSON."""
    body = st.fixed_dictionaries(
        {
            "case": _json_values(),
            "court": st.text(max_size=30),
            "jurisdiction": st.sampled_from(["XB", "XC", "DE", "xx", ""]) | st.text(max_size=3),
            "subject": st.sampled_from(["user:1", "@someone", "+999661000001", ""]),
            "category": st.sampled_from(["terrorism", "fraud"]) | st.text(max_size=10),
            "fields": st.lists(st.sampled_from(["phone", "ip", "messages"]), max_size=3),
            "issued_at_ms": st.integers(min_value=-(2**60), max_value=2**60),
            "expires_at_ms": st.integers(min_value=-(2**60), max_value=2**60),
        }
    )
    order = st.fixed_dictionaries({"order": body, "signature": st.text(max_size=90)})
    return order | _json_values()


def test_every_lawful_request_body_gets_a_typed_status_and_the_server_stays_up(
    live: Live,
) -> None:
    """Nothing here can be a valid order (no court is registered): each body is refused
    with a typed error (400/413/429) or decided as a refused case, never a 500."""

    @settings(LIVE_SETTINGS, max_examples=120)
    @given(
        st.lists(_order_like(), max_size=5).map(lambda orders: {"orders": orders})
        | _json_values()
        | st.binary(max_size=200)
    )
    def run(body: Any) -> None:
        content = body if isinstance(body, bytes) else dumps(body).encode()
        response = live.http.post("/legal/orders", content=content)
        assert response.status_code in (200, 400, 413, 429), (body, response.text)
        if response.status_code == 200:
            cases = response.json()["cases"]
            assert cases
            assert all(case["outcome"] == "refused" for case in cases), cases
        else:
            ErrorCode(response.json()["error"]["code"])  # a code of the protocol

    run()
    assert live.healthy()


def test_every_transparency_query_gets_a_typed_status(live: Live) -> None:
    paths = ["/transparency/head", "/transparency/entries", "/transparency/proof/inclusion"]
    paths += ["/transparency/proof/consistency", "/transparency/report", "/transparency"]
    names = ["size", "start", "end", "index", "first", "second"]

    @settings(LIVE_SETTINGS, max_examples=120)
    @given(
        st.sampled_from(paths),
        st.dictionaries(
            st.sampled_from(names),
            st.text(max_size=25) | st.integers(min_value=-(2**70), max_value=2**70).map(str),
            max_size=3,
        ),
    )
    def run(path: str, params: dict[str, str]) -> None:
        response = live.http.get(path, params=params)
        assert response.status_code in (200, 400, 404), (path, params, response.text)

    run()
    assert live.healthy()


# --- the pure decoder -------------------------------------------------------------------------


@settings(max_examples=1000, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200),
        json_values.map(dumps),
        st.fixed_dictionaries(
            {},
            optional={
                "id": valid_ids | junk_ids,
                "method": method_names | json_values,
                "params": json_values,
                "extra": json_values,
            },
        ).map(dumps),
    ),
    st.integers(1, 300),
)
def test_decode_request_raises_only_protocol_errors(data: bytes | str, max_bytes: int) -> None:
    try:
        request = decode_request(data, max_bytes=max_bytes)
    except ProtocolError as exc:
        error: ProtocolError | None = exc
    else:
        error = None
    if error is not None:
        assert error.code in {
            ErrorCode.BAD_FRAME,
            ErrorCode.PAYLOAD_TOO_LARGE,
            ErrorCode.INVALID_PARAMS,
        }
        request_id = error.debug_context.get("request_id")
        if request_id is not None:
            assert request_id == expected_reply_id(data)
        return
    assert isinstance(request, Request)
    assert len(data) <= max_bytes
    assert request.id == expected_reply_id(data)
    assert isinstance(request.method, str)
    assert request.method
    assert isinstance(request.params, dict)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_the_generated_params_reach_past_validation_for_every_method(method: str) -> None:
    """The fuzzer is only as good as its params: each method must get some valid ones.

    Searched per method, so one whose rules its schema cannot show (``secret.send``: messages
    or a group, each device addressed once) gets as many tries as any other.
    """
    known = Known(ids={"chat": [1], "message": [2]}, strings=["+999661000000"])

    def accepted(params: Any) -> bool:
        try:
            METHODS[method].params.model_validate(params)
        except ValidationError:
            return False
        return True

    only_generate = settings(
        max_examples=200, database=None, derandomize=True, phases=[Phase.generate]
    )
    find(params_for(method, known), accepted, settings=only_generate)
