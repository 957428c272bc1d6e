"""hal.bus.Bus on an unchanged block: the last snapshot reused with a fresh heartbeat and time, any other word
decoded afresh, a stopped heartbeat still frozen, a block after a reading that was not GOOD checked again."""

from __future__ import annotations

import pytest

from hal.profile import HeaderInput, Kind, SlotInput, slot_base
from hal.unit import Quality
from tests.unit.bus_rig import FakeTransport, Readings, good, make_bus, running, until

pytestmark = pytest.mark.timeout(30)  # a busy-looping bus under looptime would otherwise hang

KINDS = [Kind.FOLDING_GATE, Kind.ROAD_BLOCKER]


def goods(readings: Readings, since: int = 0):
    return [r for r in readings.since(since) if r.quality is Quality.GOOD]


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_an_unchanged_block_reuses_the_slots_and_refreshes_heartbeat_and_time():
    fake, readings = FakeTransport(KINDS), Readings()
    async with running(make_bus(fake, readings)):
        await until(lambda: len(goods(readings)) >= 4)
    first, *rest = goods(readings)
    assert not first.unchanged  # the first block is always decoded
    assert all(r.unchanged for r in rest)
    assert all(r.snapshot.slots is first.snapshot.slots for r in rest)
    heartbeats = [r.snapshot.heartbeat for r in [first, *rest]]
    times = [r.snapshot.read_at for r in [first, *rest]]
    assert heartbeats == sorted(set(heartbeats)) and times == sorted(set(times))  # fresh on every reading


WORDS = {
    "PLC_STATUS": HeaderInput.PLC_STATUS,
    "SCAN_TIME_MS": HeaderInput.SCAN_TIME_MS,
    "slot 0 STATUS": slot_base(0) + SlotInput.STATUS,
    "slot 1 ANALOG_1": slot_base(1) + SlotInput.ANALOG_1,
    "slot 1 CYCLE_COUNT low word (the block's last but two)": slot_base(1) + SlotInput.CYCLE_COUNT + 1,
    "slot 1 reserved (the block's last word)": slot_base(1) + 11,
}


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize("address", WORDS.values(), ids=WORDS.keys())
async def test_a_change_in_any_word_but_the_heartbeat_is_decoded_afresh(address):
    fake, readings = FakeTransport(KINDS), Readings()
    async with running(make_bus(fake, readings)):
        await until(lambda: len(goods(readings)) >= 2)
        before = readings.last.snapshot.slots
        mark = readings.mark()
        fake.input[address] ^= 0x0001 if address != HeaderInput.SCAN_TIME_MS else 0x0003
        await until(lambda: len(goods(readings, mark)) >= 2)
    changed, after = goods(readings, mark)[:2]
    assert not changed.unchanged and changed.snapshot.slots is not before  # decoded afresh, not reused
    if address == slot_base(0) + SlotInput.STATUS:
        assert changed.snapshot.slots[0].status == before[0].status ^ 0x0001
    assert after.unchanged and after.snapshot.slots is changed.snapshot.slots  # then that block is the one kept


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_heartbeat_that_stops_changing_is_still_detected_on_an_unchanged_block():
    fake, readings = FakeTransport(KINDS), Readings()
    async with running(make_bus(fake, readings, frozen_polls=5)):
        await until(lambda: len(goods(readings)) >= 3)
        assert readings.last.unchanged
        mark = readings.mark()
        fake.heartbeat_frozen = True
        await until(lambda: any(r.quality is not Quality.GOOD for r in readings.since(mark)))
        frozen = next(r for r in readings.since(mark) if r.quality is not Quality.GOOD)
        healed = readings.mark()
        fake.heartbeat_frozen = False
        await until(good(readings))
    assert frozen.snapshot is None and "PLC_HEARTBEAT unchanged for 5 polls" in frozen.reason
    back = goods(readings, healed)[0]
    assert not back.unchanged  # after a reading that was not GOOD the block is decoded and checked again


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_after_a_failed_poll_the_same_block_is_decoded_and_checked_again():
    fake, readings = FakeTransport(KINDS), Readings()
    async with running(make_bus(fake, readings)):
        await until(lambda: len(goods(readings)) >= 2)
        kept = readings.last.snapshot.slots
        fake.fail("read_input")
        mark = readings.mark()
        await until(lambda: any(r.quality is not Quality.GOOD for r in readings.since(mark)))
        fake.heal()
        healed = readings.mark()
        await until(lambda: goods(readings, healed))
    back = goods(readings, healed)[0]
    assert not back.unchanged and back.snapshot.slots is not kept and back.snapshot.slots == kept


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_wrong_program_on_an_otherwise_unchanged_block_is_still_refused():
    fake, readings = FakeTransport(KINDS), Readings()
    async with running(make_bus(fake, readings)):
        await until(lambda: len(goods(readings)) >= 2)
        mark = readings.mark()
        fake.input[HeaderInput.CONFIG_CRC32 + 1] ^= 0x00FF
        await until(lambda: len(readings.since(mark)) >= 3)
    assert all(r.quality is Quality.INVALID and "CONFIG_CRC32" in r.reason for r in readings.since(mark))
