"""The supervised site: devices built from config, one bus per connection, readings routed to device machines."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from collections.abc import Callable
from functools import partial

import structlog

from config.schema import PlcSection, SiteConfig
from controller.devices import DEVICE_CLASSES, Device, StateChange
from controller.alarms import AlarmBoard
from controller.condition import NO_CONDITIONS, ConditionMonitor
from controller.event_store import EventStore
from controller.supervision import DeviceWatch, PlcConditions
from controller.lanes import Lane
from controller.actions import command_device
from controller.lockdown import Lockdown
from hal.bus import Bus
from hal.tcp import TcpTransport
from hal.ticker import Ticker
from hal.transport import Transport
from hal.unit import PlcReading, Quality, UnitSpec


log = structlog.get_logger("controller.site")
STORAGE = "event-store"  # the subject of the storage alarm


class UnsupportedConfig(Exception):
    """A configuration this version of barrierd cannot run (refused at start, nothing started)."""


@dataclass
class PlcView:
    """What the status shows of one PLC's link."""

    name: str
    comms: str = "invalid"
    reason: str | None = "not read yet"
    watchdog_readback: int | None = None
    polls: int = 0  # readings since start (one per poll, or per write that got no answer)
    polls_ok: int = 0  # of which GOOD

    def as_dict(self) -> dict:
        return {"name": self.name, "comms": self.comms, "reason": self.reason, "watchdog_ms": self.watchdog_readback,
                "polls": self.polls, "polls_ok": self.polls_ok}


_GOOD = Quality.GOOD  # (an Enum attribute costs a metaclass lookup each time)


def comms_word(reading: PlcReading) -> str:
    if reading.quality is _GOOD:
        return "ok"
    if reading.comms_lost:
        return "lost"
    return reading.quality.value


