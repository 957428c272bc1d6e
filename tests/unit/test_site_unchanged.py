"""Site._on_reading on an unchanged block: the devices still take the reading (quality, state, intent), the alarm
work of a device at rest is skipped, and whatever depends on the time is still checked (a drive still running)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import pytest_asyncio

from controller.alarms import AlarmBoard
from controller.event_store import EventStore
from controller.site import Site
from controller.supervision import DeviceWatch
from hal.profile import Kind, SignalStatus, Status
from hal.snapshot import PlcSnapshot, SlotSnapshot
from hal.unit import PlcReading, Quality
from tests.unit.condition_rig import demo_config

PLC = "plc-lane-1"


@pytest_asyncio.fixture
async def site():
    site = Site(demo_config(), EventStore(Path(":memory:")))
    yield site
    await site.stop()
    site.store.close()


def slots(site: Site, gate_status: int = int(Status.AT_CLOSED | Status.LOCKED), gate_position: int = 1000):
    by_slot = {}
    for device in site.devices_on(PLC):
        if device.SPEC.behaviour == "signal":
            by_slot[device.slot] = SlotSnapshot(Kind.TRAFFIC_SIGNAL, int(SignalStatus.RED), None, 0, 0, 0, 0, 0, 0, 0)
        elif device.KIND == Kind.FOLDING_GATE:
            by_slot[device.slot] = SlotSnapshot(Kind.FOLDING_GATE, gate_status, gate_position, 0, 0, 0, 42, 0, 0, 0)
        else:
            by_slot[device.slot] = SlotSnapshot(device.KIND, int(Status.AT_CLOSED), 1000, 0, 0, 0, 1600, 352, 0, 0)
    return tuple(by_slot[s] for s in sorted(by_slot))


async def read(site: Site, slot_tuple, *, unchanged: bool, quality: Quality = Quality.GOOD) -> PlcReading:
    snapshot = None if quality is not Quality.GOOD else PlcSnapshot(
        0x4250, 1, 0, 0, len(slot_tuple), 10, 0, slot_tuple, asyncio.get_running_loop().time())
    reading = PlcReading(PLC, quality, snapshot, None if snapshot else "no reply", False, 0 if snapshot else 1,
                         site.cfg.plc_named(PLC).watchdog_ms, unchanged=unchanged)
    await site._on_reading(reading)  # noqa: SLF001 - fed as the bus feeds it
    return reading


def gate(site: Site):
    return next(d for d in site.devices_on(PLC) if d.KIND == Kind.FOLDING_GATE)


class Counted:
    """Counts the calls of DeviceWatch.update and AlarmBoard.sync (per subject) while it is installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.updates: list[str] = []
        self.syncs: list[str] = []
        update, sync = DeviceWatch.update, AlarmBoard.sync

        def counted_update(watch, slot, now):
            self.updates.append(watch.device.name)
            return update(watch, slot, now)

        def counted_sync(board, subject, conditions):
            self.syncs.append(subject)
            return sync(board, subject, conditions)

        monkeypatch.setattr(DeviceWatch, "update", counted_update)
        monkeypatch.setattr(AlarmBoard, "sync", counted_sync)

    def clear(self) -> None:
        self.updates.clear()
        self.syncs.clear()


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_an_unchanged_block_at_rest_skips_the_alarm_work_but_every_device_takes_the_reading(site, monkeypatch):
    counted = Counted(monkeypatch)
    kept = slots(site)
    await read(site, kept, unchanged=False)
    devices = site.devices_on(PLC)
    assert set(counted.updates) == {d.name for d in devices} and PLC in counted.syncs
    counted.clear()
    polls_ok = site.plcs[PLC].polls_ok
    for device in devices:
        device.quality_reason = "stale marker"  # observe() must refresh it from this reading
    await read(site, kept, unchanged=True)
    assert counted.updates == [] and counted.syncs == []
    assert site.plcs[PLC].polls_ok == polls_ok + 1
    assert all(d.quality is Quality.GOOD and d.quality_reason is None and d.feedback is not None for d in devices)
    assert gate(site).state == "closed"


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_block_that_changed_or_came_after_bad_data_takes_the_whole_path(site, monkeypatch):
    counted = Counted(monkeypatch)
    await read(site, slots(site), unchanged=False)
    counted.clear()
    await read(site, slots(site, gate_status=int(Status.AT_CLOSED)), unchanged=False)  # the lock bolt let go
    assert set(counted.updates) == {d.name for d in site.devices_on(PLC)}
    assert gate(site).state == "closed"
    await read(site, (), unchanged=False, quality=Quality.STALE)
    assert gate(site).state == "unknown"
    counted.clear()
    again = slots(site)  # the bus decodes afresh after a reading that was not GOOD: new slot objects
    await read(site, again, unchanged=False)
    assert set(counted.updates) == {d.name for d in site.devices_on(PLC)} and gate(site).state == "closed"


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_drive_still_running_on_an_unchanged_block_is_uncommanded_once_the_command_is_out_of_force(site):
    device = gate(site)
    # DRIVE_FAULT with the drive still running: the state is fault, so no travel timer latches anything
    # meanwhile; only the time says the motion is no longer commanded
    running = slots(site, gate_status=int(Status.MOVING_CLOSE | Status.DRIVE_FAULT), gate_position=500)
    device.record_intent("close", "guard")
    await read(site, running, unchanged=False)
    for _ in range(3):
        await read(site, running, unchanged=True)
    assert not [a for a in site.alarms.listing() if a["code"] == "UNCOMMANDED_MOVEMENT"]
    assert device.state == "fault" and device.latched_fault is None
    await asyncio.sleep(device.cfg.travel_s * device.cfg.travel_factor + 2)  # the command's window has passed
    await read(site, running, unchanged=True)  # nothing in the block changed, only the time
    assert [a["subject"] for a in site.alarms.listing() if a["code"] == "UNCOMMANDED_MOVEMENT"] == [device.name]
