"""Frame codec: JSON text frames, parsed once at the edge.

Client -> server::

    {"id": 7, "method": "messages.send", "params": {...}}

Server -> client::

    {"id": 7, "result": {...}}                      response
    {"id": 7, "error": {"code": "...", "message": "..."}}   typed error
    {"seq": 42, "update": {...}}                    numbered update (stored, replayable)
    {"update": {...}}                               ephemeral update (typing)

``id`` is chosen by the client (an integer below 2**53, or a short string); the server echoes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from samizdat.protocol.errors import ErrorCode, ProtocolError, SamizdatError

DEFAULT_MAX_FRAME_BYTES = 64 * 1024
RequestId = int | str


@dataclass(frozen=True, slots=True)
class Request:
    id: RequestId
    method: str
    params: dict[str, Any]


def _valid_id(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0 <= value < 2**53
    return isinstance(value, str) and 0 < len(value) <= 64


_PEEK_FACTOR = 16


def _peek_id(data: bytes | str) -> RequestId | None:
    try:
        frame = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    request_id = frame.get("id") if isinstance(frame, dict) else None
    return request_id if _valid_id(request_id) else None


def decode_request(data: bytes | str, *, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Request:
    """Parse one client frame.

    Raises ProtocolError (BAD_FRAME, PAYLOAD_TOO_LARGE or INVALID_PARAMS); when the frame was
    readable enough to carry an id, the error's ``debug_context["request_id"]`` holds it so the
    reply can echo it. A frame over ``max_bytes`` is read for its id only while it is at most
    ``_PEEK_FACTOR`` times the limit (the transport bounds frames anyway), so the client learns
    which request was refused instead of waiting for a reply that never comes.
    """
    size = len(data)
    if size > max_bytes:
        context: dict[str, RequestId] = {}
        if size <= max_bytes * _PEEK_FACTOR:
            request_id = _peek_id(data)
            if request_id is not None:
                context["request_id"] = request_id
        raise ProtocolError(
            f"frame of {size} bytes exceeds the {max_bytes}-byte limit",
            code=ErrorCode.PAYLOAD_TOO_LARGE,
            debug_context=context,
        )
    try:
        frame = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError("frame is not valid JSON") from exc
    if not isinstance(frame, dict):
        raise ProtocolError("frame must be a JSON object")
    request_id = frame.get("id")
    if not _valid_id(request_id):
        raise ProtocolError("frame needs an 'id': an integer 0..2**53 or a short string")
    assert isinstance(request_id, int | str)
    context = {"request_id": request_id}
    method = frame.get("method")
    if not isinstance(method, str) or not method:
        raise ProtocolError("frame needs a 'method' string", debug_context=context)
    params = frame.get("params", {})
    if not isinstance(params, dict):
        raise ProtocolError(
            "'params' must be a JSON object", code=ErrorCode.INVALID_PARAMS, debug_context=context
        )
    extra = frame.keys() - {"id", "method", "params"}
    if extra:
        raise ProtocolError(f"unknown frame keys: {sorted(extra)}", debug_context=context)
    return Request(request_id, method, params)


def encode_request(request_id: RequestId, method: str, params: dict[str, Any]) -> bytes:
    return orjson.dumps({"id": request_id, "method": method, "params": params})


def encode_result(request_id: RequestId, result: Any) -> bytes:
    return orjson.dumps({"id": request_id, "result": result})


def encode_error(request_id: RequestId | None, error: SamizdatError) -> bytes:
    return orjson.dumps({"id": request_id, "error": error.to_wire()})


def encode_update(update_json: bytes, seq: int | None) -> bytes:
    """Wrap an already-serialised update body, so fan-out serialises the body once."""
    if seq is None:
        return b'{"update":' + update_json + b"}"
    return b'{"seq":' + str(seq).encode() + b',"update":' + update_json + b"}"


__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "Request",
    "RequestId",
    "decode_request",
    "encode_error",
    "encode_request",
    "encode_result",
    "encode_update",
]