class Site:
    """Everything barrierd supervises; built from a validated SiteConfig."""

    def __init__(self, cfg: SiteConfig, store: EventStore):
        self.cfg = cfg
        self.store = store
        self.devices: dict[str, Device] = {
            d.name: DEVICE_CLASSES[d.kind](d, self._record_change) for d in cfg.device
        }
        self.plcs = {p.name: PlcView(p.name) for p in cfg.plc}
        self._devices_by_plc = {p.name: [d for d in self.devices.values() if d.plc == p.name] for p in cfg.plc}
        self.lanes: dict[str, Lane] = {lane.name: Lane(lane, self) for lane in cfg.lane}
        self._lane_of = {name: self.lanes[lane.name] for lane in cfg.lane for name in lane.members().values()}
        self.lockdown = Lockdown(store, self.lanes, self.devices,
                                 lambda device, verb, by: command_device(self, device, verb, by))
        self.audit_break_recorded: tuple[tuple[str, int | None], ...] = ()  # last break `audit verify` recorded
        # parts of the status that adapters add (barrierd adds its MQTT link): name -> its current view
        self.status_extras: dict[str, Callable[[], dict | None]] = {}
        self.alarms = AlarmBoard(store.storage, store.record_event)
        store.storage.listeners.append(self._storage_changed)
        self._storage_changed(store.storage.problem)
        self._plc_conditions = {p.name: PlcConditions(p) for p in cfg.plc}
        self.condition = ConditionMonitor(cfg, self.devices, store.storage, self.alarms)
        # what each reading of a PLC goes through, built once: its devices with their watch and condition
        # monitor (None: not monitored), and the lanes they are in (in the order of the site file)
        self._readers = {plc: tuple((d, DeviceWatch(d), self.condition.devices.get(d.name)) for d in devices)
                         for plc, devices in self._devices_by_plc.items()}
        self._lanes_on = {plc: tuple(lane for lane in self.lanes.values() if any(d in lane.devices for d in devices))
                          for plc, devices in self._devices_by_plc.items()}
        # a PLC is calm until this loop time when nothing on it depends on the time (see _calm_until_after):
        # an unchanged block of it before then skips its devices and lanes; what its lanes showed then
        self._calm_until = dict.fromkeys(self._devices_by_plc, 0.0)
        self._lanes_left: dict[str, tuple[tuple[str, str], ...]] = {}
        self._stirred: set[str] = set()  # PLCs with a device stirred since their last reading began
        for plc, devices in self._devices_by_plc.items():
            for device in devices:
                device.on_stir = partial(self._stir, plc)
        self._restore_modes()
        self._record_interrupted_commands()
        self.buses: dict[str, Bus] = {}
        self._tasks: list[asyncio.Task] = []

    def _restore_modes(self) -> None:
        saved = self.store.load_modes()
        for name, lane in self.lanes.items():
            if (entry := saved.get(f"lane:{name}")) is not None:
                lane.restore(*entry)
        self.lockdown.restore(saved)
        log.info("modes_restored", lockdown=self.lockdown.latch is not None,
                 lanes={n: lane.mode for n, lane in self.lanes.items()})

    def _record_interrupted_commands(self) -> None:
        """Commands in flight when barrierd last stopped are recorded as interrupted, never re-issued."""
        self._interrupted = set(self.store.load_in_flight())
        for device, (verb, by, at) in self.store.load_in_flight().items():
            self.store.record_event("command_interrupted", device,
                                    f"{verb} {device} by {by} was in flight when barrierd stopped; not re-issued",
                                    verb=verb, by=by, at=at)
            log.warning("command_interrupted", device=device, verb=verb, by=by)
        self.store.clear_in_flight()

    def _storage_changed(self, problem: str | None) -> None:
        self.alarms.sync(STORAGE, {"STORAGE_FAILED": problem} if problem else {})

    def lane_of(self, device: str) -> Lane | None:
        return self._lane_of.get(device)

    def lane_devices_of(self, device: str) -> list[Device]:
        """The devices of `device`'s lane, or the device alone if it is in no lane."""
        lane = self.lane_of(device)
        return lane.devices if lane is not None else [self.devices[device]]

    def locked(self, device: str) -> bool:
        """True while a site lockdown, or a lockdown of the device's lane, is in force."""
        return self.lockdown.locked(self.lane_of(device))

    async def start(self) -> None:
        """Open one bus per TCP PLC and one per RS-485 line (every PLC on it a unit); nothing is commanded."""
        ticker = Ticker()  # the quiet polls of every TCP PLC due at one time go out from one timer
        for plc in self.cfg.plc:
            if plc.bus is None:
                assert plc.host is not None and plc.port is not None
                transport = TcpTransport(plc.name, plc.host, plc.port, plc.timeout_ms / 1000, ticker)
                self._start_bus(plc.name, transport, [plc], plc.timeout_ms / 1000)
        for line in self.cfg.bus:
            plcs = [p for p in self.cfg.plc if p.bus == line.name]
            if plcs:
                from hal.rtu import RtuTransport  # imported here: pymodbus and pyserial only where a line is

                transport = RtuTransport(
                    line.name, line.port, baudrate=line.baudrate, parity=line.parity, stopbits=line.stopbits,
                    timeout_s=line.timeout_ms / 1000,
                )
                self._start_bus(line.name, transport, plcs, line.timeout_ms / 1000)

    def _start_bus(self, name: str, transport: Transport, plcs: list[PlcSection], timeout_s: float) -> None:
        site = self.cfg.site
        specs = [
            UnitSpec(name=p.name, unit=p.unit, slot_kinds=tuple(self.cfg.slot_kinds(p.name)), watchdog_ms=p.watchdog_ms)
            for p in plcs
        ]
        bus = Bus(
            transport,
            specs,
            poll_s=site.poll_ms / 1000,
            timeout_s=timeout_s,
            comms_lost_polls=site.comms_lost_polls,
            frozen_polls=site.frozen_polls,
            on_reading=self._on_reading,
            on_quiet_reading=self._take_quietly,
        )
        for plc in plcs:
            self.buses[plc.name] = bus  # keyed by PLC: a command finds its PLC's bus
        self._tasks.append(asyncio.create_task(bus.run(), name=f"bus-{name}"))

    def health_problem(self) -> str | None:
        """Why the site is not being supervised any more (a bus task ended), or None."""
        for task in self._tasks:
            if task.done():
                error = task.exception() if not task.cancelled() else None
                return f"{task.get_name()} ended: {error!r}" if error else f"{task.get_name()} ended"
        return None

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for device in self.devices.values():
            device.detach()

    def devices_on(self, plc: str) -> list[Device]:
        return self._devices_by_plc[plc]

    def _take_quietly(self, reading: PlcReading) -> bool:
        """Take an unchanged GOOD block of a calm PLC whole (True): its devices, their alarms and its lanes show
        what they showed; else False, nothing done (see _calm_until_after)."""
        plc, view = reading.plc, self.plcs[reading.plc]
        if not (view.comms == "ok" and asyncio.get_running_loop().time() < self._calm_until[plc]
                and (not self._lanes_on[plc] or self._lanes_left[plc] == self._lanes_shown(plc))):
            return False
        view.polls += 1
        view.polls_ok += 1
        view.reason, view.watchdog_readback = None, reading.watchdog_readback
        return True

    async def _on_reading(self, reading: PlcReading) -> None:
        if reading.unchanged and self._take_quietly(reading):
            return
        view = self.plcs[reading.plc]
        view.polls += 1
        if reading.quality is _GOOD:
            view.polls_ok += 1
        comms = comms_word(reading)
        if comms != view.comms:
            log.info("plc_comms_changed", plc=reading.plc, from_comms=view.comms, to_comms=comms, reason=reading.reason)
            self.store.record_event(
                "plc_comms", reading.plc, f"{reading.plc}: {view.comms} → {comms}", reason=reading.reason
            )
        view.comms = comms
        view.reason = reading.reason
        view.watchdog_readback = reading.watchdog_readback
        if not reading.unchanged:  # the same block (the heartbeat apart) raises the same PLC conditions
            self.alarms.sync(reading.plc, self._plc_conditions[reading.plc].update(reading))
        plc = reading.plc
        now = asyncio.get_running_loop().time()
        self._stirred.discard(plc)
        slots = reading.snapshot.slots if reading.snapshot is not None else None
        in_flight = self.store.in_flight
        for device, watch, monitored in self._readers[plc]:
            slot = slots[device.slot] if slots is not None else None
            if (sensing := device.take(reading.quality, slot, reading.reason)) is not None:  # quality, state, intent
                await sensing
            if self._interrupted and slot is not None and device.name in self._interrupted:
                self._interrupted.discard(device.name)
                device.expect_motion(now)  # the rest of a travel commanded before the restart
            if monitored is not None:
                monitored.observe(slot, now)  # timing, drift, service, EFO readiness
                worn = monitored.conditions
            else:
                worn = NO_CONDITIONS
            if not (watch.unchanged_at_rest(slot) and worn is watch.worn):
                conditions = watch.update(slot, now)
                watch.worn = worn
                self.alarms.sync(device.name, conditions | worn if worn else conditions)
                for code, message in watch.events:
                    self.alarms.raise_alarm(code, device.name, message)
            if in_flight and device.name in in_flight and not device.command_in_force(now):
                self.store.clear_in_flight(device.name)
        for lane in self._lanes_on[plc]:
            await lane.on_devices_read()
        self._calm_until[plc] = self._calm_until_after(plc, slots, now)
        self._lanes_left[plc] = self._lanes_shown(plc)

    def _stir(self, plc: str) -> None:
        self._calm_until[plc] = 0.0
        self._stirred.add(plc)

    def _calm_until_after(self, plc: str, slots: tuple | None, now: float) -> float:
        """After a reading in whole at `now`: until when the same block read again would change nothing on `plc`.
        0.0 (not calm) if a device was stirred meanwhile, or one has a command in force or ending, a drive running,
        a travel under way, a command in flight or interrupted; else the earliest time a rule reads (an EFO
        readiness's next pressure sample or the end of its recharge window). Lanes are compared as they were left."""
        if slots is None or plc in self._stirred:
            return 0.0
        until = float("inf")
        for device, watch, monitored in self._readers[plc]:
            name = device.name
            if (not device.settled(now) or not watch.unchanged_at_rest(slots[device.slot])
                    or name in self.store.in_flight or name in self._interrupted):
                return 0.0
            if monitored is not None:
                until = min(until, monitored.calm_until(now))
        return until

    def _lanes_shown(self, plc: str) -> tuple[tuple[str, str], ...]:
        return tuple((lane.mode, lane.reason) for lane in self._lanes_on[plc])

    async def _record_change(self, change: StateChange) -> None:
        self.store.record_event(
            "state_change",
            change.device,
            f"{change.device}: {self.devices[change.device].shown(change.from_state)} → "
            f"{self.devices[change.device].shown(change.to_state)}",
            from_state=change.from_state,
            to_state=change.to_state,
            trigger=change.trigger,
            cause=change.cause,
        )

    def status(self) -> dict:
        unsaved = self.store.unsaved_scopes
        return {
            "site": self.cfg.site.name,
            "lockdown": self.lockdown.as_dict(),
            "lanes": [
                {"name": lane.name, "mode": lane.mode, "devices": [d.name for d in lane.devices],
                 "by": lane.by, "reason": lane.reason, "since": lane.since,
                 "persisted": f"lane:{lane.name}" not in unsaved and self.lockdown.lane_persisted(lane.name),
                 "lockdown": self.lockdown.lane_latch(lane.name)}
                for lane in self.lanes.values()
            ],
            "storage": self.store.health(),
            "devices": [d.as_dict() | self.condition.device_view(d.name) for d in self.devices.values()],
            "health": self.condition.summary(),
            "alarms": [a for a in self.alarms.listing() if a["active"]],
            "plcs": [v.as_dict() for v in self.plcs.values()],
            **{name: part() for name, part in self.status_extras.items()},
        }

