"""Test rig for condition monitoring: simulated leaf slots and their travels, fed to a ConditionMonitor on a fake clock."""

from __future__ import annotations

import asyncio
import random
import tomllib
from dataclasses import dataclass
from pathlib import Path

from config.loader import site_from_toml
from config.schema import SiteConfig
from controller.alarms import AlarmBoard
from controller.condition import ConditionMonitor
from controller.devices import DEVICE_CLASSES
from controller.event_store import EventStore
from controller.site import Site
from hal.profile import AckResult, Command, Kind, SignalCommand, SignalStatus, Status
from hal.snapshot import PlcSnapshot, SlotSnapshot
from hal.unit import CommandOutcome, PlcReading, Quality
from tests.support import DEMO_SITE

IDLE_PRESSURE = 1600  # 160.0 bar: a charged accumulator (sim-plc's idle value)
MOVING_PRESSURE = 1350
EFO_PRESSURE = 1100
OIL = 352  # 35.2 °C
GATE_CURRENT = 42  # 4.2 A


def demo_config(**condition) -> SiteConfig:
    """The demo site with [condition] keys replaced (the bundled file's others kept)."""
    raw = tomllib.loads(Path(DEMO_SITE).read_text())
    raw["condition"] = {**raw.get("condition", {}), **condition}
    return site_from_toml(raw)


@dataclass
class Leaf:
    """One simulated leaf slot as its PLC reports it."""

    kind: Kind
    status: int = int(Status.AT_CLOSED)
    analog_1: int = 0
    analog_2: int = 0
    last_travel_ms: int = 0
    cycle_count: int = 0

    def slot(self) -> SlotSnapshot:
        position = 1000 if self.status & Status.AT_CLOSED else 0 if self.status & Status.AT_OPEN else 500
        return SlotSnapshot(self.kind, self.status, position, 0, 0, 0, self.analog_1, self.analog_2,
                            self.last_travel_ms, self.cycle_count)


class Feed:
    """The demo site's leaves fed to a ConditionMonitor on a fake clock; alarms synced as Site does it."""

    def __init__(self, store: EventStore, cfg: SiteConfig | None = None):
        self.cfg = cfg or demo_config()
        self.store = store
        self.alarms = AlarmBoard(store.storage)
        self.devices = {d.name: DEVICE_CLASSES[d.kind](d) for d in self.cfg.device}
        self.monitor = ConditionMonitor(self.cfg, self.devices, store.storage, self.alarms)
        self.now = 1000.0
        self.leaves = {name: Leaf(d.KIND, analog_1=IDLE_PRESSURE if d.KIND == Kind.ROAD_BLOCKER else 0,
                                  analog_2=OIL if d.KIND == Kind.ROAD_BLOCKER else 0)
                       for name, d in self.devices.items() if d.SPEC.behaviour == "leaf"}

    def restart(self) -> Feed:
        """A new monitor over the same store (barrierd restarted); the leaves stand where they were."""
        again = Feed(self.store, self.cfg)
        again.now, again.leaves = self.now, self.leaves
        return again

    def poll(self, name: str, dt: float = 0.1) -> None:
        self.now += dt
        self.alarms.sync(name, dict(self.monitor.observe(name, self.leaves[name].slot(), self.now)))

    def lost(self, name: str, dt: float = 0.1) -> None:
        self.now += dt
        self.alarms.sync(name, dict(self.monitor.observe(name, None, self.now)))

    def travel(self, name: str, to: str, ms: int, *, efo: bool = False, moving_analog: int | None = None,
               polls: int = 4) -> None:
        """One travel to `to` (open / closed) taking `ms` as the PLC times it, seen by `polls` polls under way."""
        leaf = self.leaves[name]
        blocker = leaf.kind == Kind.ROAD_BLOCKER
        if moving_analog is None:
            moving_analog = (EFO_PRESSURE if efo else MOVING_PRESSURE) if blocker else GATE_CURRENT
        rest = leaf.analog_1 if blocker else 0
        keep = leaf.status & ~int(Status.AT_OPEN | Status.AT_CLOSED | Status.MOVING_OPEN | Status.MOVING_CLOSE)
        leaf.status = keep | int(Status.MOVING_CLOSE if to == "closed" else Status.MOVING_OPEN)
        if efo:
            leaf.status |= int(Status.EFO_ACTIVE)
        leaf.analog_1 = moving_analog
        for _ in range(polls):
            self.poll(name, ms / 1000 / (polls + 1))
        leaf.status = keep | int(Status.AT_CLOSED if to == "closed" else Status.AT_OPEN) | (
            int(Status.EFO_ACTIVE) if efo else 0)
        leaf.analog_1 = rest
        leaf.last_travel_ms = ms
        leaf.cycle_count += 1
        self.poll(name, ms / 1000 / (polls + 1))

    def cycle(self, name: str, ms_open: int, ms_close: int, **kw) -> None:
        self.travel(name, "open", ms_open, **kw)
        self.travel(name, "closed", ms_close, **kw)

    def codes(self, subject: str | None = None) -> list[str]:
        return [a["code"] for a in self.alarms.listing() if a["active"] and subject in (None, a["subject"])]

    def alarm(self, code: str, subject: str) -> dict:
        return next(a for a in self.alarms.listing() if a["code"] == code and a["subject"] == subject and a["active"])


