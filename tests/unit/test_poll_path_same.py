"""The poll path's shortcuts for an unchanged block show exactly what the whole path shows.

Two sites take the same readings on the same fake clock: one as the bus hands them over (an unchanged block is the
very slot tuple of the previous reading, flagged `unchanged`), the other as equal copies never flagged, with the
readiness it last assessed forgotten before each (every shortcut is missed, so every check runs in full). Their status, alarms and
recorded events must agree after every reading, over travels commanded or not, EFO raises and the recharge after
them, a leaking accumulator, cold oil, local control, lost data and minutes of nothing happening; and over what the
shortcut for a whole calm PLC must not skip: a command in force on a device that does not move (and a movement
nobody asked for soon after it ends), a drive running on an unchanged block until its travel times out, a lane
latched and released between readings, a service recorded between readings.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from controller import condition
from controller.event_store import EventStore
from controller.site import Site
from hal.profile import Kind, SignalStatus, Status
from hal.snapshot import PlcSnapshot, SlotSnapshot
from hal.unit import PlcReading, Quality
from tests.unit.condition_rig import IDLE_PRESSURE, OIL, demo_config

STEP_S = 0.1
STEPS = 3000  # five minutes of polls at 10 Hz
LIMITS = int(Status.AT_OPEN | Status.AT_CLOSED)
MOVING = int(Status.MOVING_OPEN | Status.MOVING_CLOSE)
VOLATILE = {"since", "raised_at", "cleared_at", "acked_at", "ts", "id", "at", "path"}  # wall-clock times, row ids, files


def shown(value):
    """A status or alarm listing without wall-clock times and row ids (the two sites run a few µs apart)."""
    if isinstance(value, dict):
        return {k: shown(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [shown(v) for v in value]
    return value


class Plant:
    """The slots of every PLC of a site, changed now and then by a seeded random walk."""

    def __init__(self, site: Site, rng: random.Random):
        self.rng = rng
        self.devices = site.devices
        self.fields: dict[str, list[int | None]] = {}
        for name, device in site.devices.items():
            if device.SPEC.behaviour == "signal":
                self.fields[name] = [Kind.TRAFFIC_SIGNAL, int(SignalStatus.RED), None, 0, 0, 0, 0, 0, 0, 0]
            else:
                blocker = device.KIND == Kind.ROAD_BLOCKER
                self.fields[name] = [device.KIND, int(Status.AT_CLOSED), 1000, 0, 0, 0,
                                     IDLE_PRESSURE if blocker else 0, OIL if blocker else 0, 0, 0]
        self.travelling: dict[str, tuple[int, str, bool]] = {}  # device -> (steps left, to, efo)
        self.stuck: dict[str, int] = {}  # device -> steps its drive still runs without moving it

    def start(self, name: str, to: str, efo: bool, steps: int) -> None:
        f = self.fields[name]
        f[1] = (f[1] & ~(LIMITS | int(Status.EFO_ACTIVE))) | int(Status.MOVING_CLOSE if to == "closed"
                                                                 else Status.MOVING_OPEN)
        self.travelling[name] = (steps, to, efo)

    def step(self, step: int, commanded: list[str], asked: list[tuple[str, str]]) -> None:
        """One PLC scan's worth of change (mostly none); names of devices a person commands go in `commanded`,
        (device, verb) of commands that move nothing in `asked`."""
        rng = self.rng
        # bay-exit's: a close while closed (in force on a device that does not move), an uncommanded open soon
        # after that command's end; then a close whose drive runs 10 s without moving the boom (travel timeout)
        if step == 2600:
            asked.append(("bay-exit", "close"))
        if step == 2615:
            self.start("bay-exit", "open", False, 10)
        if step == 2700:
            f = self.fields["bay-exit"]
            f[1] = (f[1] & ~LIMITS) | int(Status.MOVING_CLOSE)
            self.stuck["bay-exit"] = 100
            asked.append(("bay-exit", "close"))
        for name, left in list(self.stuck.items()):
            if left:
                self.stuck[name] = left - 1
            else:
                del self.stuck[name]
                self.fields[name][1] &= ~MOVING  # type: ignore[operator]
        # what is sure to happen: an EFO raise of blocker-1, a lower and a raise of blocker-1 not commanded,
        # and blocker-2's accumulator leaking 3 bar/min for minutes while nothing else changes on it
        if step in (20, 1000, 1500):
            self.start("blocker-1", {20: "open", 1000: "closed", 1500: "open"}[step], False, 20)
            commanded += ["blocker-1"] if step == 20 else []
        if step == 60:
            self.start("blocker-1", "closed", True, 10)
            commanded.append("blocker-1")
        if 100 <= step <= 2500 and step % 20 == 0:
            self.fields["blocker-2"][6] -= 1  # type: ignore[operator]
        for name, (left, to, efo) in list(self.travelling.items()):
            f = self.fields[name]
            if left > 0:
                self.travelling[name] = (left - 1, to, efo)
                f[2] = max(0, min(1000, (f[2] or 0) + (60 if to == "closed" else -60)))
                continue
            del self.travelling[name]
            f[1] = (f[1] & ~(MOVING | LIMITS)) | int(Status.AT_CLOSED if to == "closed" else Status.AT_OPEN)
            f[1] |= int(Status.EFO_ACTIVE) if efo else 0
            f[2], f[8], f[9] = (1000 if to == "closed" else 0), rng.randint(2000, 9000), (f[9] or 0) + 1
            if self.devices[name].KIND == Kind.ROAD_BLOCKER:
                f[6] = IDLE_PRESSURE - (450 if efo else 50)  # the accumulator drawn down (115 bar after the EFO)
        roll = rng.random()
        name = rng.choice(list(self.fields))
        f = self.fields[name]
        device = self.devices[name]
        leaf = device.SPEC.behaviour == "leaf"
        if name in ("blocker-1", "blocker-2", "bay-exit"):
            return  # the script's
        if roll < 0.01 and leaf and name not in self.travelling:
            self.start(name, "open" if f[1] & int(Status.AT_CLOSED) else "closed", False, rng.randint(3, 40))
            if rng.random() < 0.7:
                commanded.append(name)
        elif roll < 0.015:
            f[1] ^= rng.choice((int(Status.LOW_PRESSURE), int(Status.LOCAL))) if leaf else int(SignalStatus.LOCAL)
        elif roll < 0.02 and not leaf:
            f[1] ^= int(SignalStatus.RED | SignalStatus.GREEN)

    def slots(self, plc: str) -> tuple[SlotSnapshot, ...]:
        devices = sorted((d for d in self.devices.values() if d.plc == plc), key=lambda d: d.slot)
        return tuple(SlotSnapshot(*self.fields[d.name]) for d in devices)  # type: ignore[arg-type]


class Fed:
    """A site with its recorded events; `unchanged` says whether it is handed blocks as the bus hands them."""

    def __init__(self, path: Path, unchanged: bool):
        self.site = Site(demo_config(), EventStore(path))
        self.unchanged = unchanged
        self.events: list[tuple] = []
        self.site.store.listeners.append(lambda e: self.events.append((e["kind"], e["subject"], e["summary"])))
        self.last: dict[str, tuple[SlotSnapshot, ...] | None] = dict.fromkeys(self.site.plcs)

    async def read(self, plc: str, slots: tuple[SlotSnapshot, ...] | None, heartbeat: int) -> None:
        now = asyncio.get_running_loop().time()
        same = slots is not None and self.last[plc] is not None and slots == self.last[plc]
        if slots is None:
            reading = PlcReading(plc, Quality.STALE, None, "no reply", False, 1, 3000)
        else:
            if self.unchanged and same:
                slots = self.last[plc]  # the bus's unchanged block: the previous reading's own tuple
            else:
                slots = tuple(SlotSnapshot(*s) for s in slots)  # decoded afresh: new objects, equal values
            reading = PlcReading(plc, Quality.GOOD, PlcSnapshot(0x4250, 1, heartbeat, 0, len(slots), 10, 0, slots, now),
                                 None, False, 0, 3000, unchanged=self.unchanged and same)
        self.last[plc] = slots
        if not self.unchanged:
            for monitored in self.site.condition.devices.values():
                monitored._assessed = None  # noqa: SLF001 - the whole path: readiness assessed afresh every time
        await self.site._on_reading(reading)  # noqa: SLF001 - fed as the bus feeds it

    def view(self) -> dict:
        return shown({"status": self.site.status(), "alarms": self.site.alarms.listing(), "events": self.events,
                      "in_flight": sorted(self.site.store.in_flight)})

    def readiness(self) -> list:
        """Every blocker's EFO readiness, reasons and values (compared on every step: it is cheap)."""
        return [c.readiness for c in self.site.condition.devices.values()]

    def in_force(self) -> list[bool]:
        """Whether each device's last command may still move it (the airlock rule reads it between readings)."""
        now = asyncio.get_running_loop().time()
        return [d.command_in_force(now) for d in self.site.devices.values()]

    def command(self, device: str, verb: str) -> None:
        """What actions.command_device does once the PLC accepted a command."""
        self.site.devices[device].record_intent(verb, "tester")
        self.site.store.save_in_flight(device, verb, "tester")


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize("seed", [1, 2])
async def test_an_unchanged_block_shows_what_the_whole_path_shows(tmp_path: Path, seed: int,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # the recharge window after blocker-1's EFO ends between two pressure samples (both start as the EFO ends)
    monkeypatch.setattr(condition, "RECHARGE_S", condition.RECHARGE_S + 0.45)
    fast, full = Fed(tmp_path / "fast.db", unchanged=True), Fed(tmp_path / "full.db", unchanged=False)
    rng = random.Random(seed)
    plant = Plant(fast.site, rng)
    unchanged_readings = 0
    leak_shown = False
    whole = fast.site._calm_until_after  # noqa: SLF001 - counted: it ends every reading taken in whole
    wholes = []
    fast.site._calm_until_after = lambda *a: wholes.append(1) or whole(*a)  # noqa: SLF001
    try:
        for step in range(STEPS):
            commanded: list[str] = []
            asked: list[tuple[str, str]] = []
            plant.step(step, commanded, asked)
            for name, verb in asked:
                for fed in (fast, full):
                    fed.command(name, verb)
            for name in commanded:
                verb = "close" if plant.travelling[name][1] == "closed" else "open"
                verb = {"road_blocker": {"close": "raise", "open": "lower"}}.get(
                    fast.site.devices[name].cfg.kind, {}).get(verb, verb)
                if plant.travelling[name][2]:
                    verb = "efo"
                for fed in (fast, full):
                    fed.command(name, verb)
            if step == 2770:  # the guard acknowledges bay-exit's movement while its drive still runs: raised again
                for fed in (fast, full):
                    for alarm in fed.site.alarms.listing():
                        if alarm["active"] and alarm["code"] == "UNCOMMANDED_MOVEMENT" and alarm["subject"] == "bay-exit":
                            fed.site.alarms.ack(alarm["id"], "guard")
            if step == 1805:  # a service, between two pressure samples, forgets the slow EFO before it and its readiness
                for fed in (fast, full):
                    fed.site.condition.of("blocker-1").record_service("tester", "accumulator refilled")
            if step in (2900, 2950):  # lane-1 latched, then left for what its devices show (with a reason)
                for fed in (fast, full):
                    lane = fed.site.lanes["lane-1"]
                    await (lane.lock(by="tester", reason="drill") if step == 2900 else lane.settle("tester", "drill over"))
            for plc in fast.site.plcs:
                slots = None if rng.random() < 0.0005 else plant.slots(plc)  # now and then no answer
                unchanged_readings += slots is not None and slots == fast.last[plc]
                for fed in (fast, full):
                    await fed.read(plc, slots, step & 0xFFFF)
            assert fast.events == full.events, f"step {step}"
            assert fast.readiness() == full.readiness(), f"step {step}"
            assert fast.in_force() == full.in_force(), f"step {step}"
            if step % 10 == 0:  # the whole view once a second of polls (it is the slow part of the test)
                view = fast.view()
                assert view == full.view(), f"step {step}"
                leak_shown |= any("a leak?" in reason for d in view["status"]["devices"] if d["name"] == "blocker-2"
                                  for reason in d["readiness"]["reasons"])
            await asyncio.sleep(STEP_S)
    finally:
        for fed in (fast, full):
            await fed.site.stop()
            fed.site.store.close()
    assert unchanged_readings > 5000, "most readings are of an unchanged block"
    assert 3 * STEPS - len(wholes) > 0.8 * unchanged_readings, "most unchanged blocks skip their PLC's devices"
    assert any(e[0] == "alarm_raised" and e[2].startswith("UNCOMMANDED_MOVEMENT bay-exit") for e in fast.events), \
        "bay-exit's open after its close had ended was not commanded"
    assert any(e[0] == "alarm_raised" and e[2].startswith("TRAVEL_TIMEOUT bay-exit") for e in fast.events), \
        "bay-exit's stuck drive timed out"
    assert any(e[0] == "lane_mode" and e[1] == "lane-1" and "lockdown →" in e[2] for e in fast.events)
    assert any(e[0] == "alarm_raised" and e[2].startswith("EFO_NOT_READY blocker-1") for e in fast.events), \
        "blocker-1 not ready after its EFO once the recharge time was over"
    assert leak_shown, "blocker-2's idle decay was shown"
