"""Time sources for the simulated plant: the real monotonic clock and a hand-driven fake for tests."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Anything with a monotonic time in seconds."""

    def monotonic(self) -> float: ...


class SystemClock:
    """The process's monotonic clock."""

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that only moves when a test calls advance(); it never sleeps."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = float(start)

    def monotonic(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go back")
        self._now += seconds
