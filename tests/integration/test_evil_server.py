"""The HAL against an evil Modbus TCP server: every misbehaviour is a CommsError, never data.

(a) TcpTransport alone: each kind of bad reply raises a CommsError subclass and returns nothing;
    the transport keeps raising only CommsErrors afterwards (also once the link was dropped).
(b) A Bus over TcpTransport: readings are GOOD with the gate's data while the server is clean,
    turn non-GOOD (never GOOD with the poisoned data) while it misbehaves, come back to GOOD
    once it is clean again, and the bus task survives all of it.
(c) The controller's Site over the same server: the gate shows closed / unknown / closed.

Real sockets and real time (no looptime here); every wait is a poll with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import pytest
import pytest_asyncio

from hal.bus import RECONNECT_MAX_S, Bus
from hal.errors import BadReplyError, CommsError, ExceptionReplyError, NotConnectedError
from hal.profile import Command, HeaderHolding, Kind, SlotInput, slot_base
from hal.tcp import TcpTransport
from hal.unit import PlcReading, Quality, UnitSpec
from tests.integration.evil_server import (
    CLOSED_STATUS,
    MISBEHAVIOURS,
    PAYLOAD_MODES,
    EvilServer,
    Mode,
)

pytestmark = pytest.mark.timeout(60)

POLL_S = 0.05
TIMEOUT_S = 0.2
LATE_S = 0.5  # > TIMEOUT_S
BLOCK = 28  # IR 0..27: header + one slot
UNIT = 1

# What read_input must raise in each mode (a subclass of CommsError in every case).
EXPECTED_ERROR: dict[Mode, type[CommsError]] = {
    Mode.FEWER_REGISTERS: BadReplyError,
    Mode.MORE_REGISTERS: BadReplyError,
    Mode.ODD_BYTE_COUNT_SHORT: BadReplyError,
    Mode.ODD_BYTE_COUNT_LONG: BadReplyError,
    Mode.BYTE_COUNT_OVERRUN: CommsError,  # pymodbus cannot decode it and drops the link
    Mode.WRONG_FUNCTION: BadReplyError,
    Mode.EXCEPTION_02: ExceptionReplyError,
    Mode.EXCEPTION_04: ExceptionReplyError,
    Mode.GARBAGE: CommsError,
    Mode.UNKNOWN_FUNCTION: CommsError,
    Mode.WRONG_UNIT: CommsError,
    Mode.WRONG_TRANSACTION: CommsError,
    Mode.LATE: CommsError,
    Mode.SILENT: CommsError,
    Mode.CLOSE: CommsError,
}
# For FC3/FC6/FC16 the HAL's own checks matter; one unit mix-up and one dropped link stand for the
# modes that only end in the pymodbus timeout (read_input covers every one of those).
OTHER_MODES = (Mode.WRONG_FUNCTION, Mode.EXCEPTION_02, Mode.EXCEPTION_04, Mode.WRONG_UNIT, Mode.CLOSE)


def now() -> float:
    return asyncio.get_running_loop().time()


async def until(condition: Callable[[], object], timeout: float, what: str, step: float = 0.01) -> float:
    """Poll condition() every `step` s until it is true; return the time it took; fail at the deadline."""
    start = now()
    while not condition():
        if now() - start >= timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(step)
    return now() - start


def is_clean_gate(words: list[int]) -> bool:
    base = slot_base(0)
    return (
        len(words) == BLOCK
        and words[0] == 0x4250
        and words[base + SlotInput.KIND] == Kind.FOLDING_GATE
        and words[base + SlotInput.STATUS] == CLOSED_STATUS
        and words[base + SlotInput.POSITION] == 1000
    )


@pytest_asyncio.fixture
async def server():
    srv = EvilServer(unit=UNIT, late_s=LATE_S)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest_asyncio.fixture
async def transport(server):
    t = TcpTransport("evil", "127.0.0.1", server.port, TIMEOUT_S)
    await t.connect()
    try:
        yield t
    finally:
        t.close()


async def read_clean_eventually(t: TcpTransport, timeout: float = 3.0) -> list[int]:
    """Read the block until a read succeeds (reconnecting if the link dropped); only CommsErrors allowed."""
    start = now()
    while True:
        try:
            if not t.connected:
                await t.connect()
            return await t.read_input(UNIT, 0, BLOCK)
        except CommsError:
            if now() - start >= timeout:
                raise
            await asyncio.sleep(0.01)


# ----- (a) the transport alone ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_clean_server_serves_the_gate(server, transport):
    words = await transport.read_input(UNIT, 0, BLOCK)
    assert is_clean_gate(words)
    assert await transport.read_holding(UNIT, HeaderHolding.WATCHDOG_TIMEOUT_MS, 1) == [3000]
    await transport.write_register(UNIT, HeaderHolding.WATCHDOG_TIMEOUT_MS, 1000)
    await transport.write_registers(UNIT, slot_base(0), [2, 5])
    assert server.holding[HeaderHolding.WATCHDOG_TIMEOUT_MS] == 1000
    words = await transport.read_input(UNIT, 0, BLOCK)
    assert words[slot_base(0) + SlotInput.ACK_SEQ] == 5


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MISBEHAVIOURS, ids=[m.value for m in MISBEHAVIOURS])
async def test_read_input_raises_a_comms_error_for_each_misbehaviour(server, transport, mode):
    assert is_clean_gate(await transport.read_input(UNIT, 0, BLOCK))
    server.mode = mode
    start = now()
    result = None
    with pytest.raises(CommsError) as info:
        result = await transport.read_input(UNIT, 0, BLOCK)
    took = now() - start
    assert result is None
    assert isinstance(info.value, EXPECTED_ERROR[mode]), f"{mode}: {info.value!r}"
    if mode is Mode.EXCEPTION_02:
        assert info.value.exception_code == 0x02
    if mode is Mode.EXCEPTION_04:
        assert info.value.exception_code == 0x04
    assert took < TIMEOUT_S + 0.5  # bounded by the client timeout, never hangs
    assert server.requests[-1].function_code == 4 and server.requests[-1].mode is mode

    # Still misbehaving: a further call is a CommsError too (whether or not the link survived).
    with pytest.raises(CommsError):
        await transport.read_input(UNIT, 0, BLOCK)

    # Clean again: good data come back, possibly after a reconnect; nothing but CommsError meanwhile.
    server.mode = Mode.CLEAN
    assert is_clean_gate(await read_clean_eventually(transport))


@pytest.mark.asyncio
@pytest.mark.parametrize("op", ["read_holding", "write_register", "write_registers"])
@pytest.mark.parametrize("mode", OTHER_MODES, ids=[m.value for m in OTHER_MODES])
async def test_other_requests_raise_a_comms_error_for_each_misbehaviour(server, transport, mode, op):
    calls = {
        "read_holding": lambda: transport.read_holding(UNIT, HeaderHolding.WATCHDOG_TIMEOUT_MS, 1),
        "write_register": lambda: transport.write_register(UNIT, HeaderHolding.SUPERVISOR_HEARTBEAT, 7),
        "write_registers": lambda: transport.write_registers(UNIT, slot_base(0), [2, 9]),
    }
    server.mode = mode
    result = "not set"
    with pytest.raises(CommsError) as info:
        result = await calls[op]()
    assert result == "not set"
    if mode in (Mode.EXCEPTION_02, Mode.EXCEPTION_04):
        assert isinstance(info.value, ExceptionReplyError)
    if mode is Mode.WRONG_FUNCTION:
        assert isinstance(info.value, BadReplyError) and "function code" in str(info.value)


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", [Mode.CLOSE, Mode.UNKNOWN_FUNCTION, Mode.BYTE_COUNT_OVERRUN])
async def test_after_pymodbus_dropped_the_link_every_call_is_not_connected(server, transport, mode):
    """Regression: pymodbus raises ConnectionException when a request is made on a dropped link."""
    server.mode = mode
    with pytest.raises(CommsError):
        await transport.read_input(UNIT, 0, BLOCK)
    await until(lambda: not transport.connected, 2.0, "link dropped")
    for call in (
        lambda: transport.read_input(UNIT, 0, BLOCK),
        lambda: transport.read_holding(UNIT, 1, 1),
        lambda: transport.write_register(UNIT, 0, 1),
        lambda: transport.write_registers(UNIT, slot_base(0), [0, 1]),
    ):
        with pytest.raises(NotConnectedError):
            await call()
    server.mode = Mode.CLEAN
    await transport.connect()
    assert is_clean_gate(await transport.read_input(UNIT, 0, BLOCK))


@pytest.mark.asyncio
async def test_connect_to_a_closed_port_is_a_comms_error(server):
    port = server.port
    await server.stop()
    t = TcpTransport("gone", "127.0.0.1", port, TIMEOUT_S)
    with pytest.raises(CommsError):
        await t.connect()
    assert not t.connected
    with pytest.raises(NotConnectedError):
        await t.read_input(UNIT, 0, BLOCK)


# ----- (b) a bus over the evil server -----------------------------------------------------------


class Collector:
    def __init__(self):
        self.readings: list[PlcReading] = []

    async def __call__(self, reading: PlcReading) -> None:
        self.readings.append(reading)

    def mark(self) -> int:
        return len(self.readings)

    def since(self, mark: int) -> list[PlcReading]:
        return self.readings[mark:]


def reading_is_clean_gate(r: PlcReading) -> bool:
    slot = r.snapshot.slots[0]
    return slot.kind is Kind.FOLDING_GATE and slot.status == CLOSED_STATUS and slot.position == 1000


@contextlib.asynccontextmanager
async def bus_on(server: EvilServer):
    collector = Collector()
    bus = Bus(
        TcpTransport("evil", "127.0.0.1", server.port, TIMEOUT_S),
        [UnitSpec(name="plc-1", unit=UNIT, slot_kinds=(Kind.FOLDING_GATE,), watchdog_ms=1000)],
        poll_s=POLL_S,
        timeout_s=TIMEOUT_S,
        comms_lost_polls=2,
        frozen_polls=10,
        on_reading=collector,
    )
    task = asyncio.create_task(bus.run(), name="bus-evil")
    try:
        yield bus, collector, task
    finally:
        alive = not task.done()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert alive, f"the bus task died: {task.exception() if not task.cancelled() else 'cancelled'}"


# Modes answered at once over a link that stays up (the HAL's own checks refuse the reply).
FAST_MODES = frozenset(PAYLOAD_MODES - {Mode.BYTE_COUNT_OVERRUN}) | {
    Mode.WRONG_FUNCTION,
    Mode.EXCEPTION_02,
    Mode.EXCEPTION_04,
}

# Worst case back to GOOD after the server is clean: a request in flight times out, pymodbus may
# have dropped the link (reconnect after the bus's back-off), then one poll.
RECOVERY_S = TIMEOUT_S + RECONNECT_MAX_S + 2 * TIMEOUT_S + 2 * POLL_S + 0.5


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MISBEHAVIOURS, ids=[m.value for m in MISBEHAVIOURS])
async def test_bus_readings_through_a_misbehaving_server(server, mode):
    async with bus_on(server) as (bus, collector, task):
        good = lambda m: any(r.quality is Quality.GOOD for r in collector.since(m))  # noqa: E731
        await until(lambda: good(0), 5.0, "first GOOD reading")
        assert collector.readings[-1].watchdog_readback == 1000

        # misbehave until the bus declares comms lost
        server.mode = mode
        bad_mark = collector.mark()
        await until(lambda: any(r.comms_lost for r in collector.since(bad_mark)), 5.0, f"{mode}: comms lost")
        if mode in FAST_MODES:
            # No hammering while every request fails fast: a few requests per poll at most
            # (heartbeat, read, re-arm), not a heartbeat retry loop between polls.
            rate_mark, rate_requests = collector.mark(), len(server.requests)
            await until(lambda: len(collector.since(rate_mark)) >= 3, 5.0, f"{mode}: more readings")
            per_reading = (len(server.requests) - rate_requests) / len(collector.since(rate_mark))
            assert per_reading <= 5, f"{mode}: {per_reading:.1f} requests per reading"
        during = collector.since(bad_mark)
        first_bad = next(i for i, r in enumerate(during) if r.quality is not Quality.GOOD)
        assert all(r.quality is not Quality.GOOD for r in during[first_bad:]), f"{mode}: GOOD while misbehaving"
        assert first_bad <= 1  # at most the reply already in flight when the server turned evil
        assert all(r.snapshot is None and r.reason for r in during[first_bad:])
        lost = next(r for r in during if r.comms_lost)
        assert lost.quality is Quality.INVALID

        # clean again
        server.mode = Mode.CLEAN
        clean_mark = collector.mark()
        took = await until(lambda: good(clean_mark), RECOVERY_S, f"{mode}: GOOD again")
        if mode in FAST_MODES:
            # Nothing in flight can hang and the link stays up: GOOD at the very next poll.
            assert took <= POLL_S + 0.15, f"{mode}: took {took:.3f} s"
        else:
            # The request in flight must time out first (a late reply also holds up the next one).
            in_flight = LATE_S if mode is Mode.LATE else TIMEOUT_S
            assert took <= in_flight + POLL_S + 0.3, f"{mode}: took {took:.3f} s"
        recovered = next(r for r in collector.since(clean_mark) if r.quality is Quality.GOOD)
        assert not recovered.comms_lost and recovered.consecutive_failures == 0

        # a command goes through once the data are good again
        outcome = await asyncio.wait_for(bus.command("plc-1", 0, Command.CLOSE), 2.0)
        assert outcome.accepted
        assert not task.done()

    # never GOOD with the poisoned (wrong) data, at any time
    goods = [r for r in collector.readings if r.quality is Quality.GOOD]
    assert goods and all(reading_is_clean_gate(r) for r in goods)
    assert all(r.snapshot is None for r in collector.readings if r.quality is not Quality.GOOD)


@pytest.mark.asyncio
async def test_bus_survives_misbehaviours_in_quick_succession(server):
    rotation = (Mode.CLOSE, Mode.GARBAGE, Mode.BYTE_COUNT_OVERRUN, Mode.LATE, Mode.WRONG_FUNCTION, Mode.MORE_REGISTERS)
    async with bus_on(server) as (bus, collector, task):
        await until(lambda: any(r.quality is Quality.GOOD for r in collector.readings), 5.0, "first GOOD")
        for mode in rotation:
            server.mode = mode
            mark = collector.mark()
            await until(lambda: any(r.quality is not Quality.GOOD for r in collector.since(mark)), 3.0, str(mode))
        server.mode = Mode.CLEAN
        mark = collector.mark()
        await until(lambda: any(r.quality is Quality.GOOD for r in collector.since(mark)), RECOVERY_S, "GOOD")
        assert not task.done()
    goods = [r for r in collector.readings if r.quality is Quality.GOOD]
    assert all(reading_is_clean_gate(r) for r in goods)


# ----- (c) the controller's site over the evil server --------------------------------------------


@pytest.mark.asyncio
async def test_site_device_state_follows_data_quality(server, tmp_path):
    from config.loader import site_from_toml
    from controller.event_store import EventStore
    from controller.site import Site

    cfg = site_from_toml(
        {
            "site": {"name": "evil-site", "poll_ms": 50, "comms_lost_polls": 3},
            "plc": [
                {"name": "plc-1", "host": "127.0.0.1", "port": server.port, "timeout_ms": 200, "watchdog_ms": 1000}
            ],
            "device": [{"name": "gate-1", "kind": "folding_gate", "plc": "plc-1", "slot": 0}],
        }
    )
    store = EventStore(tmp_path / "e.sqlite")
    site = Site(cfg, store)
    gate = site.devices["gate-1"]
    await site.start()
    try:
        await until(lambda: gate.state == "closed", 5.0, "gate closed")
        assert gate.quality is Quality.GOOD
        assert site.plcs["plc-1"].comms == "ok"

        server.mode = Mode.FEWER_REGISTERS
        await until(lambda: gate.state == "unknown", 3.0, "unknown on wrong count")
        assert gate.quality is not Quality.GOOD
        assert "registers" in (gate.quality_reason or "")

        server.mode = Mode.CLEAN
        await until(lambda: gate.state == "closed", RECOVERY_S, "closed again")

        server.mode = Mode.WRONG_FUNCTION
        await until(lambda: gate.state == "unknown", 3.0, "unknown on wrong function code")
        assert gate.quality is not Quality.GOOD
        assert "function code" in (gate.quality_reason or "")

        server.mode = Mode.CLEAN
        await until(lambda: gate.state == "closed", RECOVERY_S, "closed again")
        assert gate.quality is Quality.GOOD
        assert gate.feedback is not None and gate.feedback.position == 1000
        assert all(not t.done() for t in site._tasks)
    finally:
        await site.stop()
        events = store.recent_events(limit=1000)
        store.close()
    changes = [(e["data"]["from_state"], e["data"]["to_state"]) for e in events if e["kind"] == "state_change"]
    assert changes == [("unknown", "closed"), ("closed", "unknown")] * 2 + [("unknown", "closed")]
