"""The plant an exploration drives: every PLC at once, commands applied at once, every write logged and checked."""

from __future__ import annotations

from controller.site import Site
from hal.errors import CommsError
from hal.profile import AckResult, Command, Kind, SignalCommand, SignalStatus, Status
from hal.snapshot import SlotSnapshot
from hal.unit import CommandOutcome, Quality

LEAF_AT = {"closed": int(Status.AT_CLOSED), "open": int(Status.AT_OPEN)}
SIGNAL_AT = {"closed": int(SignalStatus.RED), "open": int(SignalStatus.GREEN)}
LEAF_KEEP = int(Status.VEHICLE_PRESENT | Status.DRIVE_FAULT)  # what a move leaves as it was


class Plant:
    """Every PLC at once: applies an accepted command at once and feeds the result back; logs every write."""

    def __init__(self, site: Site, status: dict[str, int], offline: frozenset[str]):
        self.site = site
        self.status = dict(status)
        self.offline = set(offline)
        self.kinds = {d.name: d.kind for d in site.cfg.device}
        self.by_slot = {(d.plc, d.slot): d.name for d in site.cfg.device}
        self.writes: list[tuple[str, int]] = []
        self.violations: list[tuple[str, str]] = []
        self.locked: frozenset[str] = frozenset()  # devices in lockdown, as the site's status last showed

    async def command(self, plc: str, slot: int, code: int, recheck=None) -> CommandOutcome:
        if recheck is not None:
            recheck()  # as the bus does just before the write
        name = self.by_slot[(plc, slot)]
        self.writes.append((name, code))
        self._check_write(name, code)
        if plc in self.offline:
            raise CommsError(f"{plc}: no reply")
        result = self._answer(name, code)
        if result is AckResult.ACCEPTED:
            self._apply(name, code)
        await self.feed(name)
        return CommandOutcome(acknowledged=True, result=result, seq=len(self.writes))

    def opening(self, name: str, code: int) -> bool:
        return code == (SignalCommand.GREEN if self.kinds[name] == "traffic_signal" else Command.OPEN)

    def is_open(self, name: str) -> bool:
        at_open = SignalStatus.GREEN if self.kinds[name] == "traffic_signal" else Status.AT_OPEN
        return bool(self.status[name] & at_open)

    def _check_write(self, name: str, code: int) -> None:
        if not self.opening(name, code):
            return
        if name in self.locked:
            self.violations.append(("no_opening_in_lockdown", f"opening command {code} written to {name} in lockdown"))
        for pair in self.site.cfg.interlock:
            if name in pair.devices and any(self.is_open(n) for n in pair.devices if n != name):
                self.violations.append(("airlock_never_both_open", f"{name} commanded open while its pair is open"))

    def _answer(self, name: str, code: int) -> AckResult:
        status = self.status[name]
        if self.kinds[name] != "traffic_signal" and status & Status.DRIVE_FAULT and code != Command.RESET:
            return AckResult.REJECTED_FAULT
        if self.kinds[name] == "road_blocker" and code == Command.CLOSE and status & Status.VEHICLE_PRESENT:
            return AckResult.REJECTED_INTERLOCK  # the PLC's own hard interlock; EFO raises regardless
        return AckResult.ACCEPTED

    def _apply(self, name: str, code: int) -> None:
        if self.kinds[name] == "traffic_signal":
            aspect = {SignalCommand.GREEN: SIGNAL_AT["open"], SignalCommand.RED: SIGNAL_AT["closed"]}.get(code)
            self.status[name] = aspect if aspect is not None else self.status[name]
            return
        keep = self.status[name] & LEAF_KEEP
        if code == Command.RESET:
            self.status[name] &= ~int(Status.DRIVE_FAULT)
        elif code == Command.OPEN:
            self.status[name] = LEAF_AT["open"] | keep
        elif code in (Command.CLOSE, Command.EFO):
            self.status[name] = LEAF_AT["closed"] | keep

    async def feed(self, name: str) -> None:
        device = self.site.devices[name]
        if device.plc in self.offline:
            await device.observe(Quality.INVALID, None, "comms lost")
        else:
            kind = Kind[self.kinds[name].upper()]
            await device.observe(Quality.GOOD, SlotSnapshot(kind, self.status[name], None, 0, 0, 0, 0, 0, 0, 0), None)

    async def poll(self, *, read: bool = True) -> None:
        """One reading of every PLC, as the buses deliver it (the plant already fed back what it moved), and
        every lane looking at its devices."""
        for name in self.status if read else ():
            await self.feed(name)
        for lane in self.site.lanes.values():
            await lane.on_devices_read()


def state_key(site: Site, plant: Plant) -> tuple:
    """The abstract state: what each device reports, which PLCs answer, each lane's mode and latch, the site latch.
    Also tells the plant which devices are in lockdown (from the status, not from the rules under test)."""
    status = site.status()
    lanes = tuple((lane["name"], lane["mode"], lane["lockdown"] is not None) for lane in status["lanes"])
    locked = {name for lane in status["lanes"] if lane["mode"] == "lockdown" for name in lane["devices"]}
    plant.locked = frozenset(plant.status if status["lockdown"] is not None else locked)
    return tuple(sorted(plant.status.items())), frozenset(plant.offline), lanes, status["lockdown"] is not None
