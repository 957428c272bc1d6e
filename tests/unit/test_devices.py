"""Device kinds: state derived from PLC feedback, unknown on bad data, travel timeout latched (virtual time)."""

from __future__ import annotations

import asyncio

import pytest

from config.schema import DeviceSection
from controller.devices import DEVICE_CLASSES
from hal.profile import FaultCode, Kind, SignalStatus, Status
from hal.snapshot import SlotSnapshot
from hal.unit import Quality


def slot(kind: Kind, status: int, position: int | None = 500, fault: int = 0) -> SlotSnapshot:
    return SlotSnapshot(kind, int(status), position, 0, 0, fault, 0, 0, 0, 0)


def make(kind: str, travel_s: float = 3.0, changes: list | None = None):
    async def record(change):
        if changes is not None:
            changes.append(change)

    cfg = DeviceSection(name="dev", kind=kind, plc="plc", slot=0, travel_s=travel_s)
    return DEVICE_CLASSES[kind](cfg, record)


@pytest.mark.parametrize(
    ("status", "fault", "expected"),
    [
        (Status.AT_CLOSED | Status.LOCKED, 0, "closed"),
        (Status.AT_OPEN, 0, "open"),
        (Status.MOVING_OPEN, 0, "opening"),
        (Status.MOVING_CLOSE, 0, "closing"),
        (0, 0, "stopped"),
        (Status.AT_OPEN | Status.AT_CLOSED, 0, "fault"),
        (Status.DRIVE_FAULT | Status.AT_CLOSED, FaultCode.MAX_RUN_EXCEEDED, "fault"),
        (Status.LOCAL | Status.AT_OPEN, 0, "local"),
        (Status.MANUAL_RELEASE, 0, "local"),
    ],
)
@pytest.mark.asyncio
async def test_leaf_state_from_feedback(status, fault, expected):
    gate = make("folding_gate")
    await gate.observe(Quality.GOOD, slot(Kind.FOLDING_GATE, status, fault=fault), None)
    assert gate.state == expected


@pytest.mark.parametrize("quality", [Quality.STALE, Quality.INVALID])
@pytest.mark.asyncio
async def test_data_not_good_is_unknown_never_the_last_value(quality):
    gate = make("folding_gate")
    await gate.observe(Quality.GOOD, slot(Kind.FOLDING_GATE, Status.AT_OPEN), None)
    assert gate.state == "open"
    await gate.observe(quality, None, "timeout")
    assert gate.state == "unknown"
    assert gate.as_dict()["position"] is None and gate.as_dict()["quality"] == quality.value


@pytest.mark.asyncio
async def test_blocker_is_shown_raised_and_lowered():
    blocker = make("road_blocker", travel_s=6.0)
    await blocker.observe(Quality.GOOD, slot(Kind.ROAD_BLOCKER, Status.AT_CLOSED), None)
    assert (blocker.state, blocker.display_state) == ("closed", "raised")
    await blocker.observe(Quality.GOOD, slot(Kind.ROAD_BLOCKER, Status.MOVING_OPEN), None)
    assert blocker.display_state == "lowering"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (SignalStatus.RED, "red"),
        (SignalStatus.GREEN, "green"),
        (SignalStatus.GREEN | SignalStatus.RED, "unknown"),
        (0, "unknown"),
        (SignalStatus.LAMP_FAULT | SignalStatus.RED, "fault"),
        (SignalStatus.LOCAL | SignalStatus.RED, "local"),
    ],
)
@pytest.mark.asyncio
async def test_signal_state(status, expected):
    signal = make("traffic_signal")
    await signal.observe(Quality.GOOD, slot(Kind.TRAFFIC_SIGNAL, status), None)
    assert signal.state == expected


@pytest.mark.looptime
@pytest.mark.asyncio
async def test_travel_timeout_latches_fault_until_cleared():
    changes: list = []
    gate = make("folding_gate", travel_s=3.0, changes=changes)  # limit 3.0 × 1.5 = 4.5 s
    await gate.observe(Quality.GOOD, slot(Kind.FOLDING_GATE, Status.AT_CLOSED), None)
    for _ in range(44):  # still running after 4.4 s: no fault, and repeated readings do not restart the timer
        await gate.observe(Quality.GOOD, slot(Kind.FOLDING_GATE, Status.MOVING_OPEN), None)
        await asyncio.sleep(0.1)
    assert gate.state == "opening"
    await asyncio.sleep(0.2)
    assert gate.state == "fault"
    assert "travel timeout" in gate.latched_fault
    await gate.observe(Quality.GOOD, slot(Kind.FOLDING_GATE, Status.AT_OPEN), None)
    assert gate.state == "fault", "a latched fault holds until reset even when the limit is reached later"
    gate.clear_latched_fault()
    await gate.observe(Quality.GOOD, slot(Kind.FOLDING_GATE, Status.AT_OPEN), None)
    assert gate.state == "open"
    assert [(c.from_state, c.to_state, c.trigger) for c in changes] == [
        ("unknown", "closed", "sense_closed"),
        ("closed", "opening", "sense_opening"),
        ("opening", "fault", "travel_timed_out"),
        ("fault", "open", "sense_open"),
    ]


@pytest.mark.looptime
@pytest.mark.asyncio
async def test_reaching_the_limit_in_time_is_no_fault():
    gate = make("folding_gate", travel_s=3.0)
    await gate.observe(Quality.GOOD, slot(Kind.FOLDING_GATE, Status.MOVING_CLOSE), None)
    await asyncio.sleep(3.0)
    await gate.observe(Quality.GOOD, slot(Kind.FOLDING_GATE, Status.AT_CLOSED), None)
    await asyncio.sleep(10)
    assert gate.state == "closed" and gate.latched_fault is None
