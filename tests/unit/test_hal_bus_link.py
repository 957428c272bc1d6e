"""hal.bus.Bus keeping its link: connect and back-off, watchdog arming, heartbeats (FakeTransport, looptime)."""

from __future__ import annotations

import asyncio

import pytest

from hal.bus import RECONNECT_MAX_S, RECONNECT_MIN_S
from hal.errors import ExceptionReplyError
from hal.profile import HeaderHolding, input_block_size
from hal.unit import Quality
from tests.unit.bus_rig import GATE, FakeTransport, Readings, good, make_bus, now, running, until

pytestmark = pytest.mark.timeout(30)  # a busy-looping bus under looptime would otherwise hang


# ----- connecting -------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_failed_connects_are_retried_with_back_off_until_the_bus_connects():
    fake, readings = FakeTransport(GATE), Readings()
    fake.connect_failures = 3
    async with running(make_bus(fake, readings, poll_s=1.0)):
        await until(good(readings))
    attempts = [c.t for c in fake.calls("connect")]
    assert len(attempts) == 4
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert gaps == pytest.approx([RECONNECT_MIN_S, 2 * RECONNECT_MIN_S, 4 * RECONNECT_MIN_S], abs=1e-3)
    # Before the link was up nothing was GOOD and no register was touched.
    before = [r for t, r in readings.items if t < attempts[-1]]
    assert before and all(r.quality is not Quality.GOOD and r.snapshot is None for r in before)
    assert not [c for c in fake.log if c.op != "connect" and c.t < attempts[-1]]


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_back_off_doubles_up_to_its_maximum_and_resets_after_a_connect():
    fake, readings = FakeTransport(GATE), Readings()
    fake.connect_failures = 7
    async with running(make_bus(fake, readings, poll_s=5.0)):
        await until(good(readings))
        fake.drop()
        fake.connect_failures = 1
        log_mark, mark = fake.mark(), readings.mark()
        await until(lambda: any(r.quality is Quality.GOOD for r in readings.since(mark)))
    attempts = [c.t for c in fake.calls("connect")]
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert gaps[:7] == pytest.approx([0.1, 0.2, 0.4, 0.8, RECONNECT_MAX_S, RECONNECT_MAX_S, RECONNECT_MAX_S], abs=1e-3)
    # After the 8th attempt connected, the delay started again from the minimum.
    later = [c.t for c in fake.calls("connect", since=log_mark)]
    assert len(later) == 2
    assert later[1] - later[0] == pytest.approx(RECONNECT_MIN_S, abs=1e-3)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_back_off_never_exceeds_the_poll_period():
    """A PLC that comes back is read again within two polls, however long it was away."""
    fake, readings = FakeTransport(GATE), Readings()
    fake.connect_failures = 8
    async with running(make_bus(fake, readings, poll_s=0.25)):
        await until(good(readings))
    attempts = [c.t for c in fake.calls("connect")]
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert gaps == pytest.approx([0.1, 0.2] + [0.25] * 6, abs=1e-3)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_not_connected_readings_become_comms_lost():
    fake, readings = FakeTransport(GATE), Readings()
    fake.connect_failures = 1000
    async with running(make_bus(fake, readings, comms_lost_polls=3)):
        await until(lambda: len(readings.items) >= 5)
    qualities = [r.quality for _, r in readings.items[:5]]
    assert qualities == [Quality.STALE, Quality.STALE, Quality.INVALID, Quality.INVALID, Quality.INVALID]
    assert [r.comms_lost for _, r in readings.items[:4]] == [False, False, True, True]
    assert all(r.reason == "not connected" for _, r in readings.items)


