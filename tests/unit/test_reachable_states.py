"""Every reachable state of the demo site's lanes, lockdown, maintenance and interlocks, explored; each rule matters."""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest
import structlog

from controller import commands, interlocks
from controller.actions import command_device
from controller.devices import DEVICE_CLASSES
from controller.lanes import Lane
from controller.lockdown import FanOut
from hal.errors import CommsError
from tests.unit.explorer import Explorer, Report, Scope, demo_config

CFG = demo_config()
# The demo site in three projections, each explored to its last reachable state; every device of the site is in
# each (a site lockdown reaches all eight), the projection bounds what is varied. Lane 2 is lane 1 on its own PLC.
SCOPES = {
    "lane-1": Scope(devices=("gate-1", "blocker-1", "signal-1"), lanes=("lane-1",),
                    vehicles=("blocker-1",), faults=("blocker-1",), plcs=()),
    "both lanes": Scope(devices=(), lanes=("lane-1", "lane-2"), vehicles=(), faults=(), plcs=("plc-lane-2",)),
    "airlock bay": Scope(devices=("bay-entry", "bay-exit"), lanes=(), vehicles=(),
                         faults=("bay-entry", "bay-exit"), plcs=("plc-bay",)),
}
# What the exploration finds today; well below it, it has stopped exploring.
FLOORS = {"lane-1": (90, 6000), "both lanes": (90, 4000), "airlock bay": (45, 1500)}


def quiet() -> None:
    """Hundreds of thousands of log lines are not what these tests look at."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


@pytest.fixture(autouse=True)
def quiet_logs():
    saved = structlog.get_config()
    quiet()
    yield
    structlog.configure(**saved)


def explore(name: str) -> Report:
    """One projection explored to its end (in a worker process: the projections share no state)."""
    return Explorer(CFG, SCOPES[name]).explore()


def shown(violations: list[tuple[str, str, str]]) -> str:
    return "\n".join(f"{rule}: {what}\n    after: {path}" for rule, what, path in violations[:5])


def test_every_reachable_state_keeps_every_rule():
    """Airlock pair never both commanded open; nothing opened in lockdown; lockdown sends EFO to every reachable
    blocker and CLOSE / RED to the rest; a refused command, a release, a sensor change and a restart write nothing;
    a restart keeps every lane's latched mode and the lockdown latches."""
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"), initializer=quiet) as workers:
        reports = dict(zip(SCOPES, workers.map(explore, SCOPES), strict=True))  # the largest first
    for name, report in reports.items():
        print(f"{name}: {report.states} states, {report.transitions} transitions ({report.steps} taken, "
              f"{report.builds} sites rebuilt) in {report.seconds:.1f} s")
    print(f"in all: {sum(r.states for r in reports.values())} states, "
          f"{sum(r.transitions for r in reports.values())} transitions")
    for name, report in reports.items():
        assert report.violations == [], f"{name}:\n{shown(report.violations)}"
        states, transitions = FLOORS[name]
        assert report.states >= states and report.transitions >= transitions, f"{name} explored only {report}"


def allow_both_open(monkeypatch):
    monkeypatch.setattr(interlocks, "stays_secured", lambda device: True)


def open_in_lockdown(monkeypatch):
    every_verb = frozenset({"open", "close", "stop", "raise", "lower", "green", "red", "reset", "efo"})
    monkeypatch.setattr(interlocks, "SECURING_VERBS", every_verb)


def no_efo(monkeypatch):
    monkeypatch.setattr(DEVICE_CLASSES["road_blocker"], "LOCKDOWN_VERB", "raise")


def write_then_check(monkeypatch):
    real = commands.command_device

    async def written_first(site, device, verb, by, *, sequence=False):
        try:
            await site.buses[device.plc].command(device.plc, device.slot, device.VERBS[verb])
        except CommsError:
            pass
        return await real(site, device, verb, by, sequence=sequence)

    monkeypatch.setattr(commands, "command_device", written_first)


def secure_on_start(monkeypatch):
    real = Lane.on_devices_read

    async def securing_first(lane):
        if lane.mode == "unknown":  # as on every start: a lane not read yet
            try:
                await lane.run_secure("barrierd")
            except Exception:
                pass
        await real(lane)

    monkeypatch.setattr(Lane, "on_devices_read", securing_first)


def no_red(monkeypatch):
    monkeypatch.setattr(DEVICE_CLASSES["traffic_signal"], "LOCKDOWN_VERB", "reset")  # refused in lockdown: the signal gets nothing


def release_secures_again(monkeypatch):
    real = commands.lockdown_release

    async def released_then_secured(site, args, caller):
        reply = await real(site, args, caller)
        await FanOut(lambda device, verb, by: command_device(site, device, verb, by),
                     list(site.devices.values()), caller.user).result()
        return reply

    monkeypatch.setattr(commands, "lockdown_release", released_then_secured)


def secure_when_mixed(monkeypatch):
    real = Lane.on_devices_read

    async def securing_mixed(lane):
        await real(lane)
        if lane.mode == "mixed":  # a reading alone moves the lane
            try:
                await lane.run_secure("barrierd")
            except Exception:
                pass

    monkeypatch.setattr(Lane, "on_devices_read", securing_mixed)


def forget_maintenance(monkeypatch):
    real = Lane.restore

    def restored(lane, mode, by, reason, since):
        if mode != "maintenance":
            real(lane, mode, by, reason, since)

    monkeypatch.setattr(Lane, "restore", restored)


# rule -> (projection that reaches it, the rule taken away)
MUTANTS = {
    "airlock_never_both_open": ("airlock bay", allow_both_open),
    "no_opening_in_lockdown": ("lane-1", open_in_lockdown),
    "lockdown_efo_to_blockers": ("lane-1", no_efo),
    "lockdown_secures_the_rest": ("lane-1", no_red),
    "refused_writes_nothing": ("airlock bay", write_then_check),
    "restart_writes_nothing": ("lane-1", secure_on_start),
    "release_moves_nothing": ("airlock bay", release_secures_again),
    "no_write_without_command": ("lane-1", secure_when_mixed),
    "restart_keeps_modes": ("both lanes", forget_maintenance),
}


@pytest.mark.parametrize("rule", MUTANTS)
def test_the_exploration_finds_a_rule_taken_away(rule, monkeypatch):
    name, take_away = MUTANTS[rule]
    take_away(monkeypatch)
    report = Explorer(CFG, SCOPES[name], until=rule).explore()
    print(f"{rule} taken away: found after {report.states} states, {report.transitions} transitions")
    assert rule in report.rules_broken(), f"{rule} taken away, yet {report.states} states showed nothing"
