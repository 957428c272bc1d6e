"""A fake PLC transport and helpers for driving hal.Bus on looptime's virtual clock.

FakeTransport keeps a PLC register image, logs every call with its loop time, can fail connects or
calls on demand, and acknowledges FC16 commands the way profile v1 says (ACK_SEQ := COMMAND_SEQ).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Callable
from dataclasses import dataclass

from hal.bus import Bus
from hal.errors import CommsError, ExceptionReplyError, NotConnectedError
from hal.profile import (
    PROFILE_MAGIC,
    PROFILE_VERSION,
    AckResult,
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
from hal.unit import PlcReading, Quality, UnitSpec

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
        self._poll_timer: asyncio.TimerHandle | None = None  # a poll_at not sent yet, or its read under way
        self._polling: asyncio.Task | None = None
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

    async def read_input_block(self, unit: int, address: int, count: int) -> bytes:
        words = await self.read_input(unit, address, count)  # logged as a read_input
        return struct.pack(f">{len(words)}H", *words)

    def poll_at(self, when: float, unit: int, address: int, count: int, on_block: Callable[[object], None]) -> None:
        """As hal/tcp.py's: read_input_block from a timer, its block or CommsError handed to on_block."""
        async def poll() -> None:
            try:
                block: object = await self.read_input_block(unit, address, count)
            except CommsError as exc:
                block = exc
            self._polling = None
            on_block(block)

        def send() -> None:
            self._poll_timer = None
            self._polling = asyncio.get_running_loop().create_task(poll())

        self._poll_timer = asyncio.get_running_loop().call_at(when, send)

    def cancel_poll(self) -> bool:
        if self._poll_timer is not None:
            self._poll_timer.cancel()
            self._poll_timer = None
        return self._polling is None

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
        self.quiet = 0  # readings taken by quietly()
        self.leave_quiet = False

    def quietly(self, reading: PlcReading) -> bool:
        """The bus's on_quiet_reading: kept as on_reading keeps it (quiet polls are taken like the others), and
        counted; with `leave_quiet` set, left to on_reading."""
        if self.leave_quiet:
            return False
        self.quiet += 1
        self.items.append((asyncio.get_running_loop().time(), reading))
        return True

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
        on_quiet_reading=readings.quietly,
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

