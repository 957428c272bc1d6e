"""hal.bus.Bus commands: written before the next poll, acknowledged, refused, failed (FakeTransport, looptime)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from hal.errors import CommsError
from hal.profile import AckResult, Command, HeaderInput, Kind, SlotHolding, slot_base
from hal.unit import CommandOutcome, Quality
from tests.unit.bus_rig import GATE, PLC, Call, FakeTransport, Readings, good, make_bus, now, running, until

pytestmark = pytest.mark.timeout(30)  # a busy-looping bus under looptime would otherwise hang


# ----- commands ---------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_command_issued_during_a_poll_is_written_before_the_next_poll_read():
    fake, readings = FakeTransport(GATE), Readings()
    fake.set_slot(0, ACK_SEQ=41)
    bus = make_bus(fake, readings)
    async with running(bus):
        await until(good(readings))
        in_poll = asyncio.Event()
        fake.delay = 0.02
        fake.on_call = lambda call: in_poll.set() if call.op == "read_input" else None
        await in_poll.wait()  # a FC4 read is on the wire right now
        fake.on_call = None
        mark = len(fake.log)
        outcome = await bus.command(PLC, 0, Command.OPEN)
    after = fake.log[mark:]
    assert [c.op for c in after[:2]] == ["write_registers", "read_input"]
    write = after[0]
    assert (write.address, write.arg) == (slot_base(0) + SlotHolding.COMMAND, [Command.OPEN, 42])
    assert outcome == CommandOutcome(acknowledged=True, result=AckResult.ACCEPTED, seq=42)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_accepted_command_is_answered_fast_not_at_the_next_regular_poll():
    fake, readings = FakeTransport([Kind.FOLDING_GATE, Kind.ROAD_BLOCKER]), Readings()
    fake.set_slot(1, ACK_SEQ=0xFFFF)
    bus = make_bus(fake, readings, poll_s=1.0)
    async with running(bus):
        await until(good(readings))
        await asyncio.sleep(0.3)  # mid-way between two regular polls
        t0 = now()
        outcome = await bus.command(PLC, 1, Command.CLOSE)
        took = now() - t0
        second = await bus.command(PLC, 1, Command.STOP)
    assert outcome.acknowledged and outcome.accepted and outcome.result is AckResult.ACCEPTED
    assert outcome.seq == 1  # after 0xFFFF comes 1, never 0
    assert second.seq == 2 and second.accepted
    assert took < 0.1
    assert fake.holding[slot_base(1) + SlotHolding.COMMAND] == Command.STOP
    assert fake.holding[slot_base(0) + SlotHolding.COMMAND] == 0  # the other slot untouched


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_acknowledgement_is_read_one_plc_scan_after_the_write_not_straight_after_it():
    """The PLC acknowledges at its next scan (10 ms here): a read at once would find nothing and cost a reading's
    processing while other buses are still writing (a lockdown's fan-out)."""
    fake, readings = FakeTransport(GATE), Readings()
    bus = make_bus(fake, readings, poll_s=1.0)
    async with running(bus):
        await until(good(readings))
        await asyncio.sleep(0.3)  # mid-way between two regular polls
        mark = fake.mark()
        outcome = await bus.command(PLC, 0, Command.OPEN)
    assert outcome.accepted
    write, *reads = fake.calls("write_registers", "read_input", since=mark)
    assert write.op == "write_registers" and reads[0].op == "read_input"
    assert 0.010 <= reads[0].t - write.t <= 0.015, f"ack read {1000 * (reads[0].t - write.t):.1f} ms after the write"


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_rejected_command_reports_the_ack_result():
    fake, readings = FakeTransport(GATE), Readings()
    fake.ack_result = AckResult.REJECTED_INTERLOCK
    bus = make_bus(fake, readings)
    async with running(bus):
        await until(good(readings))
        outcome = await bus.command(PLC, 0, Command.CLOSE)
    assert outcome.acknowledged
    assert outcome.result is AckResult.REJECTED_INTERLOCK
    assert not outcome.accepted
    assert "interlock" in outcome.describe()


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_unacknowledged_command_is_reported_after_the_deadline_with_fast_polls_meanwhile():
    fake, readings = FakeTransport(GATE), Readings()
    fake.ack_result = None
    bus = make_bus(fake, readings, poll_s=0.1, timeout_s=0.3)
    async with running(bus):
        await until(good(readings))
        t0, m0 = now(), fake.mark()
        outcome = await bus.command(PLC, 0, Command.OPEN)
        took = now() - t0
        fast = fake.calls("read_input", since=m0)
    assert outcome == CommandOutcome(acknowledged=False, result=None, seq=1)
    assert "not acknowledged" in outcome.describe()
    deadline = 10 * 0.010 + 0.3 + 0.1  # ACK_SCANS scans + timeout + poll
    assert deadline <= took <= deadline + 0.05
    assert len(fast) >= 10  # polled every ~2 scans, not every 100 ms


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_plc_reporting_a_1_ms_scan_is_not_read_more_than_every_10_ms_while_its_ack_is_awaited():
    fake, readings = FakeTransport(GATE), Readings()
    fake.input[HeaderInput.SCAN_TIME_MS] = 1
    fake.ack_result = None  # never acknowledged
    bus = make_bus(fake, readings, poll_s=0.1, timeout_s=0.3)
    async with running(bus):
        await until(good(readings))
        t0, m0 = now(), fake.mark()
        outcome = await bus.command(PLC, 0, Command.OPEN)
        took = now() - t0
    assert not outcome.acknowledged
    reads = len(fake.calls("read_input", since=m0))
    assert 10 <= reads <= took / 0.010 + took / 0.1 + 2, f"{reads} reads in {took:.2f} s"  # ack reads + the grid's


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_command_still_gets_an_outcome_when_polls_fail_after_the_write():
    """The link stays up but every read fails: the caller must not wait forever for the ack."""
    fake, readings = FakeTransport(GATE), Readings()
    fake.ack_result = None
    bus = make_bus(fake, readings, poll_s=0.1, timeout_s=0.3)
    async with running(bus):
        await until(good(readings))
        fake.on_call = lambda call: fake.fail("read_input") if call.op == "write_registers" else None
        outcome = await asyncio.wait_for(bus.command(PLC, 0, Command.OPEN), 5.0)
        assert not outcome.acknowledged
        # and the bus went back to normal polling instead of polling fast for ever
        m0 = fake.mark()
        await asyncio.sleep(1.0)
        assert len(fake.calls("read_input", since=m0)) <= 11


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_command_is_refused_with_comms_error_before_any_good_data():
    fake, readings = FakeTransport(GATE), Readings()
    fake.connect_failures = 1000
    bus = make_bus(fake, readings)
    with pytest.raises(CommsError, match="no valid data"):
        await bus.command(PLC, 0, Command.OPEN)  # not even running
    async with running(bus):
        await until(lambda: len(readings.items) >= 3)
        with pytest.raises(CommsError, match="no command written"):
            await bus.command(PLC, 0, Command.OPEN)
    assert not fake.calls("write_registers")


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_command_write_failure_is_a_comms_error_and_counts_as_a_failure():
    fake, readings = FakeTransport(GATE), Readings()
    bus = make_bus(fake, readings)
    async with running(bus):
        await until(good(readings))
        fake.fail("write_registers")
        with pytest.raises(CommsError, match="command write failed"):
            await bus.command(PLC, 0, Command.OPEN)
        fake.heal()
        mark = readings.mark()
        await until(lambda: any(r.quality is Quality.GOOD for r in readings.since(mark)))
        outcome = await bus.command(PLC, 0, Command.OPEN)
    assert outcome.accepted
    assert outcome.seq == 2  # the failed write used seq 1; the PLC never saw it


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_link_lost_while_awaiting_the_ack_gives_not_acknowledged():
    fake, readings = FakeTransport(GATE), Readings()
    fake.ack_result = None
    fake.connect_failures = 0
    bus = make_bus(fake, readings)
    async with running(bus):
        await until(good(readings))

        written = []

        def drop_after_write(call: Call) -> None:
            if call.op == "write_registers":
                written.append(call)
            elif call.op == "read_input" and written:
                fake.connect_failures = 1000
                fake.drop()

        fake.on_call = drop_after_write
        outcome = await asyncio.wait_for(bus.command(PLC, 0, Command.OPEN), 5.0)
    assert not outcome.acknowledged
    assert len(written) == 1


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_stopping_the_bus_answers_pending_commands():
    fake, readings = FakeTransport(GATE), Readings()
    fake.ack_result = None
    bus = make_bus(fake, readings)
    task = asyncio.create_task(bus.run())
    await until(good(readings))
    pending = asyncio.create_task(bus.command(PLC, 0, Command.OPEN))
    await until(lambda: bool(fake.calls("write_registers")))
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    outcome = await asyncio.wait_for(pending, 1.0)
    assert not outcome.acknowledged
    assert not fake.connected  # the transport was closed
