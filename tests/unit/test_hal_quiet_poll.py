"""hal.quiet_poll through hal.bus.Bus: a calm PLC's unchanged blocks taken from a timer and a reply callback, the
same readings, heartbeats and commands as the task's; anything else taken the whole way by the task (fake PLC)."""

from __future__ import annotations

import pytest

from hal.profile import AckResult, Command, HeaderHolding, Kind, SlotInput, slot_base
from hal.unit import PlcReading, Problem, Quality
from tests.unit.bus_rig import FakeTransport, Readings, good, make_bus, now, running, until

pytestmark = pytest.mark.timeout(30)  # a busy-looping bus under looptime would otherwise hang

KINDS = [Kind.FOLDING_GATE, Kind.ROAD_BLOCKER]


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_calm_plc_is_read_quietly_on_the_poll_grid_with_its_heartbeats_written():
    fake, readings = FakeTransport(KINDS), Readings()
    async with running(make_bus(fake, readings, watchdog_ms=2000)):
        await until(good(readings))
        start, mark, writes = now(), readings.mark(), fake.mark()
        await until(lambda: now() >= start + 3.0, timeout=5)
    taken = readings.items[mark:]
    assert len(taken) in (30, 31) and readings.quiet >= 25  # 10 Hz; all but the heartbeats' wakes taken quietly
    gaps = [b[0] - a[0] for a, b in zip(taken, taken[1:])]
    assert all(g == pytest.approx(0.1, abs=0.01) for g in gaps), gaps
    for _, reading in taken:
        assert reading == PlcReading("plc-1", Quality.GOOD, reading.snapshot, None, False, 0, 2000, None, True)
    heartbeats = fake.calls("write_register", since=writes)
    assert [c.address for c in heartbeats] == [HeaderHolding.SUPERVISOR_HEARTBEAT] * 6  # every 0.5 s
    assert len({c.arg for c in heartbeats}) == 6


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_changed_block_a_failure_and_a_freeze_are_taken_the_whole_way():
    fake, readings = FakeTransport(KINDS), Readings()
    async with running(make_bus(fake, readings, comms_lost_polls=3, frozen_polls=5)):
        await until(lambda: readings.quiet >= 5)
        quiet, mark = readings.quiet, readings.mark()
        fake.set_slot(1, ANALOG_1=321)
        await until(lambda: len(readings.since(mark)) >= 2)
        changed, after = readings.since(mark)[:2]
        assert not changed.unchanged and changed.snapshot.slots[1].analog_1 == 321
        assert after.unchanged and readings.quiet == quiet + 1  # the change by the task, the next quietly again

        mark = readings.mark()
        fake.fail("read_input")
        await until(lambda: len(readings.since(mark)) >= 3)
        failed = readings.since(mark)[:3]
        assert [r.quality for r in failed] == [Quality.STALE, Quality.STALE, Quality.INVALID]
        assert [r.comms_lost for r in failed] == [False, False, True] and failed[0].problem is Problem.COMMS
        fake.heal()
        await until(lambda: readings.quiet >= quiet + 3)

        mark = readings.mark()
        fake.heartbeat_frozen = True
        await until(lambda: readings.last.problem is Problem.FROZEN)
        frozen = readings.since(mark)
        # the heartbeat is unchanged from the first read after it stopped: frozen at the 5th (frozen_polls)
        assert len(frozen) == 5 and all(r.quality is Quality.GOOD for r in frozen[:4])


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_command_queued_while_quiet_is_written_before_the_next_poll_and_acknowledged():
    fake, readings = FakeTransport(KINDS), Readings()
    bus = make_bus(fake, readings)
    async with running(bus):
        await until(lambda: readings.quiet >= 5)
        await until(lambda: now() % 0.1 > 0.05)  # between two polls
        mark, queued = fake.mark(), now()
        outcome = await bus.command("plc-1", 0, Command.OPEN)
    assert outcome.acknowledged and outcome.result is AckResult.ACCEPTED
    first, *_ = fake.calls(since=mark)
    assert first.op == "write_registers" and first.address == slot_base(0) + 0 and first.t == queued
    assert fake.slot(0, "ACK_SEQ") == outcome.seq


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_reading_the_handler_leaves_goes_to_on_reading():
    fake, readings = FakeTransport(KINDS), Readings()
    readings.leave_quiet = True
    async with running(make_bus(fake, readings)):
        await until(lambda: len(readings.items) >= 10)
    assert readings.quiet == 0 and all(r.quality is Quality.GOOD for r in readings.since(0))
    assert sum(r.unchanged for r in readings.since(0)) >= 8
    assert fake.slot(1, "KIND") == Kind.ROAD_BLOCKER and SlotInput.KIND == 0
