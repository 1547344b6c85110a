from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from samizdat.core.ratelimit import KeyedLimiter, TokenBucket
from samizdat.protocol.errors import ErrorCode, RateLimited


def test_a_full_bucket_allows_a_burst_then_asks_to_wait() -> None:
    bucket = TokenBucket.full(rate=1.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(1.0)


def test_a_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket.full(rate=2.0, burst=1, now=0.0)
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.25) == pytest.approx(0.25)
    assert bucket.take(0.5) == 0.0


def test_a_refused_take_consumes_nothing() -> None:
    bucket = TokenBucket.full(rate=1.0, burst=1, now=0.0)
    bucket.take(0.0)
    for _ in range(10):
        assert bucket.take(0.5) == pytest.approx(0.5)
    assert bucket.take(1.0) == 0.0


def test_a_bucket_never_holds_more_than_its_burst() -> None:
    bucket = TokenBucket.full(rate=1.0, burst=2, now=0.0)
    assert bucket.take(1_000.0, cost=2) == 0.0
    assert bucket.take(1_000.0) == pytest.approx(1.0)


def test_a_clock_stepping_back_does_not_refill() -> None:
    bucket = TokenBucket.full(rate=1.0, burst=1, now=10.0)
    bucket.take(10.0)
    assert bucket.take(5.0) == pytest.approx(1.0)
    assert bucket.take(11.0) == 0.0


def test_float_refill_error_never_causes_a_tiny_wait() -> None:
    bucket = TokenBucket.full(rate=10.0, burst=1, now=0.0)
    bucket.take(0.0)
    now = 0.0
    for _ in range(10):
        now += 0.01  # ten steps of 0.01 s do not add up to exactly 0.1 in floats
    assert bucket.take(now) == 0.0


def test_a_cost_above_the_burst_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        TokenBucket.full(rate=1.0, burst=2, now=0.0).take(0.0, cost=3)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (1, 0), (-1, 1)])
def test_non_positive_rates_and_bursts_are_refused(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket.full(rate=rate, burst=burst, now=0.0)
    with pytest.raises(ValueError, match="positive"):
        KeyedLimiter(rate, burst)


@given(
    rate=st.floats(min_value=0.01, max_value=100),
    burst=st.integers(min_value=1, max_value=20),
    gaps=st.lists(st.floats(min_value=0, max_value=10), max_size=50),
)
def test_a_bucket_never_allows_more_than_burst_plus_refill(
    rate: float, burst: int, gaps: list[float]
) -> None:
    bucket = TokenBucket.full(rate=rate, burst=burst, now=0.0)
    now = allowed = 0.0
    for gap in gaps:
        now += gap
        wait = bucket.take(now)
        assert wait >= 0.0
        allowed += wait == 0.0
        assert 0.0 <= bucket.tokens <= burst
    assert allowed <= burst + rate * now + 1e-6


def test_limiter_raises_flood_wait_with_retry_after_per_key() -> None:
    limiter: KeyedLimiter[str] = KeyedLimiter(rate=0.1, burst=2, what="login codes")
    limiter.check("+16502530000", 0.0)
    limiter.check("+16502530000", 0.0)
    with pytest.raises(RateLimited) as info:
        limiter.check("+16502530000", 0.0)
    assert info.value.code is ErrorCode.FLOOD_WAIT
    assert info.value.retry_after == pytest.approx(10.0)
    assert info.value.message == "too many login codes; try again in 10 s"
    assert "+1650" not in repr(info.value.to_wire())
    limiter.check("+442079460958", 0.0)  # another key has its own bucket


def test_limiter_allows_again_after_retry_after() -> None:
    limiter: KeyedLimiter[str] = KeyedLimiter(rate=1.0, burst=1)
    limiter.check("ip", 0.0)
    with pytest.raises(RateLimited) as info:
        limiter.check("ip", 0.0)
    limiter.check("ip", info.value.retry_after)


def test_limiter_forgets_the_least_recently_used_key_beyond_max_keys() -> None:
    limiter: KeyedLimiter[int] = KeyedLimiter(rate=0.001, burst=1, max_keys=2)
    limiter.check(1, 0.0)
    limiter.check(2, 0.0)
    with pytest.raises(RateLimited):
        limiter.check(1, 0.0)  # key 1 is now the most recently used
    limiter.check(3, 0.0)  # evicts key 2
    assert len(limiter) == 2
    with pytest.raises(RateLimited):
        limiter.check(1, 0.0)
    limiter.check(2, 0.0)  # forgotten, so its bucket starts full again


def test_limiter_refuses_a_zero_key_bound() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        KeyedLimiter(1.0, 1, max_keys=0)
