"""The sans-I/O protocol: frame parsing, error codes on the wire, connection states."""

from __future__ import annotations

import contextlib

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from samizdat.protocol.errors import (
    HTTP_STATUS,
    ErrorCode,
    ProtocolError,
    RateLimited,
    SamizdatError,
    from_wire,
)
from samizdat.protocol.frames import decode_request, encode_error, encode_update
from samizdat.protocol.session import (
    ClientSession,
    ConnEvent,
    ConnState,
    ErrorReceived,
    IllegalTransition,
    ResponseReceived,
    ServerConnection,
    UpdateReceived,
)


def test_a_well_formed_request_parses() -> None:
    req = decode_request(b'{"id": 3, "method": "users.me", "params": {}}')
    assert (req.id, req.method, req.params) == (3, "users.me", {})


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"not json", ErrorCode.BAD_FRAME),
        (b"[1, 2]", ErrorCode.BAD_FRAME),
        (b'{"method": "users.me"}', ErrorCode.BAD_FRAME),
        (b'{"id": true, "method": "users.me"}', ErrorCode.BAD_FRAME),
        (b'{"id": -1, "method": "users.me"}', ErrorCode.BAD_FRAME),
        (b'{"id": 1}', ErrorCode.BAD_FRAME),
        (b'{"id": 1, "method": "x", "params": []}', ErrorCode.INVALID_PARAMS),
        (b'{"id": 1, "method": "x", "extra": 1}', ErrorCode.BAD_FRAME),
    ],
)
def test_malformed_frames_raise_typed_errors(frame: bytes, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as err:
        decode_request(frame)
    assert err.value.code is code


def test_an_oversize_frame_is_refused_before_parsing() -> None:
    with pytest.raises(ProtocolError) as err:
        decode_request(b" " * 2000, max_bytes=1024)
    assert err.value.code is ErrorCode.PAYLOAD_TOO_LARGE


def test_errors_keep_the_request_id_when_the_frame_had_one() -> None:
    with pytest.raises(ProtocolError) as err:
        decode_request(b'{"id": 9, "method": "x", "params": 5}')
    assert err.value.debug_context["request_id"] == 9


@given(st.binary(max_size=300))
def test_the_decoder_raises_nothing_but_protocol_errors(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_request(data)


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_round_trips_through_the_wire_and_has_an_http_status(
    code: ErrorCode,
) -> None:
    assert code in HTTP_STATUS
    wire = orjson.loads(encode_error(1, SamizdatError("m", code=code)))["error"]
    rebuilt = from_wire(wire)
    assert rebuilt.code is code


def test_flood_wait_carries_retry_after() -> None:
    wire = RateLimited("slow down", retry_after=2.5).to_wire()
    rebuilt = from_wire(wire)
    assert isinstance(rebuilt, RateLimited)
    assert rebuilt.retry_after == 2.5


def test_unknown_error_shapes_become_internal() -> None:
    assert from_wire("nope").code is ErrorCode.INTERNAL
    assert from_wire({"code": "WHAT"}).code is ErrorCode.INTERNAL


def test_connection_state_machine_allows_only_listed_transitions() -> None:
    conn = ServerConnection()
    with pytest.raises(SamizdatError):
        conn.check_allowed(needs_device=True)
    conn.check_allowed(needs_device=False)
    with pytest.raises(IllegalTransition):
        conn.fire(ConnEvent.REVOKED)
    assert conn.fire(ConnEvent.AUTHORIZED) is ConnState.READY
    conn.check_allowed(needs_device=True)
    assert conn.fire(ConnEvent.REVOKED) is ConnState.REVOKED
    with pytest.raises(SamizdatError) as err:
        conn.check_allowed(needs_device=False)
    assert err.value.code is ErrorCode.TOKEN_REVOKED
    assert conn.fire(ConnEvent.CLOSED) is ConnState.CLOSED


def test_client_session_matches_responses_errors_and_updates() -> None:
    session = ClientSession()
    request_id, frame = session.request("users.me", {})
    assert orjson.loads(frame)["method"] == "users.me"
    assert session.receive(orjson.dumps({"id": request_id, "result": {"a": 1}})) == (
        ResponseReceived(request_id, {"a": 1})
    )
    err = session.receive(orjson.dumps({"id": 5, "error": {"code": "NOT_ADMIN", "message": "x"}}))
    assert isinstance(err, ErrorReceived)
    assert err.error.code is ErrorCode.NOT_ADMIN
    pushed = session.receive(encode_update(b'{"type":"typing","chat_id":1,"user_id":2}', 7))
    assert pushed == UpdateReceived(7, {"type": "typing", "chat_id": 1, "user_id": 2})
    with pytest.raises(ProtocolError):
        session.receive(b"{}")


def test_a_tiny_flood_wait_never_reads_as_no_wait_on_the_wire() -> None:
    assert RateLimited("slow down", retry_after=0.0004).to_wire()["retry_after"] == 0.001
    assert RateLimited("slow down", retry_after=1.2341).to_wire()["retry_after"] == 1.235
