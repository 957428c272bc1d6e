"""hal.bus.Bus readings: good data, stale then comms lost, bad replies, frozen or wrong programs, big PLCs."""

from __future__ import annotations

import asyncio

import pytest

from hal.errors import CommsError
from hal.profile import Command, HeaderInput, Kind, Status, config_crc32, split_u32
from hal.unit import Quality
from tests.unit.bus_rig import GATE, PLC, FakeTransport, Readings, good, make_bus, running, until

pytestmark = pytest.mark.timeout(30)  # a busy-looping bus under looptime would otherwise hang


# ----- data quality -----------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_good_reading_carries_the_plc_data():
    fake, readings = FakeTransport(GATE), Readings()
    fake.set_slot(0, STATUS=Status.AT_CLOSED | Status.LOCKED, POSITION=1000, ANALOG_2=0xFFFE, CYCLE_COUNT=1)
    async with running(make_bus(fake, readings)):
        await until(good(readings))
    reading = readings.last
    assert reading.plc == PLC
    assert reading.reason is None and not reading.comms_lost and reading.consecutive_failures == 0
    slot = reading.snapshot.slots[0]
    assert slot.kind is Kind.FOLDING_GATE
    assert slot.status == Status.AT_CLOSED | Status.LOCKED
    assert slot.position == 1000
    assert slot.analog_2 == -2
    assert slot.cycle_count == 0x10000


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_stale_then_comms_lost_after_consecutive_failures_then_recovery():
    fake, readings = FakeTransport(GATE), Readings()
    async with running(make_bus(fake, readings, comms_lost_polls=3)):
        await until(good(readings))
        t_fail = readings.mark()
        fake.fail("read_input")
        await until(lambda: sum(1 for r in readings.since(t_fail) if r.quality is not Quality.GOOD) >= 5)
        t_heal = readings.mark()
        fake.heal()
        await until(lambda: any(r.quality is Quality.GOOD for r in readings.since(t_heal)))
    failing = [r for r in readings.since(t_fail) if r.quality is not Quality.GOOD]
    assert [r.quality for r in failing[:5]] == [Quality.STALE, Quality.STALE] + [Quality.INVALID] * 3
    assert [r.comms_lost for r in failing[:5]] == [False, False, True, True, True]
    assert [r.consecutive_failures for r in failing[:5]] == [1, 2, 3, 4, 5]
    assert all(r.snapshot is None and "read_input failed" in r.reason for r in failing)
    recovered = next(r for r in readings.since(t_heal) if r.quality is Quality.GOOD)
    assert recovered.consecutive_failures == 0 and not recovered.comms_lost and recovered.reason is None
    # the first reading after the heal is already GOOD: recovery within one poll
    assert readings.since(t_heal)[0].quality is Quality.GOOD
    assert readings.since(t_heal)[0] is recovered


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_reply_that_fails_decoding_is_a_failure_not_data():
    fake, readings = FakeTransport(GATE), Readings()
    async with running(make_bus(fake, readings)):
        await until(good(readings))
        t0 = readings.mark()
        fake.set_slot(0, POSITION=1500)
        await until(lambda: bool(readings.since(t0)))
    reading = readings.since(t0)[0]
    assert reading.quality is Quality.STALE
    assert reading.snapshot is None
    assert "POSITION 1500" in reading.reason


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_frozen_plc_heartbeat_makes_data_invalid_and_refuses_commands():
    fake, readings = FakeTransport(GATE), Readings()
    bus = make_bus(fake, readings, frozen_polls=5)
    async with running(bus):
        await until(good(readings))
        t_freeze = readings.mark()
        fake.heartbeat_frozen = True
        await until(lambda: any(r.quality is not Quality.GOOD for r in readings.since(t_freeze)))
        frozen = readings.last
        with pytest.raises(CommsError):
            await bus.command(PLC, 0, Command.OPEN)
        t_thaw = readings.mark()
        fake.heartbeat_frozen = False
        await until(lambda: bool(readings.since(t_thaw)))
        thawed = readings.since(t_thaw)[0]
    after_freeze = [r.quality for r in readings.since(t_freeze)]
    first_bad = after_freeze.index(Quality.INVALID)
    assert after_freeze[:first_bad] == [Quality.GOOD] * 4  # the 5th poll with the same PLC_HEARTBEAT is the one that says frozen
    assert frozen.quality is Quality.INVALID
    assert frozen.snapshot is None and not frozen.comms_lost
    assert "frozen" in frozen.reason and "5 polls" in frozen.reason
    assert thawed.quality is Quality.GOOD
    assert not fake.calls("write_registers")


