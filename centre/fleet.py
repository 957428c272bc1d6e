"""The fleet's picture from the sites' MQTT topics: per site online or not, lanes, devices, alarms, lockdown, staleness.

Pure logic on an injectable clock: `Fleet.receive` is given every message (topic, payload, its remaining MQTT
message expiry) and `Fleet.picture` says what is known now. A value is shown only while it is current: until
its message expires (the broker's expiry, counted from receipt) and until STALE_REFRESHES of the site's refresh
period (`refresh_s` in its status) pass without it being published again. After that it is `stale`; a site
whose status says offline (its last will, or a clean stop) shows every part `offline`; a message that is not
what barrierd publishes is `unreadable` — never its last value as if it were still true.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from centre import topics
from centre.topics import Address, Unreadable

STALE_REFRESHES = 2.5  # a value not republished within this many refresh periods is stale
FALLBACK_MAX_AGE_S = 30.0  # a value with neither an expiry nor a site refresh period is stale after this
MAX_SITES = 1000
MAX_PARTS_PER_SITE = 2000
TRAVEL_ORDER = ("signal", "blocker", "boom", "gate")  # as an arriving vehicle meets them (controller/panel.py)
STALE, OFFLINE, UNREADABLE, UNHEARD = "stale", "offline", "unreadable", "unheard"


@dataclass
class Heard:
    """One message as received: its checked content (or why it is unreadable), when, and its expiry."""

    value: Any
    received: float
    expiry_s: float | None
    problem: str | None = None


@dataclass
class SiteFeed:
    """What has been heard under one site's prefix."""

    prefix: str
    status: Heard | None = None
    parts: dict[tuple[str, str | None], Heard] = field(default_factory=dict)
    name: str | None = None  # the site's name from its last status naming it (an identity, not a state)
    rejected: int = 0
    last_problem: str | None = None


