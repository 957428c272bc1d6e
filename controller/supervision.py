"""Fault detection: alarm conditions from each PLC reading, and movement nobody commanded."""

from __future__ import annotations

from dataclasses import dataclass, field

from config.schema import PlcSection
from controller.alarm_codes import CODES
from controller.devices import Device
from controller.devices.leaf import fault_text
from hal.profile import PlcStatus, Status
from hal.snapshot import SlotSnapshot
from hal.unit import PlcReading, Problem

POSITION_NOISE = 10  # per mille of travel that counts as movement

PLC_STATUS_ALARMS = {
    PlcStatus.WATCHDOG_EXPIRED: "WATCHDOG_EXPIRED",
    PlcStatus.ESTOP: "ESTOP",
    PlcStatus.MAINS_FAIL: "MAINS_FAIL",
    PlcStatus.CABINET_TAMPER: "CABINET_TAMPER",
    PlcStatus.LOCAL_PANEL: "LOCAL_PANEL",
}
# (the message a guard reads is the code's own text; the bit it came from is in the alarm's code)
_PLC_ALARM_BITS = tuple((int(flag), code, CODES[code].text) for flag, code in PLC_STATUS_ALARMS.items())
_DRIVE_FAULT, _AT_OPEN, _AT_CLOSED = int(Status.DRIVE_FAULT), int(Status.AT_OPEN), int(Status.AT_CLOSED)
_LIMITS = _AT_OPEN | _AT_CLOSED
_MOVING = int(Status.MOVING_OPEN | Status.MOVING_CLOSE)
PROBLEM_ALARMS = {
    Problem.FROZEN: "PLC_FROZEN",
    Problem.WRONG_PROGRAM: "WRONG_PROGRAM",
    Problem.BAD_REPLY: "BAD_REPLY",
}


@dataclass
class PlcConditions:
    """Alarm conditions of one PLC; status-bit conditions are kept while no fresh data say otherwise."""

    cfg: PlcSection
    status_bits: dict[str, str] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)  # frozen / wrong program / bad reply, last seen

    def update(self, reading: PlcReading) -> dict[str, str]:
        found: dict[str, str] = {}
        if reading.snapshot is not None:
            self.problems = {}
        elif reading.problem in PROBLEM_ALARMS:
            self.problems = {PROBLEM_ALARMS[reading.problem]: reading.reason or ""}
        # else an exchange without an answer: what was last known still holds (no alarm flapping)
        if reading.comms_lost:
            found["COMMS_LOST"] = f"no valid reply for {reading.consecutive_failures} polls: {reading.reason}"
        else:
            found |= self.problems
        if reading.watchdog_readback is not None and reading.watchdog_readback != self.cfg.watchdog_ms:
            found["WATCHDOG_NOT_ARMED"] = (f"WATCHDOG_TIMEOUT_MS reads {reading.watchdog_readback},"
                                           f" configured {self.cfg.watchdog_ms}")
        if reading.snapshot is not None:
            bits = reading.snapshot.plc_status
            self.status_bits = {code: text for bit, code, text in _PLC_ALARM_BITS if bits & bit}
        return found | self.status_bits


@dataclass
class DeviceWatch:
    """Per-device memory for the alarms that need two readings: movement and lost limits."""

    device: Device
    last: SlotSnapshot | None = None
    conditions: dict[str, str] = field(default_factory=dict)
    events: list[tuple[str, str]] = field(default_factory=list)  # latched alarms found this reading
    reported_latch: str | None = None  # the latched device fault already raised as an alarm
    worn: object = None  # the condition monitor's alarms synced with the last update (compared by identity)

    def __post_init__(self) -> None:
        spec = self.device.SPEC  # the kind's STATUS alarms as int masks with their texts: every poll
        self._alarm_bits = tuple((int(bit), code, CODES[code].text) for bit, code in spec.alarm_bits.items())
        self._travels = spec.behaviour == "leaf"

    def unchanged_at_rest(self, slot: SlotSnapshot | None) -> bool:
        """True when update(slot) would find nothing new: the very slot of the last update (an unchanged
        block), no drive running, and no latched fault since. A moving slot is always checked: whether its
        motion is commanded depends on the time."""
        return (slot is not None and slot is self.last and not slot.status & _MOVING
                and self.device.latched_fault == self.reported_latch)

    def update(self, slot: SlotSnapshot | None, now: float) -> dict[str, str]:
        """Condition alarms for this reading; latched ones are left in `events`."""
        self.events = []
        if slot is None:
            return self.conditions  # no fresh data: keep what was last known
        self.conditions = self._status_conditions(slot)
        latch = self.device.latched_fault
        if latch and latch != self.reported_latch and "travel timeout" in latch:
            self.events.append(("TRAVEL_TIMEOUT", latch))
        self.reported_latch = latch
        if self.last is not None and self._travels:
            self._movement(self.last, slot, now)
        self.last = slot
        return self.conditions

    def _status_conditions(self, slot: SlotSnapshot) -> dict[str, str]:
        found: dict[str, str] = {}
        status = slot.status
        if self._travels:
            if status & _DRIVE_FAULT or slot.fault_code:
                found["DRIVE_FAULT"] = (f"{fault_text(slot.fault_code, self.device.SPEC)} (fault code {slot.fault_code});"
                                        " a technician resets it once the cause is gone")
            if status & _LIMITS == _LIMITS:
                found["BOTH_LIMITS"] = "open and closed limit switches both made: a limit switch is faulty"
        for bit, code, text in self._alarm_bits:
            if status & bit:
                found[code] = text
        return found

    def _movement(self, before: SlotSnapshot, now_slot: SlotSnapshot, now: float) -> None:
        limits, moving_bits = _LIMITS, _MOVING
        moved = (
            before.position is not None and now_slot.position is not None
            and abs(now_slot.position - before.position) > POSITION_NOISE
        ) or bool(now_slot.status & moving_bits) or (before.status & limits) != (now_slot.status & limits)
        if not moved or self.device.command_in_force(now):
            return
        if self.device.local_or_manual(now_slot):
            return  # a person at the cabinet: LOCAL_CONTROL / MANUAL_RELEASE already say so
        lost = before.status & limits and not now_slot.status & limits
        still = not now_slot.status & moving_bits and (
            now_slot.position is None or before.position is None or abs(now_slot.position - before.position) <= POSITION_NOISE
        )
        if lost and still:
            which = "open" if before.status & _AT_OPEN else "closed"
            self.events.append(("LIMIT_LOST", f"the {which} limit switch dropped with no motion"))
        else:
            self.events.append(("UNCOMMANDED_MOVEMENT",
                                f"position {before.position} → {now_slot.position}, status "
                                f"0x{before.status:04X} → 0x{now_slot.status:04X} with no command in force"))