def noisy(rng: random.Random, nominal: float, spread: float = 0.02) -> int:
    """A measured value: normal noise of `spread` of nominal, and now and then (1 in 50) an outlier 8 % high."""
    value = rng.gauss(nominal, nominal * spread)
    if rng.random() < 0.02:
        value *= 1.08
    return max(1, round(value))


class Plant:
    """Every slot of a Site's PLCs: read through Site._on_reading (supervision, alarms and condition monitoring as
    barrierd runs them), and a bus whose accepted commands complete at once and are read just after."""

    def __init__(self, site: Site, travel_ms: dict[str, int] | None = None):
        self.site = site
        self.travel_ms = travel_ms or {}
        self.leaves = {name: Leaf(d.KIND, analog_1=IDLE_PRESSURE if d.KIND == Kind.ROAD_BLOCKER else 0,
                                  analog_2=OIL if d.KIND == Kind.ROAD_BLOCKER else 0)
                       for name, d in site.devices.items() if d.SPEC.behaviour == "leaf"}
        self.signals = {name: int(SignalStatus.RED) for name, d in site.devices.items() if d.SPEC.behaviour == "signal"}
        self.written: list[tuple[str, int]] = []
        self._reads: set[asyncio.Task] = set()
        site.buses = {name: self for name in site.plcs}

    def slot(self, name: str) -> SlotSnapshot:
        if name in self.signals:
            return SlotSnapshot(Kind.TRAFFIC_SIGNAL, self.signals[name], None, 0, 0, 0, 0, 0, 0, 0)
        return self.leaves[name].slot()

    async def read(self, plc: str | None = None) -> None:
        for name in [plc] if plc else list(self.site.plcs):
            devices = sorted(self.site.devices_on(name), key=lambda d: d.slot)
            snapshot = PlcSnapshot(0x4250, 1, 0, 0, len(devices), 10, 0, tuple(self.slot(d.name) for d in devices),
                                   asyncio.get_running_loop().time())
            await self.site._on_reading(PlcReading(name, Quality.GOOD, snapshot, None, False, 0,  # noqa: SLF001
                                                   self.site.cfg.plc_named(name).watchdog_ms))

    async def command(self, plc: str, slot: int, code: int, recheck=None) -> CommandOutcome:
        if recheck is not None:
            recheck()
        device = next(d for d in self.site.devices_on(plc) if d.slot == slot)
        self.written.append((device.name, code))
        if device.name in self.signals:
            aspect = {SignalCommand.GREEN: SignalStatus.GREEN, SignalCommand.RED: SignalStatus.RED}.get(code)
            self.signals[device.name] = int(aspect) if aspect else self.signals[device.name]
        elif code in (Command.OPEN, Command.CLOSE, Command.EFO):
            leaf = self.leaves[device.name]
            to_closed = code != Command.OPEN
            if bool(leaf.status & Status.AT_CLOSED) != to_closed:
                leaf.cycle_count += 1
                leaf.last_travel_ms = 1500 if code == Command.EFO else self.travel_ms.get(device.name, 2000)
            keep = leaf.status & ~int(Status.AT_OPEN | Status.AT_CLOSED)
            leaf.status = keep | int(Status.AT_CLOSED if to_closed else Status.AT_OPEN) | (
                int(Status.EFO_ACTIVE) if code == Command.EFO else 0)
        task = asyncio.get_running_loop().create_task(self.read(plc))  # read after the intent is recorded
        self._reads.add(task)
        task.add_done_callback(self._reads.discard)
        return CommandOutcome(acknowledged=True, result=AckResult.ACCEPTED, seq=len(self.written))

    async def settle(self) -> None:
        """Let the reads the commands started run."""
        while self._reads:
            await asyncio.gather(*self._reads)
