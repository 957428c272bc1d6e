"""Condition monitoring on a fake clock: every travel stored and timed, retention, drift, baselines, service."""

from __future__ import annotations

import dataclasses
import random
import sqlite3
import time

import pytest

from controller.devices.base import Intent
from controller.event_store import EventStore
from controller.travel_log import Travel
from hal.profile import Command
from tests.unit.condition_rig import GATE_CURRENT, OIL, Feed, demo_config, noisy


@pytest.fixture
def store(tmp_path):
    store = EventStore(tmp_path / "events.sqlite")
    yield store
    store.close()


@pytest.fixture
def feed(store):
    feed = Feed(store)
    for name in feed.leaves:
        feed.poll(name)  # the first reading of each: counters known, nothing recorded
    return feed


def travels(store, device: str) -> list[Travel]:
    with sqlite3.connect(store.path) as db:
        rows = db.execute("SELECT device, ts, to_state, efo, plc_ms, command_ms, analog_1, analog_2, travel_analog_1,"
                          " cycle_count, cycles, id FROM travels WHERE device = ? ORDER BY id", (device,)).fetchall()
    return [Travel(*row) for row in rows]


def test_every_travel_is_stored_with_the_plc_and_barrierds_own_times(feed, store):
    gate = feed.devices["gate-1"]
    gate.intent = Intent("open", int(Command.OPEN), "guard", time.time(), loop_at=feed.now)
    feed.travel("gate-1", "open", 2410, polls=4)
    feed.travel("gate-1", "closed", 2390)  # nobody here commanded it: no command time
    opened, closed = travels(store, "gate-1")
    assert (opened.to_state, opened.efo, opened.plc_ms, opened.cycle_count, opened.cycles) == ("open", 0, 2410, 1, 1)
    assert opened.command_ms == 2410  # five poll gaps of ms/5 from the command to the reading at the limit
    assert opened.travel_analog_1 == GATE_CURRENT and opened.analog_1 == 0  # current while moving; none at rest
    assert (closed.to_state, closed.command_ms, closed.cycle_count) == ("closed", None, 2)
    assert feed.codes() == []


def test_polls_missed_during_travels_are_counted_in_cycles(feed, store):
    leaf = feed.leaves["bay-entry"]
    leaf.cycle_count, leaf.last_travel_ms = 3, 1700  # three travels completed between two readings
    feed.poll("bay-entry")
    (travel,) = travels(store, "bay-entry")
    assert (travel.cycles, travel.plc_ms, travel.to_state) == (3, 1700, "closed")


def test_a_travel_slower_than_travel_s_and_its_tolerance_raises_travel_slow_naming_the_stored_travel(feed, store):
    feed.travel("gate-1", "open", 3750)  # exactly travel_s 3.0 s + 25 %: within it
    assert feed.codes() == []
    feed.travel("gate-1", "closed", 3760)
    slow = travels(store, "gate-1")[-1]
    alarm = feed.alarm("TRAVEL_SLOW", "gate-1")
    assert alarm["message"] == (f"travel {slow.id} to closed took 3.76 s, over the 3.75 s travel limit "
                                "(travel_s 3.00 s + 25%)")


def test_an_efo_raise_over_the_efo_limit_raises_efo_slow_and_an_ordinary_raise_is_timed_apart(feed, store):
    feed.travel("blocker-1", "open", 5100)
    feed.travel("blocker-1", "closed", 5900)  # an ordinary raise: against travel_s 6.0, no EFO flag
    feed.travel("blocker-1", "open", 5000)
    feed.travel("blocker-1", "closed", 1490, efo=True)
    assert feed.codes() == []
    feed.leaves["blocker-1"].status &= ~0x200  # RESET clears EFO_ACTIVE
    feed.travel("blocker-1", "open", 5000)
    feed.travel("blocker-1", "closed", 2730, efo=True)
    rows = travels(store, "blocker-1")
    assert [(t.to_state, t.efo) for t in rows] == [("open", 0), ("closed", 0), ("open", 0), ("closed", 1),
                                                   ("open", 0), ("closed", 1)]
    alarm = feed.alarm("EFO_SLOW", "blocker-1")
    assert alarm["message"] == f"travel {rows[-1].id} to raised (EFO) took 2.73 s, over the 2.50 s EFO limit"


