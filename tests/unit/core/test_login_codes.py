from __future__ import annotations

import hashlib
import secrets
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from samizdat.core.login_codes import (
    CodeCheck,
    CodePolicy,
    PendingCode,
    check_code,
    generate_code,
    raise_for,
)
from samizdat.protocol.errors import AuthError, ErrorCode

POLICY = CodePolicy()
NOW = 1_000_000.0


def digest(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


def pending(code: str = "12345", attempts: int = 0) -> PendingCode:
    return PendingCode(digest(code), expires_at=NOW + POLICY.ttl_seconds, attempts=attempts)


def test_default_policy_is_five_digits_five_attempts_five_minutes() -> None:
    assert CodePolicy() == CodePolicy(ttl_seconds=300, max_attempts=5, length=5)


def test_the_right_code_before_expiry_is_ok() -> None:
    assert check_code(pending(), digest("12345"), NOW, POLICY) is CodeCheck.OK


def test_a_wrong_code_is_wrong() -> None:
    assert check_code(pending(), digest("54321"), NOW, POLICY) is CodeCheck.WRONG


def test_a_digest_of_another_length_is_wrong_not_an_error() -> None:
    assert check_code(pending(), b"short", NOW, POLICY) is CodeCheck.WRONG


def test_the_right_code_at_or_after_expiry_is_expired() -> None:
    code = PendingCode.issue(digest("12345"), NOW, POLICY)
    assert check_code(code, digest("12345"), NOW + 299.9, POLICY) is CodeCheck.OK
    assert check_code(code, digest("12345"), NOW + 300, POLICY) is CodeCheck.EXPIRED


def test_no_pending_code_is_none_pending() -> None:
    assert check_code(None, digest("12345"), NOW, POLICY) is CodeCheck.NONE_PENDING


def test_the_right_code_after_max_wrong_attempts_is_refused() -> None:
    code = pending()
    for _ in range(POLICY.max_attempts):
        assert check_code(code, digest("00000"), NOW, POLICY) is CodeCheck.WRONG
        code = replace(code, attempts=code.attempts + 1)  # as the store counts it
    assert code.attempts == POLICY.max_attempts
    assert check_code(code, digest("12345"), NOW, POLICY) is CodeCheck.TOO_MANY_ATTEMPTS


def test_the_last_allowed_attempt_can_still_succeed() -> None:
    code = pending(attempts=POLICY.max_attempts - 1)
    assert check_code(code, digest("12345"), NOW, POLICY) is CodeCheck.OK


def test_ok_raises_nothing() -> None:
    raise_for(CodeCheck.OK)


@pytest.mark.parametrize(
    ("check", "code", "message"),
    [
        (CodeCheck.WRONG, ErrorCode.CODE_INVALID, "the code is wrong"),
        (CodeCheck.EXPIRED, ErrorCode.CODE_EXPIRED, "expired"),
        (CodeCheck.TOO_MANY_ATTEMPTS, ErrorCode.CODE_EXPIRED, "too many attempts"),
        (CodeCheck.NONE_PENDING, ErrorCode.CODE_EXPIRED, "no code was sent"),
    ],
)
def test_each_failed_check_raises_its_auth_error(
    check: CodeCheck, code: ErrorCode, message: str
) -> None:
    with pytest.raises(AuthError, match=message) as info:
        raise_for(check)
    assert info.value.code is code


def test_generated_codes_keep_leading_zeros() -> None:
    assert generate_code(5, lambda bound: 42) == "00042"


def test_generate_code_asks_for_one_number_below_ten_to_the_length() -> None:
    bounds: list[int] = []

    def randbelow(bound: int) -> int:
        bounds.append(bound)
        return bound - 1

    assert generate_code(6, randbelow) == "999999"
    assert bounds == [10**6]


def test_generate_code_refuses_a_random_source_out_of_range() -> None:
    with pytest.raises(ValueError, match="outside"):
        generate_code(5, lambda bound: bound)


@given(st.integers(min_value=1, max_value=12))
def test_generated_codes_are_digits_of_the_requested_length(length: int) -> None:
    code = generate_code(length, secrets.randbelow)
    assert len(code) == length
    assert code.isascii()
    assert code.isdigit()


@pytest.mark.parametrize(
    "kwargs",
    [{"ttl_seconds": 0}, {"max_attempts": 0}, {"length": 0}, {"length": 13}],
)
def test_nonsensical_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        CodePolicy(**kwargs)  # type: ignore[arg-type]
