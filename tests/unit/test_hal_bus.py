"""hal.bus.Bus against an in-memory PLC (FakeTransport), under looptime: no test really sleeps.

The fake keeps a PLC register image, logs every call with its loop time, can fail connects or
calls on demand, and acknowledges FC16 commands the way profile v1 says (ACK_SEQ := COMMAND_SEQ).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from hal.bus import RECONNECT_MAX_S, RECONNECT_MIN_S, Bus
from hal.errors import CommsError, ExceptionReplyError, NotConnectedError
from hal.profile import (
    PROFILE_MAGIC,
    PROFILE_VERSION,
    AckResult,
    Command,
    HeaderHolding,
    HeaderInput,
    Kind,
    SlotHolding,
    SlotInput,
    Status,
    config_crc32,
    holding_addresses,
    input_block_size,
    slot_base,
    split_u32,
)
from hal.unit import CommandOutcome, PlcReading, Quality, UnitSpec

pytestmark = pytest.mark.timeout(30)  # a busy-looping bus under looptime would otherwise hang

PLC = "plc-1"
OPS = ("read_input", "read_holding", "write_register", "write_registers")
SPIN_LIMIT = 2000  # calls without the loop time moving: the bus is busy-looping


@dataclass(frozen=True)
class Call:
    t: float
    op: str
    unit: int
    address: int
    arg: object  # count, value or values


class FakeTransport:
    """An in-memory PLC behind a Transport: register image, call log, failure switches."""

    name = "fake"

    def __init__(self, kinds: list[Kind], unit: int = 1):
        self.unit = unit
        self.kinds = list(kinds)
        self.input = [0] * input_block_size(len(kinds))
        self.input[HeaderInput.PROFILE_MAGIC] = PROFILE_MAGIC
        self.input[HeaderInput.PROFILE_VERSION] = PROFILE_VERSION
        self.input[HeaderInput.SLOT_COUNT] = len(kinds)
        self.input[HeaderInput.SCAN_TIME_MS] = 10
        high, low = split_u32(config_crc32(kinds))
        self.input[HeaderInput.CONFIG_CRC32], self.input[HeaderInput.CONFIG_CRC32 + 1] = high, low
        for s, kind in enumerate(kinds):
            self.set_slot(s, KIND=kind, STATUS=Status.AT_CLOSED, POSITION=1000, ANALOG_1=100 + s)
        self.holding = {a: 0 for a in holding_addresses(len(kinds))}
        self.holding[HeaderHolding.WATCHDOG_TIMEOUT_MS] = 3000
        self.watchdog_clamp: int | None = None  # the PLC stores this instead of what is written
        self.log: list[Call] = []
        self.connect_failures = 0  # fail this many connects from now on
        self.failing: set[str] = set()  # ops that raise CommsError
        self.delay = 0.0  # loop-time seconds every call takes
        self.ack_result: int | None = AckResult.ACCEPTED  # None: never acknowledge
        self.heartbeat_frozen = False
        self.on_call: Callable[[Call], None] | None = None
        self._connected = False
        self._spin_t = -1.0
        self._spin_n = 0

    # ----- test controls -----------------------------------------------------------------------

    def set_slot(self, slot: int, **registers: int) -> None:
        for name, value in registers.items():
            self.input[slot_base(slot) + SlotInput[name]] = int(value)

    def slot(self, slot: int, name: str) -> int:
        return self.input[slot_base(slot) + SlotInput[name]]

    def fail(self, *ops: str) -> None:
        self.failing = set(ops or OPS)

    def heal(self) -> None:
        self.failing = set()

    def drop(self) -> None:
        """The link goes down (as pymodbus reports after a peer close)."""
        self._connected = False

    def mark(self) -> int:
        return len(self.log)

    def calls(self, *ops: str, since: int = 0) -> list[Call]:
        return [c for c in self.log[since:] if not ops or c.op in ops]

    # ----- Transport ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        self._record("connect", 0, 0, None)
        if self.connect_failures > 0:
            self.connect_failures -= 1
            raise CommsError("fake: connection refused")
        self._connected = True

    def close(self) -> None:
        self._connected = False

    async def read_input(self, unit: int, address: int, count: int) -> list[int]:
        await self._enter("read_input", unit, address, count)
        if address == 0 and not self.heartbeat_frozen:
            self.input[HeaderInput.PLC_HEARTBEAT] = (self.input[HeaderInput.PLC_HEARTBEAT] + 1) & 0xFFFF
        if count < 1 or address + count > len(self.input):
            raise ExceptionReplyError(4, 2, "fake read IR")
        return list(self.input[address : address + count])

    async def read_holding(self, unit: int, address: int, count: int) -> list[int]:
        await self._enter("read_holding", unit, address, count)
        return [self.holding[a] for a in range(address, address + count)]

    async def write_register(self, unit: int, address: int, value: int) -> None:
        await self._enter("write_register", unit, address, value)
        if address == HeaderHolding.WATCHDOG_TIMEOUT_MS and self.watchdog_clamp is not None:
            value = self.watchdog_clamp
        self.holding[address] = value

    async def write_registers(self, unit: int, address: int, values: list[int]) -> None:
        await self._enter("write_registers", unit, address, list(values))
        for offset, value in enumerate(values):
            self.holding[address + offset] = value
        for s in range(len(self.kinds)):
            if address == slot_base(s) + SlotHolding.COMMAND and len(values) == 2 and self.ack_result is not None:
                self.set_slot(s, ACK_SEQ=values[SlotHolding.COMMAND_SEQ], ACK_RESULT=self.ack_result)

    async def _enter(self, op: str, unit: int, address: int, arg: object) -> None:
        assert unit == self.unit
        call = self._record(op, unit, address, arg)
        if self.on_call is not None:
            self.on_call(call)
        if self.delay:
            await asyncio.sleep(self.delay)
        if not self._connected:
            raise NotConnectedError("fake: not connected")
        if op in self.failing:
            raise CommsError(f"fake: {op} failed")

    def _record(self, op: str, unit: int, address: int, arg: object) -> Call:
        now = asyncio.get_running_loop().time()
        if now == self._spin_t:
            self._spin_n += 1
            if self._spin_n > SPIN_LIMIT:
                raise RuntimeError(f"bus is spinning: {self._spin_n} calls at loop time {now} (last: {op})")
        else:
            self._spin_t, self._spin_n = now, 0
        call = Call(now, op, unit, address, arg)
        self.log.append(call)
        return call


class Readings:
    """The bus's on_reading handler: keeps every PlcReading with the loop time it came at."""

    def __init__(self):
        self.items: list[tuple[float, PlcReading]] = []

    async def __call__(self, reading: PlcReading) -> None:
        at = asyncio.get_running_loop().time()
        same_time = sum(1 for t, _ in self.items[-SPIN_LIMIT:] if t == at)
        if same_time >= SPIN_LIMIT:
            raise RuntimeError(f"bus is spinning: {same_time} readings at loop time {at}")
        self.items.append((at, reading))

    def mark(self) -> int:
        return len(self.items)

    def since(self, mark: int) -> list[PlcReading]:
        return [r for _, r in self.items[mark:]]

    @property
    def last(self) -> PlcReading:
        return self.items[-1][1]


