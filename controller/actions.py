"""Command one device: the rules, the write through its PLC's bus, the PLC's answer, the recorded intent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import structlog

from controller.devices import Device
from controller.devices.base import DeviceNotReached
from controller.event_store import EventStore
from controller.interlocks import Refused, RuleSite, check_device_command
from controller.states import DeviceState
from hal.bus import Bus
from hal.errors import CommsError


class CommandSite(RuleSite, Protocol):
    """What commanding a device needs of the site: the rules' view, the buses and the store."""

    @property
    def buses(self) -> Mapping[str, Bus]: ...

    @property
    def store(self) -> EventStore: ...

log = structlog.get_logger("controller.actions")
RESET_SETTLE_S = 1.0  # a reset must show its effect within this


class ActionFailed(Exception):
    """The command was written (or tried) and did not succeed: comms error or no acknowledgement."""


async def command_device(site: CommandSite, device: Device, verb: str, by: str, *, sequence: bool = False) -> str:
    """Check the rules, write `verb` to the device's slot, and return the PLC's acceptance text.

    Raises Refused (nothing written, or the PLC refused) or ActionFailed (comms, no acknowledgement).
    """
    check_device_command(site, device, verb, sequence=sequence)
    opening = verb in device.OPENING_VERBS
    if opening:
        device.opening_pending += 1  # an airlock partner is not "confirmed closed" from here on
    try:
        outcome = await site.buses[device.plc].command(
            device.plc, device.slot, device.VERBS[verb],
            # the rules again just before the write: a lockdown may have latched while it was queued
            recheck=lambda: check_device_command(site, device, verb, sequence=sequence),
        )
    except CommsError as exc:
        raise ActionFailed(f"{device.name}: {exc}") from exc
    finally:
        if opening:
            device.opening_pending -= 1
    if not outcome.acknowledged:
        site.alarms.raise_alarm("COMMAND_NOT_ACKNOWLEDGED", device.name, f"{verb}: {outcome.describe()}")
        raise ActionFailed(f"{device.name}: {outcome.describe()}")
    if not outcome.accepted:
        site.alarms.raise_alarm("COMMAND_REJECTED", device.name, f"{verb}: {outcome.describe()}")
        raise Refused("plc_rejected", f"{device.name}: the PLC refused {verb}: {outcome.describe()}")
    device.record_intent(verb, by)
    site.store.save_in_flight(device.name, verb, by)
    if verb == "reset":
        device.clear_latched_fault()  # only once the PLC accepted the reset
        try:
            await device.wait_state(frozenset(device.STATES) - {DeviceState.FAULT, DeviceState.UNKNOWN}, RESET_SETTLE_S,
                                    fail_fast=False)
        except DeviceNotReached as exc:
            raise Refused("fault_cause_present", f"{device.name}: the PLC kept the fault after RESET: {exc}") from exc
    log.info("device_commanded", device=device.name, verb=verb, by=by, seq=outcome.seq)
    return f"{device.name}: {verb} accepted by the PLC (COMMAND_SEQ {outcome.seq})"
