"""What a site publishes under its MQTT prefix (controller/mqtt_publish.py), read defensively: topics and payloads."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from hal.kinds import KINDS

MAX_PAYLOAD_BYTES = 64 * 1024  # a site's whole alarm list fits many times over
MAX_TEXT = 500  # longest reason or alarm message kept; longer is cut and marked
ITEM_PARTS = ("device", "lane", "plc")  # SITEPREFIX/device/NAME ...
SITE_PARTS = ("status", "lockdown", "alarms")  # SITEPREFIX/status ...
DEVICE_STATES = frozenset({"unknown", "open", "closed", "opening", "closing", "stopped", "red", "green", "fault",
                           "local"})
LANE_MODES = frozenset({"unknown", "open", "securing", "secured", "opening", "mixed", "lockdown", "maintenance",
                        "fault"})
PLC_COMMS = frozenset({"unknown", "ok", "lost", "stale", "invalid"})
NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"  # a site file's names (config.schema.NAME; the centre reads no site file)
NAME_RE = re.compile(NAME)


class Unreadable(ValueError):
    """A message under a site's prefix that is not what a site publishes; the words say why."""


@dataclass(frozen=True)
class Address:
    """Where a message belongs: the site's prefix, the part (device, lane, plc, status, lockdown, alarms), a name."""

    prefix: str
    part: str
    name: str | None = None


def address(topic: str) -> Address | None:
    """The site and part a topic names, or None for a topic that carries no state (events, the centre's own).

    A device, lane or PLC is `PREFIX/device/NAME`; the site-wide parts are `PREFIX/status` and so on. A
    prefix is never empty and never ends in `/centre` (the group lockdown's topics live there)."""
    parts = topic.split("/")
    if len(parts) >= 3 and parts[-2] in ITEM_PARTS and parts[-3] != "centre":
        return Address("/".join(parts[:-2]), parts[-2], parts[-1])
    if len(parts) >= 2 and parts[-1] in SITE_PARTS and parts[-2] != "centre":
        return Address("/".join(parts[:-1]), parts[-1])
    return None


def decode(payload: bytes) -> Any:
    """The JSON a site sent, or Unreadable: too large, not UTF-8, not JSON, or numbers JSON does not have."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise Unreadable(f"message of {len(payload)} bytes (at most {MAX_PAYLOAD_BYTES})")
    try:
        return json.loads(payload.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Unreadable(f"not JSON: {str(exc)[:80]}") from None


def _no_constant(word: str) -> None:
    raise ValueError(f"{word} is not a number")


def text(value: object) -> str | None:
    """People's text kept verbatim but bounded; anything not a string is dropped."""
    if not isinstance(value, str):
        return None
    return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "…"


def when(value: object) -> float | None:
    """A unix time a site stated, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def _object(body: Any, name: str | None) -> dict:
    if not isinstance(body, dict):
        raise Unreadable(f"expected an object, got {type(body).__name__}")
    if name is not None and body.get("name") != name:
        raise Unreadable("the name in the message is not the topic's")
    return body


def _word(body: dict, key: str, allowed: frozenset[str]) -> str:
    value = body.get(key)
    if not isinstance(value, str) or value not in allowed:
        raise Unreadable(f"{key} {str(value)[:40]!r} is not one barrierd publishes")
    return value


def device(body: Any, name: str) -> dict:
    """A device's state and kind; the display word comes from its kind, never from the message."""
    body = _object(body, name)
    state = _word(body, "state", DEVICE_STATES)
    kind = body.get("kind") if body.get("kind") in KINDS else None
    words = KINDS[kind].state_words if kind else {}
    return {"name": name, "kind": kind, "state": state, "display": words.get(state, state),
            "reason": text(body.get("reason")), "role": KINDS[kind].lane_role if kind else None}


def lane(body: Any, name: str) -> dict:
    """A lane's mode and its devices' names (names that are not a device's are refused)."""
    body = _object(body, name)
    mode = _word(body, "mode", LANE_MODES)
    devices = body.get("devices", [])
    if not isinstance(devices, list) or len(devices) > 16 or not all(
            isinstance(d, str) and NAME_RE.match(d) for d in devices):
        raise Unreadable("devices is not a list of device names")
    latch = body.get("lockdown")
    return {"name": name, "mode": mode, "devices": list(dict.fromkeys(devices)), "reason": text(body.get("reason")),
            "by": text(body.get("by")), "lockdown": _latch(latch) if isinstance(latch, dict) else None}


def plc(body: Any, name: str) -> dict:
    body = _object(body, name)
    return {"name": name, "comms": _word(body, "comms", PLC_COMMS), "reason": text(body.get("reason"))}


def lockdown(body: Any) -> dict:
    """The site's lockdown: {"active": True/False/None (not known), by, reason, since}."""
    body = _object(body, None)
    if body.get("active") is False and len(body) == 1:
        return {"active": False}
    if "active" in body and body["active"] is None:
        return {"active": None, "reason": text(body.get("reason"))}
    if isinstance(body.get("by"), str) and when(body.get("since")) is not None:
        return {"active": True, **_latch(body)}
    raise Unreadable("not a lockdown barrierd publishes")


def _latch(body: dict) -> dict:
    return {"by": text(body.get("by")), "reason": text(body.get("reason")), "since": when(body.get("since"))}


def alarms(body: Any) -> list[dict] | None:
    """The active alarms (None: the site said it has no list, e.g. when stopping)."""
    if body is None:
        return None
    if not isinstance(body, list) or len(body) > 1000:
        raise Unreadable("alarms is not a list")
    listed = []
    for alarm in body:
        if not isinstance(alarm, dict) or not isinstance(alarm.get("code"), str):
            raise Unreadable("an alarm without a code")
        listed.append({"code": text(alarm["code"]), "subject": text(alarm.get("subject")),
                       "severity": text(alarm.get("severity")), "message": text(alarm.get("message")),
                       "raised_at": when(alarm.get("raised_at"))})
    return listed


def status(body: Any) -> dict:
    """The site's status: online or not, its name, and how often it refreshes the rest (refresh_s)."""
    body = _object(body, None)
    online = body.get("online")
    if not isinstance(online, bool):
        raise Unreadable("online is neither true nor false")
    refresh = when(body.get("refresh_s"))
    site = body.get("site")
    return {"online": online, "site": site if isinstance(site, str) and NAME_RE.match(site) else None,
            "reason": text(body.get("reason")), "since": when(body.get("since")) or when(body.get("at")),
            "refresh_s": refresh if refresh and refresh <= 3600 else None}


ITEM_READERS = {"device": device, "lane": lane, "plc": plc}
SITE_READERS = {"status": status, "lockdown": lockdown, "alarms": alarms}
