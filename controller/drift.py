"""Drift of one measure of a device: the median of its first N values after a reset against the median of its last M."""

from __future__ import annotations

import statistics
from collections import deque


class Track:
    """One measure (a travel time, a current, a pressure) of one device and direction."""

    def __init__(self, baseline_n: int, recent_m: int) -> None:
        self.baseline_n = baseline_n
        self.baseline: float | None = None
        self._collecting: list[float] = []
        self.recent: deque[float] = deque(maxlen=recent_m)

    def add(self, value: float) -> bool:
        """Take one value; True when it completed the baseline."""
        self.recent.append(value)
        if self.baseline is not None:
            return False
        self._collecting.append(value)
        if len(self._collecting) < self.baseline_n:
            return False
        self.baseline = statistics.median(self._collecting)
        self._collecting = []
        return True

    def reset(self) -> None:
        """Start a new baseline from the next value (after a service, a repair, a new drive)."""
        self.baseline = None
        self._collecting = []
        self.recent.clear()

    def restore(self, baseline: float) -> None:
        self.baseline = baseline
        self._collecting = []

    @property
    def collected(self) -> int:
        """Values of the baseline so far (N once it is set)."""
        return self.baseline_n if self.baseline is not None else len(self._collecting)

    @property
    def recent_median(self) -> float | None:
        """The median of the last M values, once there are M."""
        if len(self.recent) < (self.recent.maxlen or 0):
            return None
        return statistics.median(self.recent)

    def drift(self) -> float | None:
        """How far the recent median is from the baseline, as a fraction of it (+0.2: 20 % above)."""
        recent = self.recent_median
        if recent is None or not self.baseline:
            return None
        return recent / self.baseline - 1

    def as_dict(self) -> dict:
        return {"baseline": self.baseline, "baseline_samples": self.collected, "baseline_of": self.baseline_n,
                "recent_median": self.recent_median, "drift": self.drift()}
