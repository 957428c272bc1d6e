"""hal.bus.Bus with several units on one line (an RS-485 bus), under looptime: a dead unit is retried with
back-off and costs the others at most one timeout per retry; commands still go before every poll."""

from __future__ import annotations

import asyncio
import struct

import pytest

from hal.bus import UNIT_RETRY_MAX_S, UNIT_RETRY_MIN_S, Bus
from hal.errors import CommsError
from hal.profile import AckResult, Command, HeaderHolding, Kind, SlotHolding, slot_base
from hal.unit import CommandOutcome, Quality, UnitSpec
from tests.unit.bus_rig import Call, FakeTransport, Readings, running, until

pytestmark = pytest.mark.timeout(30)

POLL_S = 0.1
TIMEOUT_S = 0.1
KINDS = {1: [Kind.FOLDING_GATE, Kind.ROAD_BLOCKER], 2: [Kind.FOLDING_GATE], 3: [Kind.BOOM_BARRIER]}


class FakeLine:
    """Several in-memory PLCs behind one Transport, dispatched by unit id; a dead unit times out."""

    name = "fake-line"

    def __init__(self, kinds: dict[int, list[Kind]]):
        self.plcs = {unit: FakeTransport(k, unit=unit) for unit, k in kinds.items()}
        self.dead: set[int] = set()
        self.log: list[Call] = []
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        self._connected = True
        for plc in self.plcs.values():
            await plc.connect()

    def close(self) -> None:
        self._connected = False

    async def _call(self, op: str, unit: int, address: int, arg: object):
        self.log.append(Call(asyncio.get_running_loop().time(), op, unit, address, arg))
        if unit in self.dead:
            await asyncio.sleep(TIMEOUT_S)  # a timeout costs the line this much
            raise CommsError(f"unit {unit}: no response")
        return await getattr(self.plcs[unit], op)(unit, address, arg)

    async def read_input(self, unit: int, address: int, count: int) -> list[int]:
        return await self._call("read_input", unit, address, count)

    async def read_input_block(self, unit: int, address: int, count: int) -> bytes:
        words = await self.read_input(unit, address, count)
        return struct.pack(f">{len(words)}H", *words)

    async def read_holding(self, unit: int, address: int, count: int) -> list[int]:
        return await self._call("read_holding", unit, address, count)

    async def write_register(self, unit: int, address: int, value: int) -> None:
        await self._call("write_register", unit, address, value)

    async def write_registers(self, unit: int, address: int, values: list[int]) -> None:
        await self._call("write_registers", unit, address, values)

    def calls(self, unit: int, *ops: str, since: float = 0.0) -> list[Call]:
        return [c for c in self.log if c.unit == unit and c.t >= since and (not ops or c.op in ops)]


def name(unit: int) -> str:
    return f"plc-{unit}"


def make_line_bus(line: FakeLine, readings: Readings, units: list[int]) -> Bus:
    specs = [UnitSpec(name=name(u), unit=u, slot_kinds=tuple(KINDS[u]), watchdog_ms=2000) for u in units]
    return Bus(line, specs, poll_s=POLL_S, timeout_s=TIMEOUT_S, comms_lost_polls=3, frozen_polls=50,
               on_reading=readings)


def good_count(readings: Readings, plc: str, since: float) -> int:
    return sum(1 for t, r in readings.items if t >= since and r.plc == plc and r.quality is Quality.GOOD)