def _wrong_kinds(fake: FakeTransport) -> None:
    fake.set_slot(0, KIND=Kind.ROAD_BLOCKER)
    high, low = split_u32(config_crc32([Kind.ROAD_BLOCKER]))
    fake.input[HeaderInput.CONFIG_CRC32], fake.input[HeaderInput.CONFIG_CRC32 + 1] = high, low


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (_wrong_kinds, "slot kinds are [2], configured [1]"),
        (lambda f: f.input.__setitem__(HeaderInput.CONFIG_CRC32 + 1, 0), "CONFIG_CRC32"),
        (lambda f: f.input.__setitem__(HeaderInput.PROFILE_MAGIC, 0x4251), "PROFILE_MAGIC is 0x4251"),
        (lambda f: f.input.__setitem__(HeaderInput.PROFILE_VERSION, 2), "PROFILE_VERSION is 2"),
        (lambda f: f.input.__setitem__(HeaderInput.SLOT_COUNT, 2), "SLOT_COUNT is 2, configured 1"),
    ],
    ids=["kinds", "crc", "magic", "version", "slot-count"],
)
@pytest.mark.asyncio
@pytest.mark.looptime
async def test_wrong_program_makes_data_invalid_and_refuses_commands(mutate, reason):
    fake, readings = FakeTransport(GATE), Readings()
    mutate(fake)
    bus = make_bus(fake, readings, kinds=GATE)
    async with running(bus):
        await until(lambda: len(readings.items) >= 3)
        with pytest.raises(CommsError):
            await bus.command(PLC, 0, Command.OPEN)
    assert all(r.quality is Quality.INVALID for _, r in readings.items)
    assert all(reason in r.reason and r.snapshot is None and not r.comms_lost for _, r in readings.items)
    assert not fake.calls("write_registers")


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_ten_slots_are_read_with_two_fc4_requests_per_poll():
    kinds = [Kind(i % 4 + 1) for i in range(10)]
    fake, readings = FakeTransport(kinds), Readings()
    fake.set_slot(9, POSITION=333, ACK_SEQ=7)
    async with running(make_bus(fake, readings, poll_s=0.1)):
        await until(good(readings))
        m0, r0 = fake.mark(), readings.mark()
        await asyncio.sleep(1.0)
        reads = [(c.address, c.arg) for c in fake.calls("read_input", since=m0)]
        good_readings = [r for r in readings.since(r0) if r.quality is Quality.GOOD]
    assert len(reads) >= 18 and len(reads) % 2 == 0
    assert reads == [(0, 124), (124, 12)] * (len(reads) // 2)
    assert len(good_readings) == len(reads) // 2  # one reading per poll, not per request
    snap = readings.last.snapshot
    assert len(snap.slots) == 10
    assert snap.slots[9].kind is kinds[9] and snap.slots[9].position == 333 and snap.slots[9].ack_seq == 7


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_nine_slots_are_read_with_one_fc4_request_per_poll():
    kinds = [Kind.BOOM_BARRIER] * 9
    fake, readings = FakeTransport(kinds), Readings()
    async with running(make_bus(fake, readings, poll_s=0.1)):
        await until(good(readings))
        m0 = fake.mark()
        await asyncio.sleep(1.0)
    reads = {(c.address, c.arg) for c in fake.calls("read_input", since=m0)}
    assert reads == {(0, 124)}


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_second_read_of_a_ten_slot_plc_failing_fails_the_whole_poll():
    kinds = [Kind.FOLDING_GATE] * 10
    fake, readings = FakeTransport(kinds), Readings()
    async with running(make_bus(fake, readings)):
        await until(good(readings))
        t0 = readings.mark()
        fake.on_call = lambda c: fake.fail("read_input") if c.op == "read_input" and c.address == 124 else None
        await until(lambda: bool(readings.since(t0)))
    reading = readings.since(t0)[0]
    assert reading.quality is Quality.STALE and reading.snapshot is None
