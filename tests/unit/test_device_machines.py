"""Devices of one kind and travel share one transitions machine, each with its own state, queue and timer."""

from __future__ import annotations

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
