"""Devices of one kind and travel share one transitions machine, each with its own state, queue and timer (and no
unused per-device conveniences)."""

from __future__ import annotations

import asyncio

import pytest

from config.schema import DeviceSection
from controller.devices import DEVICE_CLASSES
from controller.devices.base import machine_for
from hal.profile import Status
from hal.snapshot import SlotSnapshot
from hal.unit import Quality


def gate(name: str, travel_s: float = 3.0):
    return DEVICE_CLASSES["folding_gate"](DeviceSection(name=name, kind="folding_gate", plc="p", slot=0,
                                                        travel_s=travel_s))


def closed_gate_slot(status: int) -> SlotSnapshot:
    return SlotSnapshot(gate("x").KIND, status, 1000, 0, 0, 0, 0, 0, 0, 0)


@pytest.mark.asyncio
async def test_devices_of_a_kind_share_a_machine_and_keep_their_own_state():
    one, two, slower = gate("gate-1"), gate("gate-2"), gate("gate-3", travel_s=9.0)
    assert one.machine is two.machine is machine_for(type(one), 4.5)
    assert slower.machine is not one.machine, "a different travel limit is a different timeout"
    await one.observe(Quality.GOOD, closed_gate_slot(Status.AT_CLOSED), None)
    assert (one.state, two.state) == ("closed", "unknown")
    one.detach()
    assert one not in one.machine.models and two in two.machine.models
    two.detach()
    slower.detach()


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_each_device_of_a_shared_machine_has_its_own_travel_timer():
    one, two = gate("gate-1"), gate("gate-2")  # travel 3 s × factor 1.5: 4.5 s allowed
    assert one.machine is two.machine
    for device in (one, two):
        await device.observe(Quality.GOOD, closed_gate_slot(Status.MOVING_OPEN), None)
    assert (one.state, two.state) == ("opening", "opening")
    await asyncio.sleep(2.0)
    await two.observe(Quality.GOOD, closed_gate_slot(Status.AT_OPEN), None)  # gate-2 arrives in time
    await asyncio.sleep(3.0)  # 5 s since gate-1 started opening
    assert one.state == "fault" and "travel timeout" in (one.latched_fault or "")
    assert two.state == "open" and two.latched_fault is None
    one.detach()
    two.detach()


def test_a_device_gets_its_triggers_from_the_machine_and_none_of_the_unused_conveniences():
    device = gate("gate-1")
    bound = set(vars(device))
    triggers = set(device.machine.events)
    assert {"trigger", "sense_closed", "travel_timed_out"} <= bound and triggers <= bound
    # may_<trigger> and is_<state> would be a partial each on every device (≈ 7 kB a device): nothing calls them
    assert not {name for name in bound if name.startswith(("may_", "is_"))}
    device.detach()