def all_good(readings: Readings, *units: int):
    def check() -> bool:
        latest = {r.plc: r for _, r in readings.items}
        return all(name(u) in latest and latest[name(u)].quality is Quality.GOOD for u in units)
    return check


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_dead_unit_is_retried_with_back_off_and_the_others_keep_their_poll_rate():
    line, readings = FakeLine(KINDS), Readings()
    async with running(make_line_bus(line, readings, [1, 2, 3])):
        await until(all_good(readings, 1, 2, 3))
        await asyncio.sleep(1.0)
        t0 = asyncio.get_running_loop().time()
        await asyncio.sleep(10.0)
        healthy = {u: good_count(readings, name(u), t0) for u in (1, 2)}
        line.dead.add(3)
        t_dead = asyncio.get_running_loop().time()
        await asyncio.sleep(20.0)
        t_end = asyncio.get_running_loop().time()
    window = 10.0  # the last 10 s of the dead period: back-off at its maximum
    for u in (1, 2):
        during = good_count(readings, name(u), t_end - window)
        assert during >= 0.9 * healthy[u], f"unit {u}: {during} polls with unit 3 dead, {healthy[u]} before"
    attempts = [c.t for c in line.calls(3, since=t_dead)]
    assert attempts[2] - attempts[0] < 1.0, "comms lost after three failed exchanges"
    gaps = [b - a for a, b in zip(attempts[2:], attempts[3:])]
    # then one request per retry: after 1, 2, 4, 4 s, each plus the failed exchange and up to one poll period
    for gap, delay in zip(gaps, [UNIT_RETRY_MIN_S, 2.0, UNIT_RETRY_MAX_S, UNIT_RETRY_MAX_S]):
        assert delay + TIMEOUT_S - 1e-3 <= gap <= delay + TIMEOUT_S + POLL_S + 1e-3, gaps
    assert len(gaps) >= 4
    dead = [r for t, r in readings.items if t > t_dead + 1.0 and r.plc == name(3)]
    assert dead and all(r.quality is Quality.INVALID and r.comms_lost for r in dead)
    assert len(dead) >= 0.9 * 19 / POLL_S, "readings for the dead unit go on at the poll rate"
    assert "retried every 4 s" in dead[-1].reason


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_unit_that_answers_again_is_rearmed_and_good_within_one_retry():
    line, readings = FakeLine(KINDS), Readings()
    async with running(make_line_bus(line, readings, [1, 3])):
        await until(all_good(readings, 1, 3))
        line.dead.add(3)
        await until(lambda: "retried every 4 s" in (readings.last.reason or "") or False, timeout=20)
        line.dead.discard(3)
        t_back = asyncio.get_running_loop().time()
        mark = readings.mark()
        await until(lambda: any(r.plc == name(3) and r.quality is Quality.GOOD for r in readings.since(mark)),
                    timeout=UNIT_RETRY_MAX_S + 1)
    calls = [(c.op, c.address) for c in line.calls(3, since=t_back)]
    first_poll = calls.index(("read_input", 0))
    rearm = calls[:first_poll]  # the watchdog is armed again before the first read of the returned unit
    assert ("write_register", HeaderHolding.WATCHDOG_TIMEOUT_MS) in rearm
    assert rearm[-1] == ("read_holding", HeaderHolding.WATCHDOG_TIMEOUT_MS)
    assert ("write_register", HeaderHolding.SUPERVISOR_HEARTBEAT) in rearm


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_unit_alone_on_its_bus_is_polled_at_every_poll_while_lost():
    line, readings = FakeLine({1: KINDS[1]}), Readings()
    async with running(make_line_bus(line, readings, [1])):
        await until(all_good(readings, 1))
        line.dead.add(1)
        t_dead = asyncio.get_running_loop().time()
        await asyncio.sleep(5.0)
    polls = line.calls(1, "read_input", since=t_dead)
    assert len(polls) >= 5.0 / (POLL_S + TIMEOUT_S) - 2  # no back-off: it slows nobody


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_command_for_one_unit_is_written_before_the_next_units_poll():
    line, readings = FakeLine(KINDS), Readings()
    bus = make_line_bus(line, readings, [1, 2])
    async with running(bus):
        await until(all_good(readings, 1, 2))
        in_poll = asyncio.Event()
        line.plcs[1].delay = 0.02
        line.plcs[1].on_call = lambda call: in_poll.set() if call.op == "read_input" else None
        await in_poll.wait()  # unit 1's poll is on the wire right now
        line.plcs[1].on_call = None
        mark = len(line.log)  # unit 1's read is logged already; unit 2 is polled next in this cycle
        outcome = await bus.command(name(2), 0, Command.OPEN)
    after = [(c.op, c.unit) for c in line.log[mark:]]
    assert after[:2] == [("write_registers", 2), ("read_input", 2)], after[:4]
    write = next(c for c in line.log[mark:] if c.op == "write_registers")
    assert (write.address, write.arg[0]) == (slot_base(0) + SlotHolding.COMMAND, Command.OPEN)
    assert outcome == CommandOutcome(acknowledged=True, result=AckResult.ACCEPTED, seq=write.arg[1])
