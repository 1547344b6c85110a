"""Identifier types and the id generator.

Ids are integers below 2**53 so JavaScript clients keep them exact. Message and chat ids are
time-ordered "snowflakes" made in-process (no database round trip on the hot path, and safe on
many nodes): 41 bits of milliseconds since 2026-01-01, 4 bits of node id, 8 bits of counter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NewType

UserId = NewType("UserId", int)
DeviceId = NewType("DeviceId", int)
ChatId = NewType("ChatId", int)
MessageId = NewType("MessageId", int)

EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
NODE_BITS = 4
COUNTER_BITS = 8
MAX_NODE = (1 << NODE_BITS) - 1


@dataclass(slots=True)
class SnowflakeGenerator:
    """Monotonic 53-bit ids; ``next(now)`` takes the time so the core stays pure.

    If the counter runs out within one millisecond (256 ids), or the clock steps back, the
    generator borrows from the future millisecond instead of repeating an id.
    """

    node: int = 0
    _last_ms: int = field(default=0)
    _counter: int = field(default=0)

    def __post_init__(self) -> None:
        if not 0 <= self.node <= MAX_NODE:
            raise ValueError(f"node id must be 0..{MAX_NODE}, got {self.node}")

    def next(self, now: float) -> int:
        ms = max(int(now * 1000) - EPOCH_MS, 0)
        if ms <= self._last_ms:
            ms = self._last_ms
            self._counter += 1
            if self._counter >> COUNTER_BITS:
                ms += 1
                self._counter = 0
        else:
            self._counter = 0
        self._last_ms = ms
        return (ms << (NODE_BITS + COUNTER_BITS)) | (self.node << COUNTER_BITS) | self._counter


__all__ = ["ChatId", "DeviceId", "MessageId", "SnowflakeGenerator", "UserId"]
