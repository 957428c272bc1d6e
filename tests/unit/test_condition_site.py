"""Condition monitoring in the site: its commands (audited, by role), the health request and status, the opt-in cold
rule, and lockdown sending EFO to every blocker whatever its readiness."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.auth import Caller
from controller.commands import ExitCode, build_registry
from controller.event_store import EventStore
from controller.site import Site
from hal.profile import Command, Status
from tests.unit.condition_rig import Plant, demo_config

GUARD = Caller(uid=1001, gid=1001, pid=42, user="guard", role="operator")
TECH = Caller(uid=1003, gid=1003, pid=44, user="tech", role="technician")
BLOCKERS = ("blocker-1", "blocker-2")


async def ask(site: Site, command: str, caller: Caller = GUARD, **args):
    return await build_registry().dispatch(site, {"command": command, "args": args}, caller)


async def plant_site(store: EventStore, **condition) -> Plant:
    plant = Plant(Site(demo_config(**condition), store), travel_ms={"gate-1": 2400})
    await plant.read()
    return plant


@pytest_asyncio.fixture
async def plant(tmp_path):
    plant = await plant_site(EventStore(tmp_path / "events.sqlite"))
    yield plant
    await plant.site.stop()
    plant.site.store.close()


def commands(site: Site) -> list[tuple]:
    return [(c["user"], c["command"], c["args"].get("reason"), c["outcome"]) for c in site.store.recent_commands()]


@pytest.mark.asyncio
async def test_baseline_reset_and_service_are_a_technicians_and_recorded_with_the_reason(plant):
    site = plant.site
    assert (await ask(site, "service", device="gate-1", reason="oiled")).code is ExitCode.NOT_AUTHORISED
    assert (await ask(site, "service", TECH, device="gate-1")).code is ExitCode.USAGE
    assert (await ask(site, "service", TECH, device="gate-9", reason="x")).code is ExitCode.USAGE
    refused = await ask(site, "baseline_reset", TECH, device="signal-1", reason="x")
    assert refused.code is ExitCode.REFUSED and "rule not_monitored" in refused.message
    assert site.store.storage.read("SELECT count(*) FROM condition_marks") == [(0,)], "bad input changes nothing"
    done = await ask(site, "service", TECH, device="gate-1", reason="hinges greased")
    assert done.code is ExitCode.DONE and done.message == "gate-1: service recorded by tech at 0 cycles"
    reset = await ask(site, "baseline_reset", TECH, device="blocker-1", reason="new pump")
    assert reset.code is ExitCode.DONE and "the next 20 travels each way make the new one" in reset.message
    assert site.store.storage.read("SELECT device, what, by, reason FROM condition_marks ORDER BY id") == [
        ("gate-1", "service", "tech", "hinges greased"), ("blocker-1", "baseline_reset", "tech", "new pump")]
    assert commands(site) == [
        ("guard", "service", "oiled", "not_authorised"), ("tech", "service", None, "usage"),
        ("tech", "service", "x", "usage"), ("tech", "baseline_reset", "x", "refused"),
        ("tech", "service", "hinges greased", "done"), ("tech", "baseline_reset", "new pump", "done")]


@pytest.mark.asyncio
async def test_health_and_status_show_travels_limits_cycles_service_and_readiness(plant):
    site = plant.site
    for verb in ("open", "close", "open"):
        assert (await ask(site, verb, device="gate-1")).code is ExitCode.DONE
        await plant.settle()
    reply = await ask(site, "health", GUARD)
    gate = next(d for d in reply.data["devices"] if d["name"] == "gate-1")
    assert gate["directions"]["open"]["recent_ms"] == [2400, 2400] and gate["directions"]["closed"]["recent_ms"] == [2400]
    assert gate["directions"]["open"]["limit_ms"] == 3750 and gate["directions"]["efo"]["limit_ms"] == 2500
    assert (gate["cycles"], gate["service_cycles"], gate["service_due"], gate["readiness"]) == (3, 200000, False, None)
    assert gate["directions"]["open"]["timing"]["baseline_samples"] == 2
    blocker = next(d for d in reply.data["devices"] if d["name"] == "blocker-1")
    assert blocker["readiness"]["state"] == "ready" and blocker["readiness"]["pressure_bar"] == 160.0
    assert {d["name"] for d in reply.data["devices"]} == {"gate-1", "blocker-1", "gate-2", "blocker-2", "bay-entry",
                                                          "bay-exit"}, "signals do not travel"
    command_ms = site.store.storage.read("SELECT command_ms FROM travels WHERE device = 'gate-1' ORDER BY id")
    assert len(command_ms) == 3 and all(ms is not None and ms >= 0 for (ms,) in command_ms)
    status = site.status()
    shown = {d["name"]: d for d in status["devices"]}
    assert shown["blocker-1"]["readiness"]["state"] == "ready" and shown["gate-1"]["readiness"] is None
    assert shown["signal-1"]["readiness"] is None
    assert status["health"]["gate-1"]["cycles"] == 3 and status["health"]["blocker-2"]["readiness"]["state"] == "ready"
    assert status["alarms"] == []


@pytest.mark.asyncio
async def test_health_of_one_device_answers_for_it_alone_and_names_a_wrong_device(plant):
    site = plant.site
    one = await ask(site, "health", GUARD, device="blocker-1")
    assert one.code is ExitCode.DONE and [d["name"] for d in one.data["devices"]] == ["blocker-1"]
    assert one.data["devices"][0] == next(d for d in site.condition.health()["devices"] if d["name"] == "blocker-1")
    unknown = await ask(site, "health", GUARD, device="gate-9")
    assert unknown.code is ExitCode.USAGE and "no device named 'gate-9'" in unknown.message and unknown.data is None
    signal = await ask(site, "health", GUARD, device="signal-1")
    assert signal.code is ExitCode.REFUSED and "rule not_monitored" in signal.message
    assert commands(site) == [], "health is a read: nothing recorded"


@pytest.mark.asyncio
@pytest.mark.parametrize("opted_in", [False, True])
async def test_oil_too_cold_refuses_opening_only_when_the_site_opts_in(tmp_path, opted_in):
    plant = await plant_site(EventStore(tmp_path / "events.sqlite"), refuse_open_in_cold=opted_in)
    site = plant.site
    plant.leaves["blocker-1"].analog_2 = -153  # -15.3 °C, below the -10 °C cold limit
    await plant.read("plc-lane-1")
    lowered = await ask(site, "lower", device="blocker-1")
    opened = await ask(site, "open", device="gate-1")
    await plant.settle()
    other_lane = await ask(site, "open", device="gate-2")
    await plant.settle()
    if not opted_in:
        assert (lowered.code, opened.code, other_lane.code) == (ExitCode.DONE,) * 3
        assert plant.written == [("blocker-1", Command.OPEN), ("gate-1", Command.OPEN), ("gate-2", Command.OPEN)]
    else:
        assert lowered.code is ExitCode.REFUSED and opened.code is ExitCode.REFUSED
        assert lowered.message == ("refused by rule oil_too_cold: blocker-1 oil at -15.3 °C is below the cold limit "
                                   "-10.0 °C; nothing that opens blocker-1 is allowed until it warms up")
        assert "rule oil_too_cold" in opened.message and other_lane.code is ExitCode.DONE
        assert plant.written == [("gate-2", Command.OPEN)]
        lane = await ask(site, "lane_open", lane="lane-1")
        assert lane.code is ExitCode.REFUSED and "oil_too_cold" in lane.message
        assert [c[3] for c in commands(site)][:2] == ["refused", "refused"], "recorded like other refusals"
        raised = await ask(site, "raise", device="blocker-1")
        assert raised.code is ExitCode.DONE and plant.written[-1] == ("blocker-1", Command.CLOSE)
    await site.stop()
    site.store.close()


READINESS_INPUTS = st.fixed_dictionaries({
    "pressure": st.integers(0, 2500),  # 0.1 bar
    "oil": st.integers(-400, 1200),  # 0.1 °C
    "low_pressure": st.booleans(),
    "oil_temp": st.booleans(),
    "slow_efo": st.booleans(),  # the last EFO took longer than the limit
    "lowered": st.booleans(),
})


async def _lockdown_with(blockers: dict[str, dict], opted_in: bool, lane: str | None) -> tuple[Plant, object]:
    plant = Plant(Site(demo_config(refuse_open_in_cold=opted_in), EventStore(Path(":memory:"))))
    for name, given_inputs in blockers.items():
        leaf = plant.leaves[name]
        if given_inputs["slow_efo"]:
            leaf.status, leaf.cycle_count = int(Status.AT_OPEN), 1
            await plant.read()
            leaf.status, leaf.cycle_count, leaf.last_travel_ms = int(Status.AT_CLOSED | Status.EFO_ACTIVE), 2, 2900
            await plant.read()  # an EFO raise timed at 2.9 s: not ready from now on
            leaf.status = int(Status.AT_CLOSED)
        leaf.status = int(Status.AT_OPEN if given_inputs["lowered"] else Status.AT_CLOSED)
        leaf.status |= (int(Status.LOW_PRESSURE) if given_inputs["low_pressure"] else 0) | (
            int(Status.OIL_TEMP) if given_inputs["oil_temp"] else 0)
        leaf.analog_1, leaf.analog_2 = given_inputs["pressure"], given_inputs["oil"]
    await plant.read()
    plant.readiness_before = {name: plant.site.condition.of(name).readiness.state for name in blockers}
    args = {"reason": "property test"} | ({"lane": lane} if lane else {})
    reply = await ask(plant.site, "lockdown", **args)
    await plant.settle()
    await plant.site.stop()
    return plant, reply


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(one=READINESS_INPUTS, two=READINESS_INPUTS, opted_in=st.booleans(), lane=st.sampled_from([None, "lane-1"]))
def test_lockdown_writes_efo_to_every_blocker_whatever_its_readiness(one, two, opted_in, lane):
    plant, reply = asyncio.run(_lockdown_with({"blocker-1": one, "blocker-2": two}, opted_in, lane))
    scope = ("blocker-1",) if lane else BLOCKERS
    for name in scope:
        assert plant.written.count((name, Command.EFO)) == 1, f"no EFO to {name}: {plant.written}"
    assert reply.code is ExitCode.DONE, reply.message
    for name, inputs in (("blocker-1", one), ("blocker-2", two)):  # the inputs did make it not ready
        if inputs["low_pressure"] or inputs["slow_efo"] or inputs["pressure"] < 1200:
            assert plant.readiness_before[name] == "not_ready", (name, inputs)
