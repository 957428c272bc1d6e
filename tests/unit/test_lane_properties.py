"""Property test: random commands, sensor changes and faults against the lane and interlock logic, invariants checked."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from config.loader import site_from_toml
from config.schema import SiteConfig
from controller.commands import ExitCode, build_registry
from controller.auth import Caller
from controller.event_store import EventStore
from controller.site import Site
from hal.profile import AckResult, Command, Kind, SignalCommand, SignalStatus, Status
from hal.snapshot import SlotSnapshot
from hal.unit import CommandOutcome, Quality
from tests.support import DEMO_SITE

TECH = Caller(uid=1003, gid=1003, pid=44, user="tech", role="technician")
GUARD = Caller(uid=1001, gid=1001, pid=42, user="guard", role="operator")
OPENING = {Kind.TRAFFIC_SIGNAL: {SignalCommand.GREEN}}
LEAF_OPENING = {Command.OPEN}


def demo_config() -> SiteConfig:
    raw = tomllib.loads(Path(DEMO_SITE).read_text())
    for lane in raw["lane"]:
        lane["clear_time_s"] = 0.0  # no waiting in the property test
    return site_from_toml(raw)


CFG = demo_config()
DEVICES = [d.name for d in CFG.device]
LANES = [lane.name for lane in CFG.lane]
PLCS = [p.name for p in CFG.plc]
AIRLOCKED = sorted({name for pair in CFG.interlock for name in pair.devices})
VERBS = ["open", "close", "stop", "raise", "lower", "green", "red", "reset"]


class FakePlant:
    """Stands in for every bus: applies accepted commands at once and feeds the result back to the device."""

    def __init__(self, site: Site):
        self.site = site
        self.status = {name: (int(SignalStatus.RED) if d.KIND == Kind.TRAFFIC_SIGNAL else int(Status.AT_CLOSED))
                       for name, d in site.devices.items()}
        self.offline: set[str] = set()
        self.writes: list[tuple[str, int]] = []
        self.violations: list[str] = []
        self.reject_next = False

    def device_at(self, plc: str, slot: int):
        return next(d for d in self.site.devices.values() if d.plc == plc and d.slot == slot)

    async def command(self, plc: str, slot: int, code: int, recheck=None) -> CommandOutcome:
        if recheck is not None:
            recheck()  # as the bus does just before the write
        device = self.device_at(plc, slot)
        opening = code in OPENING.get(device.KIND, LEAF_OPENING)
        if opening and self.site.locked(device.name):
            self.violations.append(f"opening command {code} written to {device.name} in lockdown")
        self.writes.append((device.name, code))
        result = self._plc_answer(device, code)
        if result is AckResult.ACCEPTED:
            self._apply(device, code)
        await self.feed(device)
        for pair in self.site.cfg.interlock:
            if all(self.status[n] & Status.AT_OPEN for n in pair.devices):
                self.violations.append(f"airlock {pair.devices} both open")
        return CommandOutcome(acknowledged=True, result=result, seq=len(self.writes))

    def _plc_answer(self, device, code: int) -> AckResult:
        status = self.status[device.name]
        if self.reject_next:
            self.reject_next = False
            return AckResult.REJECTED_INTERLOCK
        if status & Status.LOCAL:
            return AckResult.REJECTED_LOCAL
        if status & Status.DRIVE_FAULT and code != Command.RESET:
            return AckResult.REJECTED_FAULT
        if device.KIND == Kind.ROAD_BLOCKER and code == Command.CLOSE and status & Status.VEHICLE_PRESENT:
            return AckResult.REJECTED_INTERLOCK
        return AckResult.ACCEPTED

    def _apply(self, device, code: int) -> None:
        keep = self.status[device.name] & (Status.VEHICLE_PRESENT | Status.DRIVE_FAULT | Status.LOCAL)
        if device.KIND == Kind.TRAFFIC_SIGNAL:
            aspects = {SignalCommand.GREEN: SignalStatus.GREEN, SignalCommand.RED: SignalStatus.RED}
            if code in aspects:
                self.status[device.name] = int(aspects[code])
            return
        if code == Command.RESET:
            self.status[device.name] &= ~int(Status.DRIVE_FAULT)
        elif code == Command.OPEN:
            self.status[device.name] = int(Status.AT_OPEN) | keep
        elif code in (Command.CLOSE, Command.EFO):
            self.status[device.name] = int(Status.AT_CLOSED) | keep

    async def feed(self, device) -> None:
        if device.plc in self.offline:
            await device.observe(Quality.INVALID, None, "comms lost")
        else:
            snap = SlotSnapshot(device.KIND, self.status[device.name], None, 0, 0, 0, 0, 0, 0, 0)
            await device.observe(Quality.GOOD, snap, None)


async def plant_site(store: EventStore) -> FakePlant:
    """The demo site on a FakePlant, every device read and every lane classified."""
    site = Site(CFG, store)
    fake = FakePlant(site)
    site.buses = {name: fake for name in PLCS}
    for device in site.devices.values():
        await fake.feed(device)
    for lane in site.lanes.values():
        await lane.on_devices_read()
    return fake


class LaneMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.site = Site(CFG, EventStore(Path(":memory:")))
        self.plant = FakePlant(self.site)
        self.site.buses = {name: self.plant for name in PLCS}
        self.registry = build_registry()
        self.own_lockdowns: set[str] = set()  # lanes locked down on their own and not released since
        self.run(self._read_all())

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    async def _read_all(self):
        for device in self.site.devices.values():
            await self.plant.feed(device)
        for lane in self.site.lanes.values():
            await lane.on_devices_read()

    def dispatch(self, command: str, args: dict, caller: Caller = TECH):
        before = len(self.plant.writes)
        reply = self.run(self.registry.dispatch(self.site, {"command": command, "args": args}, caller))
        written = self.plant.writes[before:]
        refused_here = reply.code in (ExitCode.REFUSED, ExitCode.NOT_AUTHORISED, ExitCode.USAGE)
        if refused_here and "rule plc_rejected" not in reply.message:
            assert written == [], f"{command} {args} refused ({reply.message}) yet wrote {written}"
        return reply, written

    @rule(verb=st.sampled_from(VERBS), device=st.sampled_from(DEVICES), tech=st.booleans())
    def device_command(self, verb, device, tech):
        self.dispatch(verb, {"device": device}, TECH if tech else GUARD)

    @rule(device=st.sampled_from(AIRLOCKED), tech=st.booleans())
    def open_airlock_member(self, device, tech):
        self.dispatch("open", {"device": device}, TECH if tech else GUARD)

    @rule(action=st.sampled_from(["lane_open", "lane_secure"]), lane=st.sampled_from(LANES))
    def lane_command(self, action, lane):
        self.dispatch(action, {"lane": lane}, GUARD)

    @rule(lane=st.one_of(st.none(), st.sampled_from(LANES)))
    def lockdown(self, lane):
        reply, written = self.dispatch("lockdown", {"lane": lane, "reason": "property test"}, GUARD)
        if lane is not None and reply.code in (ExitCode.DONE, ExitCode.ERROR):  # latched, secured or not
            self.own_lockdowns.add(lane)
        scope = [self.site.devices[n] for n in (CFG.lane[LANES.index(lane)].members().values() if lane else DEVICES)]
        for blocker in (d for d in scope if d.KIND == Kind.ROAD_BLOCKER):
            reachable = blocker.plc not in self.plant.offline and not self.plant.status[blocker.name] & Status.LOCAL
            if reachable:
                assert (blocker.name, Command.EFO) in written, f"lockdown of {lane or 'site'} sent no EFO to {blocker.name}"

    @rule(lane=st.one_of(st.none(), st.sampled_from(LANES)))
    def release(self, lane):
        before = len(self.plant.writes)
        reply, _ = self.dispatch("lockdown_release", {"lane": lane, "reason": "property test"})
        assert self.plant.writes[before:] == [], "releasing a lockdown moves nothing"
        if lane is not None and reply.code is ExitCode.DONE:
            self.own_lockdowns.discard(lane)

    @rule(action=st.sampled_from(["maintenance_enter", "maintenance_exit"]), lane=st.sampled_from(LANES))
    def maintenance(self, action, lane):
        self.dispatch(action, {"lane": lane, "reason": "property test"})

    @rule(device=st.sampled_from(DEVICES),
          flag=st.sampled_from([Status.VEHICLE_PRESENT, Status.DRIVE_FAULT, Status.LOCAL]), on=st.booleans())
    def sensor(self, device, flag, on):
        dev = self.site.devices[device]
        if dev.KIND == Kind.TRAFFIC_SIGNAL:
            return
        if on:
            self.plant.status[device] |= int(flag)
        else:
            self.plant.status[device] &= ~int(flag)
        self.run(self.plant.feed(dev))

    @rule(plc=st.sampled_from(PLCS), online=st.booleans())
    def comms(self, plc, online):
        (self.plant.offline.discard if online else self.plant.offline.add)(plc)
        for device in self.site.devices_on(plc):
            self.run(self.plant.feed(device))

    @precondition(lambda self: not self.plant.reject_next)
    @rule()
    def plc_rejects_next(self):
        self.plant.reject_next = True

    @invariant()
    def no_violations(self):
        assert self.plant.violations == []

    @invariant()
    def locked_lanes_stay_locked(self):
        if self.site.lockdown.latch is not None:
            assert all(lane.mode == "lockdown" for lane in self.site.lanes.values())
        for lane in self.own_lockdowns:  # releasing the site does not release a lane's own lockdown
            assert self.site.lanes[lane].mode == "lockdown", f"{lane} left its own lockdown unreleased"

    def teardown(self):
        self.site.store.close()
        self.loop.close()


LaneMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=25, deadline=None)
TestLaneProperties = LaneMachine.TestCase
