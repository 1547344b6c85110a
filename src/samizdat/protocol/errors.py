"""One exception tree with stable codes, shared by server, client and SDK.

::

    SamizdatError                 code, client-safe message, debug_context (never sent)
     ├── ProtocolError            the frame itself is wrong: BAD_FRAME, PAYLOAD_TOO_LARGE,
     │                            UNKNOWN_METHOD, INVALID_PARAMS
     ├── AuthError                UNAUTHORIZED, TOKEN_REVOKED, CODE_INVALID, CODE_EXPIRED,
     │                            PHONE_INVALID, PHONE_NUMBER_REFUSED
     ├── PermissionDenied         NOT_MEMBER, NOT_ADMIN, NOT_AUTHOR
     ├── NotFound                 USER_NOT_FOUND, CHAT_NOT_FOUND, MESSAGE_NOT_FOUND,
     │                            DEVICE_NOT_FOUND
     ├── Conflict                 USERNAME_TAKEN, USERNAME_INVALID, TEXT_INVALID, CHAT_INVALID,
     │                            KEYS_INVALID, DEVICE_LIST_CHANGED; raised by clients only:
     │                            DEVICE_UNVERIFIED, VERIFICATION_FAILED
     ├── RateLimited              FLOOD_WAIT (carries retry_after seconds)
     ├── Unavailable              UNAVAILABLE: a dependency (store, DC key) cannot serve now
     └── InternalError            INTERNAL: anything unexpected; details only in the log

The wire carries ``{"code": ..., "message": ...}`` (plus ``retry_after`` for FLOOD_WAIT);
``from_wire`` rebuilds the same exception class on the client, so the SDK raises exactly what
the server raised.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any, ClassVar


class ErrorCode(StrEnum):
    BAD_FRAME = "BAD_FRAME"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    UNKNOWN_METHOD = "UNKNOWN_METHOD"
    INVALID_PARAMS = "INVALID_PARAMS"
    UNAUTHORIZED = "UNAUTHORIZED"
    TOKEN_REVOKED = "TOKEN_REVOKED"
    CODE_INVALID = "CODE_INVALID"
    CODE_EXPIRED = "CODE_EXPIRED"
    PHONE_INVALID = "PHONE_INVALID"
    PHONE_NUMBER_REFUSED = "PHONE_NUMBER_REFUSED"
    NOT_MEMBER = "NOT_MEMBER"
    NOT_ADMIN = "NOT_ADMIN"
    NOT_AUTHOR = "NOT_AUTHOR"
    USER_NOT_FOUND = "USER_NOT_FOUND"
    CHAT_NOT_FOUND = "CHAT_NOT_FOUND"
    MESSAGE_NOT_FOUND = "MESSAGE_NOT_FOUND"
    DEVICE_NOT_FOUND = "DEVICE_NOT_FOUND"
    USERNAME_TAKEN = "USERNAME_TAKEN"
    USERNAME_INVALID = "USERNAME_INVALID"
    TEXT_INVALID = "TEXT_INVALID"
    CHAT_INVALID = "CHAT_INVALID"
    KEYS_INVALID = "KEYS_INVALID"
    DEVICE_LIST_CHANGED = "DEVICE_LIST_CHANGED"
    DEVICE_UNVERIFIED = "DEVICE_UNVERIFIED"
    VERIFICATION_FAILED = "VERIFICATION_FAILED"
    FLOOD_WAIT = "FLOOD_WAIT"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"


class SamizdatError(Exception):
    """Root of every error Samizdat raises on purpose.

    ``message`` is safe to show a client; ``debug_context`` goes to the server log only.
    """

    default_code: ClassVar[ErrorCode] = ErrorCode.INTERNAL

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        debug_context: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code: ErrorCode = code if code is not None else self.default_code
        self.message = message
        self.debug_context: dict[str, Any] = debug_context or {}

    def to_wire(self) -> dict[str, Any]:
        return {"code": self.code.value, "message": self.message}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.value}: {self.message!r})"


class ProtocolError(SamizdatError):
    default_code = ErrorCode.BAD_FRAME


class AuthError(SamizdatError):
    default_code = ErrorCode.UNAUTHORIZED


class PermissionDenied(SamizdatError):
    default_code = ErrorCode.NOT_MEMBER


class NotFound(SamizdatError):
    default_code = ErrorCode.CHAT_NOT_FOUND


class Conflict(SamizdatError):
    default_code = ErrorCode.CHAT_INVALID


class RateLimited(SamizdatError):
    default_code = ErrorCode.FLOOD_WAIT

    def __init__(self, message: str, *, retry_after: float, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after

    def to_wire(self) -> dict[str, Any]:
        # Rounded up to the millisecond: a wait of 0.0004 s must not read as "no wait".
        waited = max(math.ceil(self.retry_after * 1000), 1) / 1000
        return {**super().to_wire(), "retry_after": waited}


class Unavailable(SamizdatError):
    default_code = ErrorCode.UNAVAILABLE


class InternalError(SamizdatError):
    default_code = ErrorCode.INTERNAL

    def __init__(self, message: str = "internal server error", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)


_CLASS_BY_CODE: dict[ErrorCode, type[SamizdatError]] = {
    ErrorCode.BAD_FRAME: ProtocolError,
    ErrorCode.PAYLOAD_TOO_LARGE: ProtocolError,
    ErrorCode.UNKNOWN_METHOD: ProtocolError,
    ErrorCode.INVALID_PARAMS: ProtocolError,
    ErrorCode.UNAUTHORIZED: AuthError,
    ErrorCode.TOKEN_REVOKED: AuthError,
    ErrorCode.CODE_INVALID: AuthError,
    ErrorCode.CODE_EXPIRED: AuthError,
    ErrorCode.PHONE_INVALID: AuthError,
    ErrorCode.PHONE_NUMBER_REFUSED: AuthError,
    ErrorCode.NOT_MEMBER: PermissionDenied,
    ErrorCode.NOT_ADMIN: PermissionDenied,
    ErrorCode.NOT_AUTHOR: PermissionDenied,
    ErrorCode.USER_NOT_FOUND: NotFound,
    ErrorCode.CHAT_NOT_FOUND: NotFound,
    ErrorCode.MESSAGE_NOT_FOUND: NotFound,
    ErrorCode.DEVICE_NOT_FOUND: NotFound,
    ErrorCode.USERNAME_TAKEN: Conflict,
    ErrorCode.USERNAME_INVALID: Conflict,
    ErrorCode.TEXT_INVALID: Conflict,
    ErrorCode.CHAT_INVALID: Conflict,
    ErrorCode.KEYS_INVALID: Conflict,
    ErrorCode.DEVICE_LIST_CHANGED: Conflict,
    ErrorCode.DEVICE_UNVERIFIED: Conflict,
    ErrorCode.VERIFICATION_FAILED: Conflict,
    ErrorCode.FLOOD_WAIT: RateLimited,
    ErrorCode.UNAVAILABLE: Unavailable,
    ErrorCode.INTERNAL: InternalError,
}

#: HTTP status for each code; WebSocket errors are frames, so only the close codes below matter.
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_FRAME: 400,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.UNKNOWN_METHOD: 404,
    ErrorCode.INVALID_PARAMS: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.TOKEN_REVOKED: 401,
    ErrorCode.CODE_INVALID: 400,
    ErrorCode.CODE_EXPIRED: 400,
    ErrorCode.PHONE_INVALID: 400,
    ErrorCode.PHONE_NUMBER_REFUSED: 403,
    ErrorCode.NOT_MEMBER: 403,
    ErrorCode.NOT_ADMIN: 403,
    ErrorCode.NOT_AUTHOR: 403,
    ErrorCode.USER_NOT_FOUND: 404,
    ErrorCode.CHAT_NOT_FOUND: 404,
    ErrorCode.MESSAGE_NOT_FOUND: 404,
    ErrorCode.DEVICE_NOT_FOUND: 404,
    ErrorCode.USERNAME_TAKEN: 409,
    ErrorCode.USERNAME_INVALID: 400,
    ErrorCode.TEXT_INVALID: 400,
    ErrorCode.CHAT_INVALID: 400,
    ErrorCode.KEYS_INVALID: 400,
    ErrorCode.DEVICE_LIST_CHANGED: 409,
    ErrorCode.DEVICE_UNVERIFIED: 409,
    ErrorCode.VERIFICATION_FAILED: 409,
    ErrorCode.FLOOD_WAIT: 429,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}

#: WebSocket close codes (4000-4999 are application-defined).
WS_CLOSE_REVOKED = 4001
WS_CLOSE_UNAUTHORIZED = 4003
WS_CLOSE_SLOW_CONSUMER = 4008


def from_wire(payload: Any) -> SamizdatError:
    """Rebuild the typed exception a server sent; unknown shapes become InternalError."""
    if not isinstance(payload, dict):
        return InternalError("malformed error from server")
    try:
        code = ErrorCode(str(payload.get("code")))
    except ValueError:
        return InternalError(f"unknown error code from server: {payload.get('code')!r}")
    message = str(payload.get("message", code.value))
    cls = _CLASS_BY_CODE[code]
    if cls is RateLimited:
        retry_after = payload.get("retry_after", 1.0)
        if not isinstance(retry_after, int | float):
            retry_after = 1.0
        return RateLimited(message, retry_after=float(retry_after), code=code)
    if cls is InternalError:
        return InternalError(message)
    return cls(message, code=code)


__all__ = [
    "HTTP_STATUS",
    "WS_CLOSE_REVOKED",
    "WS_CLOSE_SLOW_CONSUMER",
    "WS_CLOSE_UNAUTHORIZED",
    "AuthError",
    "Conflict",
    "ErrorCode",
    "InternalError",
    "NotFound",
    "PermissionDenied",
    "ProtocolError",
    "RateLimited",
    "SamizdatError",
    "Unavailable",
    "from_wire",
]
