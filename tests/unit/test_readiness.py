"""EFO readiness: the table of inputs to ready / degraded / not_ready with reasons, the idle decay, a blocker's readings."""

from __future__ import annotations

import random

import pytest

from controller.event_store import EventStore
from controller.readiness import DEGRADED, NOT_READY, READY, IdlePressure, Limits, assess
from hal.profile import Status
from tests.unit.condition_rig import Feed

LIMITS = Limits(nominal_bar=150.0, min_bar=120.0, max_decay_bar_per_min=2.0, cold_limit_c=-10.0, efo_limit_ms=2500)
HEALTHY = {"pressure_bar": 160.0, "oil": 35.0, "low_pressure": False, "oil_out_of_range": False,
           "decay_bar_per_min": 0.1, "last_efo": (12, 1480)}

TABLE = {  # case: (inputs changed from a healthy blocker, state, the reasons' words)
    "healthy": ({}, READY, []),
    "never an EFO yet, no decay measured yet": ({"last_efo": None, "decay_bar_per_min": None}, READY, []),
    "pressure below nominal": ({"pressure_bar": 140.0}, DEGRADED, ["accumulator at 140.0 bar, below nominal 150.0 bar"]),
    "pressure below minimum": ({"pressure_bar": 110.0}, NOT_READY,
                               ["accumulator at 110.0 bar, below the minimum 120.0 bar"]),
    "below minimum while the pump refills after an EFO": (
        {"pressure_bar": 118.5, "recharging": True}, DEGRADED,
        ["accumulator at 118.5 bar, below the minimum 120.0 bar: recharging after the EFO"]),
    "below nominal while the pump refills after an EFO": (
        {"pressure_bar": 126.0, "recharging": True}, DEGRADED,
        ["accumulator at 126.0 bar, below nominal 150.0 bar: recharging after the EFO"]),
    "LOW_PRESSURE while recharging still counts": (
        {"pressure_bar": 95.0, "low_pressure": True, "recharging": True}, NOT_READY,
        ["the PLC reports LOW_PRESSURE", "accumulator at 95.0 bar, below the minimum 120.0 bar"]),
    "LOW_PRESSURE bit": ({"low_pressure": True}, NOT_READY, ["the PLC reports LOW_PRESSURE"]),
    "leaking while idle": ({"decay_bar_per_min": 3.5}, DEGRADED,
                           ["accumulator losing 3.5 bar/min while idle (more than 2.0): a leak?"]),
    "cold oil": ({"oil": -14.5}, DEGRADED, ["oil at -14.5 °C, below the cold limit -10.0 °C: EFO may be slow"]),
    "OIL_TEMP bit": ({"oil_out_of_range": True}, DEGRADED,
                     ["the PLC reports the oil temperature outside its working range"]),
    "last EFO too slow": ({"last_efo": (40, 2730)}, NOT_READY,
                          ["the last EFO (travel 40) took 2.73 s, over the 2.50 s limit"]),
    "last EFO at the limit": ({"last_efo": (41, 2500)}, READY, []),
    "several at once, not-ready reasons first": (
        {"oil": -20.0, "pressure_bar": 100.0, "low_pressure": True}, NOT_READY,
        ["the PLC reports LOW_PRESSURE", "accumulator at 100.0 bar, below the minimum 120.0 bar",
         "oil at -20.0 °C, below the cold limit -10.0 °C: EFO may be slow"]),
}


@pytest.mark.parametrize("case", TABLE)
def test_readiness_table(case):
    changes, state, reasons = TABLE[case]
    readiness = assess(LIMITS, **{**HEALTHY, **changes})
    assert (readiness.state, list(readiness.reasons)) == (state, reasons)


def test_idle_decay_is_the_slope_of_two_minutes_or_more_of_standing_still():
    rng = random.Random(3)
    idle = IdlePressure()
    for second in range(119):
        idle.add(float(second), 160.0 - second * 5 / 60 + rng.gauss(0, 0.8))  # 5 bar/min lost, with noise
    assert idle.decay_bar_per_min is None, "not judged on less than two minutes"
    for second in range(119, 300):
        idle.add(float(second), 160.0 - second * 5 / 60 + rng.gauss(0, 0.8))
    assert idle.decay_bar_per_min == pytest.approx(5.0, abs=0.3)
    idle.moving()
    assert idle.decay_bar_per_min is None and idle.latest is not None


