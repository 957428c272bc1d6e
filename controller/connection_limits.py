"""Who may hold a control connection and how often they may be refused: caps per uid and overall, a refusal rate."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

MAX_CONNECTIONS_PER_UID = 16
MAX_CONNECTIONS = 200  # all callers but the privileged, together: far under any descriptor limit
MAX_PRIVILEGED_CONNECTIONS = 32  # root and the daemon's user: their own room, never taken by others

REFUSALS_BURST = 20  # a caller may be refused this many times in a row...
REFUSALS_PER_S = 1.0  # ...and then once a second, before being told to slow down


class ConnectionCaps:
    """Counts open connections by uid; the privileged uids have their own allowance, so others cannot starve them."""

    def __init__(self, privileged_uids: Iterable[int], per_uid: int = MAX_CONNECTIONS_PER_UID,
                 overall: int = MAX_CONNECTIONS, privileged: int = MAX_PRIVILEGED_CONNECTIONS):
        self.privileged_uids = frozenset(privileged_uids)
        self.per_uid, self.overall, self.privileged = per_uid, overall, privileged
        self._open: Counter[int] = Counter()

    def admit(self, uid: int) -> str | None:
        """Count a new connection from `uid`, or return why it is turned away (and count nothing)."""
        if uid in self.privileged_uids:
            if sum(self._open[u] for u in self.privileged_uids) >= self.privileged:
                return f"too many connections from privileged users (at most {self.privileged})"
        elif self._open[uid] >= self.per_uid:
            return f"too many connections from uid {uid} (at most {self.per_uid})"
        elif self.unprivileged_open() >= self.overall:
            return f"too many connections (at most {self.overall})"
        self._open[uid] += 1
        return None

    def release(self, uid: int) -> None:
        self._open[uid] -= 1
        if self._open[uid] <= 0:
            del self._open[uid]

    def unprivileged_open(self) -> int:
        return sum(n for uid, n in self._open.items() if uid not in self.privileged_uids)

    def open_count(self, uid: int) -> int:
        return self._open[uid]


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class RefusalBudget:
    """A token bucket per uid on an injectable clock: each refused request takes a token; an empty bucket
    means the caller is told to slow down without dispatch, so refusals cannot flood the audit trail."""

    burst: float = REFUSALS_BURST
    per_s: float = REFUSALS_PER_S
    clock: Callable[[], float] = time.monotonic
    exempt_uids: frozenset[int] = frozenset()
    _buckets: dict[int, _Bucket] = field(default_factory=dict)

    def exhausted(self, uid: int) -> bool:
        """The caller has used up its refusals; refill first."""
        return uid not in self.exempt_uids and self._refill(uid).tokens < 1.0

    def refused(self, uid: int) -> None:
        """Take one token for a refused request."""
        if uid not in self.exempt_uids:
            bucket = self._refill(uid)
            bucket.tokens = max(0.0, bucket.tokens - 1.0)

    def _refill(self, uid: int) -> _Bucket:
        now = self.clock()
        bucket = self._buckets.get(uid)
        if bucket is None:
            if len(self._buckets) > 1024:  # forget callers whose bucket has refilled
                self._buckets = {u: b for u, b in self._buckets.items()
                                 if b.tokens + (now - b.at) * self.per_s < self.burst}
            bucket = self._buckets[uid] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.per_s)
        bucket.at = now
        return bucket
