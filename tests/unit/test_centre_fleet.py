"""The centre's fleet picture on a fake clock: current values, stale ones, offline sites, and hostile messages."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from centre import fleet as fleet_module
from centre.fleet import Fleet

SHOWN_WORDS = {"unknown", "open", "closed", "opening", "closing", "stopped", "red", "green", "fault", "local",
               "stale", "offline", "unreadable", "unheard"}
LANE_WORDS = {"unknown", "open", "securing", "secured", "opening", "mixed", "lockdown", "maintenance", "fault",
              "stale", "offline", "unreadable", "unheard"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fleet(clock) -> Fleet:
    return Fleet(clock=clock)


def send(fleet: Fleet, topic: str, body: object, expiry_s: float | None = 6) -> bool:
    return fleet.receive(topic, json.dumps(body).encode(), expiry_s)


def publish_site(fleet: Fleet, prefix: str, name: str = "north", refresh_s: float | None = 2.0, *,
                 gate: str = "closed", blocker: str = "closed", expiry_s: float | None = 6) -> None:
    """What barrierd publishes for a one-lane site (controller/mqtt_publish.py)."""
    status = {"online": True, "since": 1.7e9, "site": name}
    if refresh_s is not None:
        status["refresh_s"] = refresh_s
    send(fleet, f"{prefix}/status", status, None)
    for device, kind, state in (("gate-1", "folding_gate", gate), ("blocker-1", "road_blocker", blocker),
                                ("signal-1", "traffic_signal", "red")):
        send(fleet, f"{prefix}/device/{device}", {"name": device, "kind": kind, "state": state, "display": state},
             expiry_s)
    send(fleet, f"{prefix}/lane/lane-1", {"name": "lane-1", "mode": "secured",
                                          "devices": ["gate-1", "blocker-1", "signal-1"], "by": "barrierd"}, expiry_s)
    send(fleet, f"{prefix}/plc/plc-1", {"name": "plc-1", "comms": "ok"}, expiry_s)
    send(fleet, f"{prefix}/lockdown", {"active": False}, expiry_s)
    send(fleet, f"{prefix}/alarms", [], expiry_s)


def site_of(fleet: Fleet, prefix: str) -> dict:
    return next(s for s in fleet.picture()["sites"] if s["prefix"] == prefix)


def devices_of(site: dict) -> dict[str, dict]:
    return {d["name"]: d for lane in site["lanes"] for d in lane["devices"]} | {d["name"]: d for d in site["others"]}


def test_a_site_shows_its_lanes_with_devices_in_travel_order_and_guard_words(fleet):
    publish_site(fleet, "border/north")
    site = site_of(fleet, "border/north")
    assert site["site"] == "north" and site["state"] == "online" and site["refresh_s"] == 2.0
    lane = site["lanes"][0]
    assert lane["mode"] == "secured" and [d["name"] for d in lane["devices"]] == ["signal-1", "blocker-1", "gate-1"]
    assert [d["display"] for d in lane["devices"]] == ["red", "raised", "closed"]
    assert site["lockdown"]["state"] == "off" and site["alarms"] == {"state": "current", "list": []}
    assert site["plcs"] == [{"name": "plc-1", "comms": "ok", "reason": None, "age_s": 0.0, "current": True}]
    assert fleet.complete()


def test_a_value_not_refreshed_in_time_is_stale_and_its_last_value_is_not_shown(fleet, clock):
    publish_site(fleet, "border/north", refresh_s=2.0, gate="open", expiry_s=60)
    clock.now += 4.9  # within 2.5 refresh periods
    assert devices_of(site_of(fleet, "border/north"))["gate-1"]["state"] == "open"
    clock.now += 0.2
    site = site_of(fleet, "border/north")
    gate = devices_of(site)["gate-1"]
    assert gate["state"] == "stale" and gate["display"] == "stale" and gate["current"] is False
    assert "open" not in json.dumps(gate)
    assert gate["role"] == "gate", "its kind still places it in the lane"
    assert site["lanes"][0]["mode"] == "stale" and site["lockdown"] == {"state": "stale"}
    assert site["state"] == "stale", "online in its status, but nothing from it is current"


def test_the_broker_expiry_ends_a_value_before_the_refresh_window(fleet, clock):
    publish_site(fleet, "border/north", refresh_s=10.0, expiry_s=1)  # retained, 1 s left when delivered
    clock.now += 0.9
    assert devices_of(site_of(fleet, "border/north"))["blocker-1"]["state"] == "closed"
    clock.now += 0.2
    assert devices_of(site_of(fleet, "border/north"))["blocker-1"]["state"] == "stale"


def test_without_refresh_period_or_expiry_the_fallback_age_decides(fleet, clock):
    publish_site(fleet, "old/site", refresh_s=None, expiry_s=None)
    clock.now += fleet_module.FALLBACK_MAX_AGE_S - 1
    assert devices_of(site_of(fleet, "old/site"))["gate-1"]["state"] == "closed"
    clock.now += 2
    assert devices_of(site_of(fleet, "old/site"))["gate-1"]["state"] == "stale"


@pytest.mark.parametrize("expiry", [float("inf"), float("nan"), -1, True])
def test_an_expiry_that_is_no_duration_is_ignored(fleet, clock, expiry):
    publish_site(fleet, "old/site", refresh_s=None, expiry_s=expiry)
    clock.now += fleet_module.FALLBACK_MAX_AGE_S + 1
    assert devices_of(site_of(fleet, "old/site"))["gate-1"]["state"] == "stale"


def test_the_last_will_shows_the_site_offline_and_nothing_of_it_as_current(fleet):
    publish_site(fleet, "border/north")
    publish_site(fleet, "border/south", name="south")
    send(fleet, "border/north/status", {"online": False, "reason": "connection lost"}, None)
    north, south = site_of(fleet, "border/north"), site_of(fleet, "border/south")
    assert north["state"] == "offline" and north["reason"] == "connection lost" and north["site"] == "north"
    assert {d["state"] for d in devices_of(north).values()} == {"offline"}
    assert north["lanes"][0]["mode"] == "offline" and north["lockdown"]["state"] == "offline"
    assert north["alarms"] == {"state": "offline", "list": None} and north["plcs"][0]["comms"] == "offline"
    assert south["state"] == "online" and devices_of(south)["gate-1"]["state"] == "closed"
    assert fleet.complete(), "an offline site has said all it can"


def test_a_site_back_online_shows_values_again_once_republished(fleet, clock):
    publish_site(fleet, "border/north")
    send(fleet, "border/north/status", {"online": False, "reason": "connection lost"}, None)
    clock.now += 1
    publish_site(fleet, "border/north", gate="open")
    assert devices_of(site_of(fleet, "border/north"))["gate-1"]["state"] == "open"


def test_a_new_session_forgets_what_the_site_said_before_it_went_away(fleet, clock):
    publish_site(fleet, "border/north", gate="open", expiry_s=60)
    send(fleet, "border/north/status", {"online": False, "reason": "connection lost"}, None)
    clock.now += 0.5  # barrierd is back at once: its old retained gate-1 has not expired, nor its refresh window
    send(fleet, "border/north/status", {"online": True, "site": "north", "refresh_s": 2.0, "since": 1.8e9}, None)
    site = site_of(fleet, "border/north")
    assert site["state"] == "online" and "open" not in json.dumps(site)
    send(fleet, "border/north/device/gate-1", {"name": "gate-1", "kind": "folding_gate", "state": "closed"})
    assert devices_of(site_of(fleet, "border/north"))["gate-1"]["state"] == "closed"


def test_a_restart_unseen_by_the_will_is_a_new_session_too(fleet):
    publish_site(fleet, "border/north", gate="open")
    send(fleet, "border/north/status", {"online": True, "site": "north", "refresh_s": 2.0, "since": 1.8e9}, None)
    assert site_of(fleet, "border/north")["lanes"] == [] and not fleet.complete()


def test_a_lockdown_and_alarms_are_shown_with_who_and_why(fleet):
    publish_site(fleet, "border/north")
    send(fleet, "border/north/lockdown", {"by": "guard", "reason": "vehicle fled", "since": 1.7e9, "persisted": True})
    send(fleet, "border/north/alarms", [{"id": 1, "code": "LAMP_FAULT", "subject": "signal-1", "severity": "fault",
                                         "message": "lamp", "raised_at": 1.7e9, "active": True}])
    site = site_of(fleet, "border/north")
    assert site["lockdown"] == {"state": "on", "by": "guard", "reason": "vehicle fled", "since": 1.7e9}
    assert site["alarms"]["list"][0]["code"] == "LAMP_FAULT" and site["alarms"]["list"][0]["subject"] == "signal-1"
    send(fleet, "border/north/lockdown", {"active": None, "reason": "barrierd stopped"})
    assert site_of(fleet, "border/north")["lockdown"]["state"] == "unknown"


def test_complete_only_once_every_lane_has_its_devices(fleet):
    send(fleet, "b/x/status", {"online": True, "site": "x", "refresh_s": 2}, None)
    send(fleet, "b/x/lockdown", {"active": False})
    send(fleet, "b/x/alarms", [])
    send(fleet, "b/x/lane/lane-1", {"name": "lane-1", "mode": "secured", "devices": ["gate-1", "signal-1"]})
    send(fleet, "b/x/device/gate-1", {"name": "gate-1", "kind": "folding_gate", "state": "closed"})
    assert not fleet.complete()
    lane = site_of(fleet, "b/x")["lanes"][0]
    assert [(d["name"], d["state"]) for d in lane["devices"]] == [("gate-1", "closed"), ("signal-1", "unheard")], \
        "a lane names what it misses (last: its kind, and so its place, is not known)"
    send(fleet, "b/x/device/signal-1", {"name": "signal-1", "kind": "traffic_signal", "state": "red"})
    assert fleet.complete()


def test_topics_that_carry_no_state_are_ignored(fleet):
    publish_site(fleet, "b/x")
    for topic in ("b/x/events", "b/x/centre/lockdown", "b/x/centre/lockdown/reply", "status", "b/x/other/thing"):
        assert not send(fleet, topic, {"online": False})
    assert site_of(fleet, "b/x")["state"] == "online" and [s["prefix"] for s in fleet.picture()["sites"]] == ["b/x"]


def test_an_empty_retained_message_forgets_the_value(fleet):
    publish_site(fleet, "b/x")
    fleet.receive("b/x/device/gate-1", b"")
    assert devices_of(site_of(fleet, "b/x"))["gate-1"]["state"] == "unheard"


HOSTILE = [
    ("b/x/device/gate-1", b"\xff\xfe not utf-8"),
    ("b/x/device/gate-1", b"{not json"),
    ("b/x/device/gate-1", b"NaN"),
    ("b/x/device/gate-1", b'{"name": "gate-1", "state": NaN}'),
    ("b/x/device/gate-1", b"[" * 100_000),
    ("b/x/device/gate-1", b'"closed"'),
    ("b/x/device/gate-1", b'{"name": "gate-1", "state": "wide open"}'),
    ("b/x/device/gate-1", b'{"name": "gate-1", "state": ["closed"]}'),
    ("b/x/device/gate-1", b'{"name": "gate-2", "state": "closed"}'),
    ("b/x/device/gate-1", b'{"name": "gate-1", "state": "\\u001b[31mclosed"}'),
    ("b/x/device/gate-1", b'{"name": "gate-1", "state": "closed", "pad": "' + b"x" * 70_000 + b'"}'),
    ("b/x/lane/lane-1", b'{"name": "lane-1", "mode": "secured", "devices": "gate-1"}'),
    ("b/x/lane/lane-1", b'{"name": "lane-1", "mode": "secured", "devices": [{"x": 1}]}'),
    ("b/x/lane/lane-1", b'{"name": "lane-1", "mode": 3, "devices": []}'),
    ("b/x/lockdown", b'{"active": "yes"}'),
    ("b/x/lockdown", b'{"by": 3, "since": "now"}'),
    ("b/x/alarms", b'{"code": "X"}'),
    ("b/x/alarms", b'[{"message": "no code"}]'),
]


@pytest.mark.parametrize(("topic", "payload"), HOSTILE)
def test_a_hostile_message_is_unreadable_never_garbage_and_never_the_old_value(fleet, topic, payload):
    publish_site(fleet, "b/x")
    assert fleet.receive(topic, payload, 6)
    site = site_of(fleet, "b/x")
    part = topic.split("/")[2]
    shown = {"device": lambda: devices_of(site)["gate-1"]["state"], "lane": lambda: site["lanes"][0]["mode"],
             "lockdown": lambda: site["lockdown"]["state"], "alarms": lambda: site["alarms"]["state"]}[part]()
    assert shown == "unreadable"
    assert site["rejected"] == 1 and site["problem"]
    json.dumps(fleet.picture())


def test_a_hostile_status_leaves_the_site_unreadable_not_online(fleet):
    publish_site(fleet, "b/x")
    fleet.receive("b/x/status", b'{"online": "true"}')
    assert site_of(fleet, "b/x")["state"] == "unreadable"


def test_a_name_that_is_not_barrierds_is_refused(fleet):
    publish_site(fleet, "b/x")
    fleet.receive("b/x/device/GATE 1", json.dumps({"name": "GATE 1", "state": "open"}).encode(), 6)
    site = site_of(fleet, "b/x")
    assert "GATE 1" not in devices_of(site) and site["rejected"] == 1


def test_sites_and_parts_are_bounded(fleet, monkeypatch):
    monkeypatch.setattr(fleet_module, "MAX_SITES", 3)
    monkeypatch.setattr(fleet_module, "MAX_PARTS_PER_SITE", 4)
    for i in range(5):
        send(fleet, f"flood/{i}/status", {"online": True}, None)
    assert len(fleet.picture()["sites"]) == 3 and fleet.ignored == 2
    for i in range(6):
        send(fleet, f"flood/0/device/d-{i}", {"name": f"d-{i}", "state": "open"})
    assert len(site_of(fleet, "flood/0")["others"]) == 4 and site_of(fleet, "flood/0")["rejected"] == 2


SEGMENTS = st.sampled_from(["b", "x", "device", "lane", "plc", "status", "lockdown", "alarms", "events", "centre",
                            "gate-1", "", "+", "é", "\x00"])
JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                           st.sampled_from(["name", "state", "mode", "kind", "devices", "online", "active", "by",
                                            "since", "reason", "refresh_s", "comms", "code"]), inner, max_size=6),
                       max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.lists(SEGMENTS, min_size=1, max_size=5).map("/".join),
                          JSONISH.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=40),
                          st.none() | st.floats(allow_nan=True) | st.integers(-5, 100),
                          st.floats(0, 20)), max_size=25))
def test_fuzz_never_crashes_and_shows_only_words_barrierd_uses(messages):
    clock = FakeClock()
    fleet = Fleet(clock=clock)
    publish_site(fleet, "b/x")
    for topic, payload, expiry, later in messages:
        fleet.receive(topic, payload, expiry)
        clock.now += later
    picture = json.loads(json.dumps(fleet.picture(), allow_nan=False))
    for site in picture["sites"]:
        assert site["state"] in {"online", "offline", "stale", "unknown", "unreadable"}
        for device in devices_of(site).values():
            assert device["state"] in SHOWN_WORDS
        for lane in site["lanes"]:
            assert lane["mode"] in LANE_WORDS
        assert site["lockdown"]["state"] in {"on", "off", "unknown", "stale", "offline", "unreadable", "unheard"}