def test_a_blocker_readiness_from_its_readings_raises_efo_not_ready_only_when_not_ready(tmp_path):
    store = EventStore(tmp_path / "events.sqlite")
    feed = Feed(store)
    blocker = feed.leaves["blocker-1"]
    watched = feed.monitor.of("blocker-1")
    assert watched.readiness.state == "unknown"
    feed.poll("blocker-1")
    assert watched.readiness.state == READY
    blocker.analog_2 = -150  # -15.0 °C
    feed.poll("blocker-1")
    assert watched.readiness.state == DEGRADED and feed.codes() == []
    blocker.analog_2, blocker.analog_1 = 352, 1100  # 110 bar at rest
    feed.poll("blocker-1")
    assert watched.readiness.state == NOT_READY and feed.codes() == ["EFO_NOT_READY"]
    assert feed.alarm("EFO_NOT_READY", "blocker-1")["message"] == "accumulator at 110.0 bar, below the minimum 120.0 bar"
    blocker.analog_1 = 1600
    feed.poll("blocker-1")
    assert feed.codes() == []
    blocker.status |= int(Status.LOW_PRESSURE)
    feed.poll("blocker-1")
    assert feed.codes() == ["EFO_NOT_READY"] and list(watched.readiness.reasons) == ["the PLC reports LOW_PRESSURE"]
    store.close()


def test_pressure_while_travelling_is_not_taken_for_the_accumulator_at_rest(tmp_path):
    store = EventStore(tmp_path / "events.sqlite")
    feed = Feed(store)
    feed.poll("blocker-1")
    feed.travel("blocker-1", "open", 5000, moving_analog=900)  # 90 bar while the pump works the cylinder
    assert feed.monitor.of("blocker-1").readiness.state == READY and feed.codes() == []
    store.close()


def test_a_slow_efo_makes_the_blocker_not_ready_until_a_good_efo_or_a_service(tmp_path):
    store = EventStore(tmp_path / "events.sqlite")
    feed = Feed(store)
    feed.poll("blocker-1")
    feed.travel("blocker-1", "open", 5000)
    feed.travel("blocker-1", "closed", 2900, efo=True)
    watched = feed.monitor.of("blocker-1")
    assert watched.readiness.state == NOT_READY and set(feed.codes()) == {"EFO_SLOW", "EFO_NOT_READY"}
    again = feed.restart()
    again.poll("blocker-1")
    assert again.monitor.of("blocker-1").readiness.state == NOT_READY, "the slow EFO is remembered over a restart"
    again.monitor.of("blocker-1").record_service("tech", "accumulator recharged")
    again.poll("blocker-1")
    assert again.monitor.of("blocker-1").readiness.state == READY
    assert again.codes() == ["EFO_SLOW"], "EFO_NOT_READY cleared; EFO_SLOW is latched until acknowledged"
    store.close()


def test_pressure_below_the_minimum_right_after_an_efo_is_degraded_while_the_pump_refills_then_not_ready(tmp_path):
    store = EventStore(tmp_path / "events.sqlite")
    feed = Feed(store)
    blocker, watched = feed.leaves["blocker-1"], feed.monitor.of("blocker-1")
    feed.poll("blocker-1")
    feed.travel("blocker-1", "open", 6000)
    blocker.analog_1 = 1500  # 150 bar: the pump's cut-in, as low as a healthy accumulator stands
    feed.poll("blocker-1")
    feed.travel("blocker-1", "closed", 1500, efo=True)
    blocker.analog_1 = 1185  # the EFO drew 35 bar, less what the pump gave back during the raise
    feed.poll("blocker-1")
    assert watched.readiness.state == DEGRADED and feed.codes() == []
    assert watched.readiness.reasons == (
        "accumulator at 118.5 bar, below the minimum 120.0 bar: recharging after the EFO",)
    feed.poll("blocker-1", dt=29.0)
    assert watched.readiness.state == DEGRADED
    feed.poll("blocker-1", dt=1.5)  # 30 s on and still below the minimum: the pump is not refilling it
    assert watched.readiness.state == NOT_READY and feed.codes() == ["EFO_NOT_READY"]
    store.close()
