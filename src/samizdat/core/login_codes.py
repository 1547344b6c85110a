"""The rules of one-time login codes, as pure functions.

Theory of operation: the server generates a code (``generate_code``), delivers it, and stores
only its digest as a ``PendingCode`` with an expiry and an attempt counter. When the user
presents a code, the store first counts the attempt atomically and returns the code as it was
(so racing guesses cannot share one attempt); ``check_code`` then decides on that state and
the caller carries out the decision:

==================  ==========================  ==============================================
outcome             caller does                 ``raise_for`` raises
==================  ==========================  ==============================================
OK                  delete the pending code     nothing
WRONG               nothing (already counted)   AuthError CODE_INVALID
EXPIRED             delete the pending code     AuthError CODE_EXPIRED
TOO_MANY_ATTEMPTS   delete the pending code     AuthError CODE_EXPIRED
NONE_PENDING        nothing                     AuthError CODE_EXPIRED
==================  ==========================  ==============================================

Codes are single use: deleting the pending code on OK is what stops a replay. The attempt cap
is what makes a 5-digit code safe: with 5 tries an attacker guesses right 1 time in 20,000.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from samizdat.protocol.errors import AuthError, ErrorCode


@dataclass(frozen=True, slots=True)
class CodePolicy:
    """How long a code lives, how many guesses it allows and how many digits it has."""

    ttl_seconds: float = 300
    max_attempts: int = 5
    length: int = 5

    def __post_init__(self) -> None:
        if self.ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be positive, got {self.ttl_seconds}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if not 1 <= self.length <= 12:
            raise ValueError(f"length must be 1..12 digits, got {self.length}")


@dataclass(frozen=True, slots=True)
class PendingCode:
    """A code that was sent and not yet used: its digest, expiry, and wrong guesses so far."""

    code_digest: bytes
    expires_at: float
    attempts: int = 0

    @classmethod
    def issue(cls, code_digest: bytes, now: float, policy: CodePolicy) -> PendingCode:
        """A fresh pending code that expires ``policy.ttl_seconds`` after ``now``."""
        return cls(code_digest=code_digest, expires_at=now + policy.ttl_seconds, attempts=0)


class CodeCheck(Enum):
    """The outcome of presenting a code; see the module docstring for what each one means."""

    OK = "ok"
    WRONG = "wrong"
    EXPIRED = "expired"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    NONE_PENDING = "none_pending"


def check_code(
    pending: PendingCode | None, presented_digest: bytes, now: float, policy: CodePolicy
) -> CodeCheck:
    """Decide whether ``presented_digest`` unlocks ``pending`` at time ``now``.

    Expiry and the attempt cap are checked before the digest, so a correct code after too many
    wrong ones still fails. Digests are compared in constant time.
    """
    if pending is None:
        return CodeCheck.NONE_PENDING
    if now >= pending.expires_at:
        return CodeCheck.EXPIRED
    if pending.attempts >= policy.max_attempts:
        return CodeCheck.TOO_MANY_ATTEMPTS
    if hmac.compare_digest(pending.code_digest, presented_digest):
        return CodeCheck.OK
    return CodeCheck.WRONG


_ERRORS: dict[CodeCheck, tuple[ErrorCode, str]] = {
    CodeCheck.WRONG: (ErrorCode.CODE_INVALID, "the code is wrong; check it and try again"),
    CodeCheck.EXPIRED: (ErrorCode.CODE_EXPIRED, "the code has expired; request a new code"),
    CodeCheck.TOO_MANY_ATTEMPTS: (ErrorCode.CODE_EXPIRED, "too many attempts; request a new code"),
    CodeCheck.NONE_PENDING: (ErrorCode.CODE_EXPIRED, "no code was sent or it was already used"),
}


def raise_for(check: CodeCheck) -> None:
    """Raise the AuthError a client should see for ``check``; return for OK."""
    if check is CodeCheck.OK:
        return
    code, message = _ERRORS[check]
    raise AuthError(message, code=code)


def generate_code(length: int, randbelow: Callable[[int], int]) -> str:
    """A uniformly random code of ``length`` digits, leading zeros kept.

    Pass ``secrets.randbelow``; taking it as an argument keeps this module pure and lets tests
    choose the code.
    """
    if length < 1:
        raise ValueError(f"length must be at least 1, got {length}")
    bound = 10**length
    value = randbelow(bound)
    if not 0 <= value < bound:
        raise ValueError(f"randbelow({bound}) returned {value}, outside 0..{bound - 1}")
    return f"{value:0{length}d}"


__all__ = [
    "CodeCheck",
    "CodePolicy",
    "PendingCode",
    "check_code",
    "generate_code",
    "raise_for",
]
