"""Token-bucket rate limits, as pure state updated with the time passed in.

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second; each action
takes ``cost`` tokens. ``TokenBucket.take`` answers with a wait instead of raising, so callers
can use it for pacing as well as refusing; ``KeyedLimiter.check`` raises the typed RateLimited
error for request paths (per phone number, per IP, per user).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from samizdat.protocol.errors import RateLimited

K = TypeVar("K", bound=Hashable)

# Float refills can land a hair below a whole token (0.1 * 10 != 1.0); never make a caller
# wait for that.
_EPSILON = 1e-9


@dataclass(slots=True)
class TokenBucket:
    """``tokens`` available at time ``updated``; refills at ``rate`` per second up to ``burst``."""

    rate: float
    burst: float
    tokens: float
    updated: float

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst <= 0:
            raise ValueError(f"rate and burst must be positive, got {self.rate}, {self.burst}")

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> TokenBucket:
        return cls(rate=rate, burst=burst, tokens=burst, updated=now)

    def take(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens if available and return 0.0; else take nothing and return the
        seconds until they will be.

        A refused call consumes nothing. If the clock steps back, the bucket does not refill.
        Raises ValueError if ``cost`` exceeds ``burst``: such a call could never succeed.
        """
        if cost > self.burst:
            raise ValueError(f"cost {cost} exceeds the bucket's burst {self.burst}")
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
        if self.tokens + _EPSILON >= cost:
            self.tokens = max(0.0, self.tokens - cost)
            return 0.0
        return (cost - self.tokens) / self.rate


class KeyedLimiter(Generic[K]):
    """One token bucket per key (phone number, IP address, user id), in bounded memory.

    Beyond ``max_keys`` the least recently used key is forgotten, which resets its bucket to
    full; keep ``max_keys`` well above the number of keys active within ``burst / rate``
    seconds so that only idle (already refilled) buckets are dropped.
    """

    def __init__(
        self, rate: float, burst: float, *, max_keys: int = 100_000, what: str = "requests"
    ) -> None:
        """``what`` names the limited action in the client-facing message ("login codes")."""
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        TokenBucket.full(rate, burst, 0.0)  # validates rate and burst now, not on first use
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self.what = what
        self._buckets: OrderedDict[K, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, key: K, now: float, cost: float = 1.0) -> None:
        """Charge ``cost`` to ``key``'s bucket, or raise RateLimited with ``retry_after``."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket.full(self.rate, self.burst, now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        wait = bucket.take(now, cost)
        if wait > 0:
            # The key (a phone number or IP) stays out of the message and the debug context.
            raise RateLimited(
                f"too many {self.what}; try again in {math.ceil(wait)} s", retry_after=wait
            )


__all__ = ["KeyedLimiter", "TokenBucket"]