def test_retention_keeps_the_newest_travels_of_each_device(tmp_path):
    store = EventStore(tmp_path / "events.sqlite")
    feed = Feed(store, demo_config(travel_rows_per_device=100))
    for name in ("gate-1", "bay-entry"):
        feed.poll(name)
    for _ in range(65):
        feed.cycle("gate-1", 2400, 2400)
    for _ in range(3):
        feed.cycle("bay-entry", 1600, 1600)
    kept = travels(store, "gate-1")
    assert len(kept) == 100 and [t.cycle_count for t in kept] == list(range(31, 131))  # the first 30 deleted
    assert len(travels(store, "bay-entry")) == 6
    store.close()


def test_travel_drift_warns_before_the_limit_is_reached(feed):
    rng = random.Random(7)
    for _ in range(20):
        feed.cycle("gate-1", noisy(rng, 2400), noisy(rng, 2400))
    health = feed.monitor.of("gate-1").health()["directions"]
    assert health["closed"]["timing"]["baseline"] == pytest.approx(2400, rel=0.03)
    for _ in range(5):  # wear: 12.5 % slower, far within the 3.75 s travel limit
        feed.cycle("gate-1", noisy(rng, 2700, 0.005), noisy(rng, 2700, 0.005))
    assert feed.codes() == [], "half the last 10 are slow: their median is not yet past the margin"
    feed.travel("gate-1", "open", noisy(rng, 2700, 0.005))
    assert feed.codes("gate-1") == ["TRAVEL_DRIFT"]
    message = feed.alarm("TRAVEL_DRIFT", "gate-1")["message"]
    assert message.startswith("travels to open: travel time median of the last 10 2.6") and "% over the baseline 2." in message


def test_motor_current_and_blocker_pressure_drift(feed):
    rng = random.Random(11)
    for _ in range(20):
        feed.cycle("bay-exit", noisy(rng, 1600), noisy(rng, 1600), moving_analog=GATE_CURRENT)
        feed.cycle("blocker-2", noisy(rng, 5000), noisy(rng, 5000))
    for _ in range(10):
        feed.cycle("bay-exit", noisy(rng, 1600), noisy(rng, 1600), moving_analog=58)  # 5.8 A: +38 %
        feed.cycle("blocker-2", noisy(rng, 5000), noisy(rng, 5000), moving_analog=1000)  # 100 bar: -26 %
    assert feed.codes("bay-exit") == ["CURRENT_DRIFT"]
    assert feed.codes("blocker-2") == ["PRESSURE_DRIFT"]
    assert "travels to lowered: pressure median of the last 10 100.00 bar, 26 % under the baseline 135.00 bar" in \
        feed.alarm("PRESSURE_DRIFT", "blocker-2")["message"]


def test_a_healthy_site_raises_nothing_over_1000_cycles_with_realistic_noise(feed):
    rng = random.Random(2024)
    nominal = {"gate-1": 2400, "bay-entry": 1600, "blocker-1": 5000}
    blocker = feed.leaves["blocker-1"]
    seen: set[str] = set()
    for number in range(1000):
        for name, ms in nominal.items():
            current = round(rng.gauss(GATE_CURRENT, 2))
            feed.cycle(name, noisy(rng, ms), noisy(rng, ms), moving_analog=None if name == "blocker-1" else current)
        for _ in range(rng.randrange(1, 150)):  # standing still, polled each second, with sensor noise
            blocker.analog_1 = round(rng.gauss(1600, 8))
            blocker.analog_2 = round(rng.gauss(OIL, 5))
            feed.poll("blocker-1", 1.0)
            seen.add(feed.monitor.of("blocker-1").readiness.state)
        if number % 97 == 0:  # now and then a lockdown: an EFO raise after a lowering
            feed.travel("blocker-1", "open", noisy(rng, 5000))
            feed.travel("blocker-1", "closed", noisy(rng, 1500), efo=True)
            blocker.status &= ~0x200
    assert feed.alarms.listing() == []
    assert seen == {"ready"} and feed.monitor.of("blocker-1").readiness.state == "ready"
    assert feed.monitor.of("gate-1").cycle_count == 2000


