"""Sans-I/O sessions: bytes in, events out. The gateway and the SDK transport only shuttle.

Theory of operation (server side). A connection starts AWAITING_AUTH: only the methods that
need no device (auth.*) are allowed. ``auth.authorize`` with a valid token moves it to READY,
where every method is allowed and updates are pushed. REVOKED (the device was logged out) and
CLOSED are terminal. Every transition is in ``_TRANSITIONS``; anything else raises.

Client side: ``ClientSession`` numbers requests, matches responses to them and turns pushed
frames into ``UpdateReceived`` events; it keeps no socket.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

import orjson

from samizdat.protocol.errors import ErrorCode, ProtocolError, SamizdatError, from_wire
from samizdat.protocol.frames import RequestId, encode_request


class ConnState(Enum):
    AWAITING_AUTH = "awaiting_auth"
    READY = "ready"
    REVOKED = "revoked"
    CLOSED = "closed"


class ConnEvent(Enum):
    AUTHORIZED = "authorized"
    REVOKED = "revoked"
    CLOSED = "closed"


_TRANSITIONS: dict[tuple[ConnState, ConnEvent], ConnState] = {
    (ConnState.AWAITING_AUTH, ConnEvent.AUTHORIZED): ConnState.READY,
    (ConnState.AWAITING_AUTH, ConnEvent.CLOSED): ConnState.CLOSED,
    (ConnState.READY, ConnEvent.REVOKED): ConnState.REVOKED,
    (ConnState.READY, ConnEvent.CLOSED): ConnState.CLOSED,
    (ConnState.REVOKED, ConnEvent.CLOSED): ConnState.CLOSED,
}


class IllegalTransition(RuntimeError):
    pass


_S = TypeVar("_S", bound=Enum)
_E = TypeVar("_E", bound=Enum)


def transition(table: Mapping[tuple[_S, _E], _S], state: _S, event: _E) -> _S:
    """The state ``event`` leads to from ``state`` in a transition table; IllegalTransition
    for a pair the table does not have (a bug: every legal move is listed)."""
    try:
        return table[(state, event)]
    except KeyError:
        raise IllegalTransition(f"{event.value} in state {state.value}") from None


class ServerConnection:
    """Authentication state of one server-side connection."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = ConnState.AWAITING_AUTH

    def fire(self, event: ConnEvent) -> ConnState:
        self.state = transition(_TRANSITIONS, self.state, event)
        return self.state

    def check_allowed(self, needs_device: bool) -> None:
        """Raise AuthError-like ProtocolError when the method is not allowed in this state."""
        if self.state is ConnState.READY:
            return
        if self.state is ConnState.AWAITING_AUTH and not needs_device:
            return
        from samizdat.protocol.errors import AuthError

        if self.state is ConnState.REVOKED:
            raise AuthError("this device was logged out", code=ErrorCode.TOKEN_REVOKED)
        raise AuthError("call auth.authorize with your device token first")


# --- client side ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ResponseReceived:
    request_id: RequestId
    result: Any


@dataclass(frozen=True, slots=True)
class ErrorReceived:
    request_id: RequestId | None
    error: SamizdatError


@dataclass(frozen=True, slots=True)
class UpdateReceived:
    seq: int | None
    update: dict[str, Any]


ClientEvent = ResponseReceived | ErrorReceived | UpdateReceived


class ClientSession:
    """Client half of the protocol, without a socket."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.pending: set[RequestId] = set()

    def request(self, method: str, params: dict[str, Any]) -> tuple[RequestId, bytes]:
        request_id = next(self._ids)
        self.pending.add(request_id)
        return request_id, encode_request(request_id, method, params)

    def receive(self, data: bytes | str) -> ClientEvent:
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ProtocolError("server sent a frame that is not JSON") from exc
        if not isinstance(frame, dict):
            raise ProtocolError("server sent a frame that is not an object")
        if "update" in frame:
            seq = frame.get("seq")
            update = frame["update"]
            if not isinstance(update, dict) or not (seq is None or isinstance(seq, int)):
                raise ProtocolError("server sent a malformed update")
            return UpdateReceived(seq, update)
        request_id = frame.get("id")
        self.pending.discard(request_id)
        if "error" in frame:
            return ErrorReceived(request_id, from_wire(frame["error"]))
        if "result" in frame and request_id is not None:
            return ResponseReceived(request_id, frame["result"])
        raise ProtocolError("server sent a frame with neither result, error nor update")


__all__ = [
    "ClientEvent",
    "ClientSession",
    "ConnEvent",
    "ConnState",
    "ErrorReceived",
    "IllegalTransition",
    "ResponseReceived",
    "ServerConnection",
    "UpdateReceived",
    "transition",
]
