"""Rules checked before any command reaches a PLC; a refusal names the rule and the device that blocks it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Protocol

from config.schema import SiteConfig
from controller.alarm_codes import Severity
from controller.alarms import AlarmBoard
from controller.devices import Device
from controller.readiness import oil_c
from controller.states import DeviceState, LaneMode
from hal.profile import Status
from hal.unit import Quality



class LaneView(Protocol):
    """What the rules read of a lane."""

    name: str
    mode: str
    reason: str


class RuleSite(Protocol):
    """What the rules read of the site (controller.site.Site gives it): nothing more."""

    @property
    def cfg(self) -> SiteConfig: ...

    @property
    def devices(self) -> Mapping[str, Device]: ...

    @property
    def alarms(self) -> AlarmBoard: ...

    def lane_of(self, device: str) -> LaneView | None: ...

    def lane_devices_of(self, device: str) -> list[Device]: ...

    def locked(self, device: str) -> bool: ...


class Refused(Exception):
    """A command refused by a rule, before anything was written."""

    def __init__(self, rule: str, message: str):
        self.rule = rule
        super().__init__(f"refused by rule {rule}: {message}")


RESET_BLOCKERS = frozenset({"BOTH_LIMITS", "LOW_PRESSURE", "SENSOR_FAULT", "ESTOP", "COMMS_LOST", "WRONG_PROGRAM"})
SECURING_VERBS = frozenset({"close", "raise", "red", "efo"})
_VEHICLE_PRESENT = int(Status.VEHICLE_PRESENT)


def is_secured(device: Device) -> bool:
    """Confirmed blocking: closed (a blocker raised) or red, from good data."""
    return device.quality is Quality.GOOD and device.state in (DeviceState.CLOSED, DeviceState.RED)


def stays_secured(device: Device) -> bool:
    """Secured, and no opening command on its way to it or still moving it (airlock partners)."""
    if not is_secured(device) or device.opening_pending:
        return False
    intent = device.intent
    opening = intent is not None and intent.verb in device.OPENING_VERBS
    return not (opening and device.command_in_force(asyncio.get_running_loop().time()))


def vehicle_present(device: Device) -> bool:
    fb = device.feedback
    return fb is not None and device.SPEC.behaviour == "leaf" and bool(fb.status & _VEHICLE_PRESENT)


def check_device_command(site: RuleSite, device: Device, verb: str, *, sequence: bool = False) -> None:
    """Raise Refused if any rule forbids `verb` on `device` now; `sequence` marks a lane sequence step."""
    if device.quality is not Quality.GOOD:
        raise Refused("data_not_valid",
                      f"{device.name}: PLC data are {device.quality.value} ({device.quality_reason}); no command written")
    if device.state == DeviceState.LOCAL:
        raise Refused("device_local", f"{device.name} is under local control; no command written")
    if verb in device.OPENING_VERBS and device.state == DeviceState.FAULT:
        raise Refused("device_fault", f"{device.name} has a fault; nothing that opens it is allowed until reset")
    lane = site.lane_of(device.name)
    if verb in device.OPENING_VERBS:
        subjects = {device.name, device.plc} | {d.name for d in site.lane_devices_of(device.name)}
        faults = site.alarms.active_on(subjects, Severity.FAULT)
        if faults:
            first = faults[0]
            raise Refused("active_fault", f"alarm {first.id} {first.code} on {first.subject} ({first.message}) is active; "
                                          f"nothing that opens {device.name} is allowed")
    if verb == "reset":
        causes = site.alarms.active_on({device.name, device.plc}, Severity.WARNING)
        present = [a for a in causes if a.code in RESET_BLOCKERS]
        if present:
            raise Refused("fault_cause_present", f"{device.name}: {present[0].code} ({present[0].message}) is still present")
    if verb != "efo" and verb not in SECURING_VERBS and site.locked(device.name):
        who = f"lane {lane.name}" if lane is not None and lane.mode == LaneMode.LOCKDOWN else "the site"
        raise Refused("lockdown", f"{who} is in lockdown; {verb} {device.name} is not allowed until a technician releases it")
    if lane is not None and verb in device.OPENING_VERBS and lane.mode == LaneMode.FAULT:
        raise Refused("lane_fault", f"lane {lane.name} is in fault ({lane.reason}); secure it first")
    if verb in device.SPEC.vehicle_interlocked:
        blocking = [d for d in site.lane_devices_of(device.name) if vehicle_present(d)]
        if blocking:
            raise Refused("vehicle_present",
                          f"{blocking[0].name} reports a vehicle on the presence loop; raise {device.name} only by lockdown (EFO)")
    if verb in device.OPENING_VERBS:
        for pair in site.cfg.interlock:
            if device.name in pair.devices:
                other = site.devices[next(n for n in pair.devices if n != device.name)]
                if not stays_secured(other):
                    raise Refused("never_both_open",
                                  f"{device.name} and {other.name} are an airlock pair; {other.name} is "
                                  f"{other.state} ({other.quality.value}), not confirmed closed")
    if verb in device.OPENING_VERBS and site.cfg.condition.refuse_open_in_cold:
        _refuse_in_cold(site, device)
    if lane is not None and lane.mode == LaneMode.MAINTENANCE and sequence:
        raise Refused("maintenance", f"lane {lane.name} is in maintenance; no automatic sequence")


def _refuse_in_cold(site: RuleSite, device: Device) -> None:
    """Opted in by the site ([condition] refuse_open_in_cold): nothing of a lane opens while one of its blockers'
    oil is below the cold limit (EFO may be too slow to re-secure it). Securing is never refused."""
    limit = site.cfg.condition.oil_cold_limit_c
    for each in site.lane_devices_of(device.name):
        oil = oil_c(each)
        if oil is not None and oil < limit:
            raise Refused("oil_too_cold", f"{each.name} oil at {oil:.1f} °C is below the cold limit {limit:.1f} °C; "
                                          f"nothing that opens {device.name} is allowed until it warms up")