def test_baselines_recent_windows_and_history_survive_a_restart(feed):
    for ms in range(2300, 2325):
        feed.cycle("gate-1", ms, ms)
    before = feed.monitor.of("gate-1").health()
    again = feed.restart()
    again.poll("gate-1")
    after = again.monitor.of("gate-1").health()
    assert after["directions"] == before["directions"] and before["directions"]["open"]["timing"]["baseline"] == 2309.5
    assert after["directions"]["closed"]["recent_ms"][-3:] == [2322, 2323, 2324]


def test_baseline_reset_starts_a_new_baseline_clears_drift_and_is_kept_over_a_restart(feed, store):
    for _ in range(20):
        feed.cycle("gate-1", 2000, 2000)
    for _ in range(10):
        feed.cycle("gate-1", 2700, 2700)  # a new drive fitted: slower, as designed
    assert feed.codes("gate-1") == ["TRAVEL_DRIFT"]
    mark = feed.monitor.of("gate-1").reset_baseline("tech", "new drive fitted")
    assert feed.codes() == [] and (mark.by, mark.reason, mark.cycle_count) == ("tech", "new drive fitted", 60)
    for _ in range(12):
        feed.cycle("gate-1", 2700, 2700)
    again = feed.restart()
    timing = again.monitor.of("gate-1").health()["directions"]["open"]["timing"]
    assert (timing["baseline"], timing["baseline_samples"]) == (None, 12), "collected again from the stored travels"
    for _ in range(8):
        again.cycle("gate-1", 2700, 2700)
    assert again.monitor.of("gate-1").tracks["travel_ms:open"].baseline == 2700
    assert again.monitor.of("gate-1").health()["baseline_reset"]["reason"] == "new drive fitted"
    assert again.codes() == []


def test_service_due_at_the_interval_per_kind_or_per_device_and_a_service_clears_it(tmp_path):
    store = EventStore(tmp_path / "events.sqlite")
    cfg = demo_config(service_cycles={"folding_gate": 10})
    raw_bay = dataclasses.replace(cfg.device[6], service_cycles=4)  # bay-entry: its own interval
    cfg = dataclasses.replace(cfg, device=[*cfg.device[:6], raw_bay, *cfg.device[7:]])
    feed = Feed(store, cfg)
    feed.leaves["gate-1"].cycle_count = 7  # seven travels before barrierd first saw it
    for name in ("gate-1", "bay-entry", "blocker-1"):
        feed.poll(name)
    feed.cycle("gate-1", 2400, 2400)
    assert feed.codes() == []
    feed.travel("gate-1", "open", 2400)
    assert feed.codes() == ["SERVICE_DUE"]
    assert feed.alarm("SERVICE_DUE", "gate-1")["message"] == "10 travels since commissioning; the interval is 10"
    feed.cycle("bay-entry", 1600, 1600)
    feed.cycle("bay-entry", 1600, 1600)
    assert feed.codes("bay-entry") == ["SERVICE_DUE"]
    for _ in range(20):
        feed.cycle("blocker-1", 5000, 5000)  # no interval for blockers on this site
    assert feed.codes("blocker-1") == []
    mark = feed.monitor.of("gate-1").record_service("tech", "hinges greased")
    assert mark.cycle_count == 10 and feed.codes("gate-1") == []
    again = feed.restart()
    again.poll("gate-1")
    for _ in range(4):
        again.cycle("gate-1", 2400, 2400)
    assert again.monitor.of("gate-1").cycles_since_service == 8 and again.codes("gate-1") == []
    again.cycle("gate-1", 2400, 2400)
    assert again.codes("gate-1") == ["SERVICE_DUE"]
    store.close()


def test_a_service_needs_a_cycle_count_read_from_the_plc(store):
    feed = Feed(store)
    with pytest.raises(Exception, match="no CYCLE_COUNT read"):
        feed.monitor.of("gate-1").record_service("tech", "too early")
    assert store.storage.read("SELECT count(*) FROM condition_marks") == [(0,)]


def test_no_valid_data_keeps_what_is_known_and_readiness_says_unknown(feed):
    feed.cycle("blocker-1", 5000, 5000)
    assert feed.monitor.of("blocker-1").readiness.state == "ready"
    feed.lost("blocker-1")
    watched = feed.monitor.of("blocker-1")
    assert watched.readiness.state == "unknown" and watched.cycle_count == 2