# ----- watchdog and heartbeat -------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_watchdog_is_armed_on_connect_and_its_readback_reported():
    fake, readings = FakeTransport(GATE), Readings()
    fake.watchdog_clamp = 1500  # the PLC keeps another value than the one written
    async with running(make_bus(fake, readings, watchdog_ms=2000)):
        await until(good(readings))
    first = [(c.op, c.address, c.arg) for c in fake.log[:6]]
    assert first == [
        ("connect", 0, None),
        ("read_holding", HeaderHolding.SUPERVISOR_HEARTBEAT, 1),  # the first beat must differ from what it holds
        ("write_register", HeaderHolding.SUPERVISOR_HEARTBEAT, 1),
        ("write_register", HeaderHolding.WATCHDOG_TIMEOUT_MS, 2000),
        ("read_holding", HeaderHolding.WATCHDOG_TIMEOUT_MS, 1),
        ("read_input", 0, input_block_size(1)),
    ]
    reading = readings.last
    assert reading.quality is Quality.GOOD
    assert reading.watchdog_readback == 1500  # what the PLC holds, not what was configured


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_watchdog_is_armed_again_after_a_reconnect_and_not_otherwise():
    fake, readings = FakeTransport(GATE), Readings()
    async with running(make_bus(fake, readings)):
        await until(good(readings))
        await asyncio.sleep(2.0)
        assert len(fake.calls("read_holding")) == 2  # held heartbeat and watchdog read-back, once
        fake.drop()
        log_mark, mark = fake.mark(), readings.mark()
        await until(lambda: len(fake.calls("read_holding")) == 4)
        await until(lambda: any(r.quality is Quality.GOOD for r in readings.since(mark)))
    after = [(c.op, c.address) for c in fake.log[log_mark:]]
    reconnect = after.index(("connect", 0))
    assert after[reconnect + 1 : reconnect + 6] == [
        ("read_holding", HeaderHolding.SUPERVISOR_HEARTBEAT),
        ("write_register", HeaderHolding.SUPERVISOR_HEARTBEAT),
        ("write_register", HeaderHolding.WATCHDOG_TIMEOUT_MS),
        ("read_holding", HeaderHolding.WATCHDOG_TIMEOUT_MS),
        ("read_input", 0),
    ]
    assert len(fake.calls("connect")) == 2


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_heartbeat_is_written_every_quarter_watchdog_not_on_every_poll():
    fake, readings = FakeTransport(GATE), Readings()
    async with running(make_bus(fake, readings, poll_s=0.1, watchdog_ms=2000)):
        await until(good(readings))
        m0 = fake.mark()
        await asyncio.sleep(10.0)
        window_log = fake.log[m0:]
    beats = [c for c in fake.calls("write_register") if c.address == HeaderHolding.SUPERVISOR_HEARTBEAT]
    window = [c for c in window_log if c.op == "write_register"]
    polls = [c for c in window_log if c.op == "read_input"]
    assert 95 <= len(polls) <= 101  # one poll per 100 ms
    assert 19 <= len(window) <= 21  # one heartbeat per 500 ms (2000 ms / 4)
    gaps = [b.t - a.t for a, b in zip(beats, beats[1:])]
    assert max(gaps) <= 2.0 / 3  # the spec's "at least every WATCHDOG_TIMEOUT_MS / 3"
    assert min(gaps) == pytest.approx(0.5, abs=0.02)
    values = [c.arg for c in beats]
    assert values == list(range(1, len(values) + 1))  # held value (0) + 1 when arming, then +1 each time
    assert fake.holding[HeaderHolding.SUPERVISOR_HEARTBEAT] == values[-1]


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_heartbeat_continues_across_a_reconnect_without_repeating_a_value():
    fake, readings = FakeTransport(GATE), Readings()
    async with running(make_bus(fake, readings, watchdog_ms=1000)):
        await until(good(readings))
        await asyncio.sleep(1.0)
        fake.drop()
        mark = readings.mark()
        await until(lambda: any(r.quality is Quality.GOOD for r in readings.since(mark)))
        await asyncio.sleep(1.0)
    values = [c.arg for c in fake.calls("write_register") if c.address == HeaderHolding.SUPERVISOR_HEARTBEAT]
    changes = [b != a for a, b in zip(values, values[1:])]
    assert sum(not changed for changed in changes) <= 1  # the re-arm may rewrite the current value once
    assert values[-1] > values[0]


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_failing_heartbeat_writes_do_not_make_the_bus_spin():
    """A heartbeat write that fails while the link stays up is retried on schedule, not in a busy loop."""
    fake, readings = FakeTransport(GATE), Readings()
    async with running(make_bus(fake, readings, poll_s=0.1, watchdog_ms=2000)):
        await until(good(readings))
        fake.fail("write_register")
        m0 = fake.mark()
        await asyncio.sleep(5.0)
        m1, t1 = fake.mark(), now()
        fake.heal()
        await asyncio.sleep(1.0)
    attempts = [c for c in fake.log[m0:m1] if c.op == "write_register"]
    assert 1 <= len(attempts) <= 5.0 / 0.1 + 1  # at most one try per poll period
    assert len([c for c in fake.log[m0:m1] if c.op == "read_input"]) >= 45  # polling went on
    assert sum(r.quality is Quality.GOOD for r in readings.since(0)) >= 45  # and every read was good
    later = fake.calls("write_register", since=m1)
    assert later and later[0].t - t1 <= 0.5 + 1e-3


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_heartbeat_write_that_gets_no_answer_makes_the_reading_stale_at_once():
    """The devices must not keep showing the last poll's state until a poll fails too."""
    fake, readings = FakeTransport(GATE), Readings()
    async with running(make_bus(fake, readings, poll_s=0.1, watchdog_ms=2000)):
        await until(good(readings))
        mark = readings.mark()
        fake.fail("write_register")  # reads still work: only the write's own failure can make a bad reading
        await until(lambda: any(r.quality is not Quality.GOOD for r in readings.since(mark)), timeout=5.0)
    first_bad = next(r for r in readings.since(mark) if r.quality is not Quality.GOOD)
    assert first_bad.quality is Quality.STALE and "write_register failed" in first_bad.reason
    assert not first_bad.comms_lost and first_bad.consecutive_failures == 1


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_heartbeat_write_answered_with_an_exception_keeps_the_reading_good():
    fake, readings = FakeTransport(GATE), Readings()

    async def refuse(*_: object) -> None:
        raise ExceptionReplyError(6, 4, "fake: slave device failure")

    async with running(make_bus(fake, readings, poll_s=0.1, watchdog_ms=2000)):
        await until(good(readings))
        fake.write_register = refuse  # type: ignore[method-assign]
        mark = readings.mark()
        await asyncio.sleep(1.0)
    assert readings.since(mark) and all(r.quality is Quality.GOOD for r in readings.since(mark))