class Fleet:
    """Every site seen under the centre's topic filter, keyed by its prefix."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, fallback_max_age_s: float = FALLBACK_MAX_AGE_S):
        self.clock = clock
        self.fallback_max_age_s = fallback_max_age_s
        self.sites: dict[str, SiteFeed] = {}
        self.ignored = 0  # messages naming no site part, or past the bounds
        self.received = 0

    # ----- receiving ---------------------------------------------------------------------------

    def receive(self, topic: str, payload: bytes, expiry_s: float | None = None) -> bool:
        """Take one message; False when it names no site part (events, the centre's own topics) or is over bounds."""
        self.received += 1
        where = topics.address(topic)
        feed = self._feed(where) if where is not None else None
        if where is None or feed is None:
            self.ignored += 1
            return False
        if where.name is not None and not topics.NAME_RE.match(where.name):
            self._reject(feed, f"{where.part} name {where.name[:40]!r} is not a name barrierd uses")
            return True
        key = (where.part, where.name)
        if not payload:  # a retained message deleted at the broker: nothing is known any more
            if where.part == "status":
                feed.status = None
            feed.parts.pop(key, None)
            return True
        if key not in feed.parts and where.part != "status" and len(feed.parts) >= MAX_PARTS_PER_SITE:
            self._reject(feed, f"more than {MAX_PARTS_PER_SITE} parts")
            return True
        heard = self._read(where, payload, _expiry(expiry_s))
        if heard.problem is not None:
            self._reject(feed, f"{topic[len(where.prefix) + 1:][:80]}: {heard.problem}")
        if where.part == "status":
            if _new_session(feed.status, heard):  # what the site said before it went away is not vouched for
                feed.parts.clear()
            feed.status = heard
            feed.name = (heard.value or {}).get("site") or feed.name
        else:
            feed.parts[key] = heard
        return True

    def _feed(self, where: Address) -> SiteFeed | None:
        feed = self.sites.get(where.prefix)
        if feed is None and len(self.sites) < MAX_SITES and where.prefix:
            feed = self.sites[where.prefix] = SiteFeed(where.prefix)
        return feed

    def _read(self, where: Address, payload: bytes, expiry_s: float | None) -> Heard:
        now = self.clock()
        try:
            body = topics.decode(payload)
            if where.name is not None:
                value = topics.ITEM_READERS[where.part](body, where.name)
            else:
                value = topics.SITE_READERS[where.part](body)
        except Unreadable as exc:
            return Heard(None, now, expiry_s, problem=str(exc))
        return Heard(value, now, expiry_s)

    @staticmethod
    def _reject(feed: SiteFeed, why: str) -> None:
        feed.rejected += 1
        feed.last_problem = why

    # ----- the picture -------------------------------------------------------------------------

    def picture(self) -> dict:
        """Every site now, in prefix order; plain JSON for `status --json`, the terminal and the web page."""
        now = self.clock()
        return {"sites": [SitePicture(feed, now, self.fallback_max_age_s).as_dict()
                          for _, feed in sorted(self.sites.items())],
                "received": self.received, "ignored": self.ignored}

    def complete(self) -> bool:
        """Whether every site seen has said whether it is online and, if it is, its lanes have all their devices."""
        return bool(self.sites) and all(SitePicture(feed, self.clock(), self.fallback_max_age_s).complete()
                                        for feed in self.sites.values())


def _new_session(before: Heard | None, now: Heard) -> bool:
    """Whether a status starts a new barrierd session: online after offline, or online since another time."""
    if before is None or before.problem is not None or now.problem is not None or not now.value["online"]:
        return False
    return before.value["online"] is False or before.value["since"] != now.value["since"]


def _expiry(expiry_s: float | None) -> float | None:
    if isinstance(expiry_s, bool) or not isinstance(expiry_s, int | float) or not 0 <= expiry_s < math.inf:
        return None
    return float(expiry_s)


class SitePicture:
    """One site judged at one instant."""

    def __init__(self, feed: SiteFeed, now: float, fallback_max_age_s: float) -> None:
        self.feed, self.now = feed, now
        status = feed.status.value if feed.status is not None and feed.status.problem is None else None
        self.status = status
        self.refresh_s = status["refresh_s"] if status else None
        self.fallback_max_age_s = fallback_max_age_s
        self.offline = status is not None and status["online"] is False

    def fresh(self, heard: Heard) -> bool:
        """Whether a message still says how things are: not expired, not overdue for its refresh."""
        limits = []
        if heard.expiry_s is not None:
            limits.append(heard.expiry_s)
        if self.refresh_s is not None:
            limits.append(STALE_REFRESHES * self.refresh_s)
        if not limits:
            limits.append(self.fallback_max_age_s)
        return self.now - heard.received < min(limits)

    def shown(self, heard: Heard | None) -> tuple[str | None, Any]:
        """(the word shown instead of the value, or None when the value is current; the value)."""
        if self.offline:
            return OFFLINE, None
        if heard is None:
            return UNHEARD, None
        if heard.problem is not None:
            return UNREADABLE, None
        if not self.fresh(heard):
            return STALE, None
        return None, heard.value

    def state(self) -> str:
        if self.feed.status is None:
            return "unknown"
        if self.feed.status.problem is not None:
            return UNREADABLE
        if self.offline:
            return OFFLINE
        heard = [self.feed.status, *self.feed.parts.values()]
        return "online" if any(h.problem is None and self.fresh(h) for h in heard) else STALE

    def _part(self, part: str, name: str, key: str) -> dict:
        heard = self.feed.parts.get((part, name))
        word, value = self.shown(heard)
        age = None if heard is None else round(self.now - heard.received, 3)
        if word is not None:
            return {"name": name, key: word, "age_s": age, "current": False}
        return {**value, key: value[key], "age_s": age, "current": True}

    def device(self, name: str) -> dict:
        shown = self._part("device", name, "state")
        if not shown["current"]:
            shown |= {"display": shown["state"], "kind": None, "role": None}
            known = self.feed.parts.get(("device", name))  # the kind never changes: it still places the device
            if known is not None and known.problem is None:
                shown |= {"kind": known.value["kind"], "role": known.value["role"]}
        return shown

    def names(self, part: str) -> list[str]:
        return sorted(name for kind, name in self.feed.parts if kind == part and name is not None)

    def lanes(self) -> list[dict]:
        shown = []
        for name in self.names("lane"):
            lane = self._part("lane", name, "mode")
            heard = self.feed.parts[("lane", name)]
            members = heard.value["devices"] if heard.problem is None else []
            devices = [self.device(device) for device in members]
            lane["devices"] = sorted(devices, key=lambda d: _travel_rank(d.get("role")))
            shown.append(lane)
        return shown

    def lockdown(self) -> dict:
        word, value = self.shown(self.feed.parts.get(("lockdown", None)))
        if word is not None:
            return {"state": word}
        return {"state": {True: "on", False: "off", None: "unknown"}[value["active"]],
                **{k: v for k, v in value.items() if k != "active"}}

    def alarms(self) -> dict:
        word, value = self.shown(self.feed.parts.get(("alarms", None)))
        if word is not None:
            return {"state": word, "list": None}
        return {"state": "current" if value is not None else "unknown", "list": value}

    def as_dict(self) -> dict:
        lanes = self.lanes()
        in_lanes = {d["name"] for lane in lanes for d in lane["devices"]}
        status = self.status or {}
        return {
            "prefix": self.feed.prefix, "site": self.feed.name, "state": self.state(),
            "reason": status.get("reason"), "since": status.get("since"), "refresh_s": self.refresh_s,
            "lockdown": self.lockdown(), "alarms": self.alarms(), "lanes": lanes,
            "others": [self.device(name) for name in self.names("device") if name not in in_lanes],
            "plcs": [self._part("plc", name, "comms") for name in self.names("plc")],
            "rejected": self.feed.rejected, "problem": self.feed.last_problem,
        }

    def complete(self) -> bool:
        """Its status heard and, unless it is offline, its lockdown, alarms and every lane's devices heard."""
        if self.feed.status is None:
            return False
        if self.offline:
            return True
        parts = self.feed.parts
        lanes = [h for (kind, _), h in parts.items() if kind == "lane"]
        has_devices = bool(lanes) or any(kind == "device" for kind, _ in parts)  # a site may have no lanes
        return (("lockdown", None) in parts and ("alarms", None) in parts and has_devices
                and all(h.problem is None and all(("device", d) in parts for d in h.value["devices"]) for h in lanes))


def _travel_rank(role: str | None) -> int:
    return TRAVEL_ORDER.index(role) if role in TRAVEL_ORDER else len(TRAVEL_ORDER)
