"""Clocks: the adapters get one, the core gets ``now`` as an argument."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()


__all__ = ["Clock", "SystemClock"]