async def until(condition: Callable[[], object], timeout: float = 10.0, step: float = 0.01) -> None:
    """Wait (in loop time) until condition() is true; fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() >= deadline:
            raise AssertionError(f"condition not met within {timeout} s of loop time")
        await asyncio.sleep(step)


def now() -> float:
    return asyncio.get_running_loop().time()


def make_bus(
    fake: FakeTransport,
    readings: Readings,
    *,
    kinds: list[Kind] | None = None,
    poll_s: float = 0.1,
    timeout_s: float = 0.3,
    comms_lost_polls: int = 3,
    frozen_polls: int = 5,
    watchdog_ms: int = 2000,
) -> Bus:
    spec = UnitSpec(name=PLC, unit=fake.unit, slot_kinds=tuple(kinds or fake.kinds), watchdog_ms=watchdog_ms)
    return Bus(
        fake,
        [spec],
        poll_s=poll_s,
        timeout_s=timeout_s,
        comms_lost_polls=comms_lost_polls,
        frozen_polls=frozen_polls,
        on_reading=readings,
    )


@contextlib.asynccontextmanager
async def running(bus: Bus):
    """Run the bus task for the block; the task must still be alive at the end."""
    task = asyncio.create_task(bus.run(), name="bus-under-test")
    try:
        yield task
    finally:
        died = task.done()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        assert not died, "the bus task ended on its own"


def good(readings: Readings) -> Callable[[], bool]:
    return lambda: bool(readings.items) and readings.last.quality is Quality.GOOD


GATE = [Kind.FOLDING_GATE]


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
