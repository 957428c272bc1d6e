"""Modbus RTU over a real virtual line (ptys and the pacing relay of sim_plc.vline): hal.rtu.RtuTransport
and hal.Bus against sim-plc's serial slaves: unit ids, silence, late replies, a line that goes away."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import pytest_asyncio
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusIOException

from hal.errors import CommsError, ExceptionReplyError
from hal.profile import PROFILE_MAGIC, PROFILE_VERSION, HeaderHolding, HeaderInput, input_block_size
from hal.rtu import REQUEST_BYTES_READ, LineTiming, RtuTransport, read_reply_bytes
from hal.unit import Quality
from sim_plc.server import SimSite
from sim_plc.vline import VirtualLine
from tests.integration.rtu_support import BUS, TIMEOUT_S, Readings, line_site, running_bus
from tests.support import async_wait_until

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

BAUD = 115200


@pytest.fixture
def links(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "master", tmp_path / "slaves"


@pytest.fixture
def line(links):
    with VirtualLine(*links, BAUD) as vline:
        yield vline


@pytest_asyncio.fixture
async def sim(tmp_path, links, line):
    """sim-plc serving plc-1 and plc-2 on the slaves' end; plc-3 is configured but nobody serves it."""
    site = line_site(tmp_path, links[0], BAUD)
    served = SimSite(site, plc_names=["plc-1", "plc-2"], serial={BUS: str(links[1])},
                     write_log=tmp_path / "writes.jsonl")
    await served.start()
    yield served
    await served.stop()


@pytest_asyncio.fixture
async def master(links, sim):
    transport = RtuTransport(BUS, str(links[0]), baudrate=BAUD, timeout_s=TIMEOUT_S)
    await transport.connect()
    yield transport
    transport.close()


async def test_each_unit_answers_with_its_own_data_and_an_unserved_unit_stays_silent(sim, master):
    one = await master.read_input(1, 0, 8)
    two = await master.read_input(2, 0, 8)
    assert one[HeaderInput.PROFILE_MAGIC] == two[HeaderInput.PROFILE_MAGIC] == PROFILE_MAGIC
    assert one[HeaderInput.PROFILE_VERSION] == PROFILE_VERSION
    assert (one[HeaderInput.SLOT_COUNT], two[HeaderInput.SLOT_COUNT]) == (2, 1)
    with pytest.raises(CommsError) as failed:
        await master.read_input(3, 0, 8)
    assert not isinstance(failed.value, ExceptionReplyError), "an unserved unit must not answer at all"
    assert sim.line(BUS).dropped_requests == 1
    assert (await master.read_input(1, 0, 8))[HeaderInput.SLOT_COUNT] == 2, "the line works on after a timeout"


async def test_writes_over_the_line_are_applied_and_logged(sim, master):
    await master.write_register(2, HeaderHolding.WATCHDOG_TIMEOUT_MS, 1500)
    assert await master.read_holding(2, HeaderHolding.WATCHDOG_TIMEOUT_MS, 1) == [1500]
    assert await master.read_holding(1, HeaderHolding.WATCHDOG_TIMEOUT_MS, 1) == [3000]
    with pytest.raises(ExceptionReplyError) as refused:
        await master.write_register(1, HeaderHolding.WATCHDOG_TIMEOUT_MS, 50)  # below the profile's 100
    assert refused.value.exception_code == 0x03
    entries = [(e["plc"], e["unit"], e["fc"], e["address"], e["values"], e["result"]) for e in sim.writes]
    assert entries == [
        ("plc-2", 2, 6, HeaderHolding.WATCHDOG_TIMEOUT_MS, [1500], "ok"),
        ("plc-1", 1, 6, HeaderHolding.WATCHDOG_TIMEOUT_MS, [50], "exception 3"),
    ]


async def test_comms_silence_on_one_unit_times_it_out_and_leaves_the_other_alone(sim, master):
    sim.inject("plc-2", "comms_silence")
    with pytest.raises(CommsError) as failed:
        await master.read_input(2, 0, 4)
    assert not isinstance(failed.value, ExceptionReplyError)
    with pytest.raises(CommsError):
        await master.write_register(2, HeaderHolding.SUPERVISOR_HEARTBEAT, 7)
    assert (await master.read_input(1, 0, 8))[HeaderInput.SLOT_COUNT] == 2
    assert sim.writes[-1]["plc"] == "plc-2" and sim.writes[-1]["result"] == "silenced"
    sim.inject("plc-2", "comms_silence", active=False)
    assert (await master.read_input(2, 0, 8))[HeaderInput.SLOT_COUNT] == 1


async def test_a_frame_takes_its_time_on_the_wire(tmp_path, links):
    """At 9600 baud the 69 bytes of a 28-register exchange alone need 72 ms: the line is really paced."""
    baud = 9600
    site = line_site(tmp_path, links[0], baud)
    with VirtualLine(*links, baud):
        async with SimSite(site, plc_names=["plc-2"], serial={BUS: str(links[1])}):
            transport = RtuTransport(BUS, str(links[0]), baudrate=baud, timeout_s=TIMEOUT_S)
            await transport.connect()
            try:
                loop = asyncio.get_running_loop()
                took = []
                for _ in range(3):
                    started = loop.time()
                    await transport.read_input(2, 0, input_block_size(1))
                    took.append(loop.time() - started)
            finally:
                transport.close()
    cycle = LineTiming(baud).cycle_s(REQUEST_BYTES_READ, read_reply_bytes(input_block_size(1)))
    assert min(took) >= cycle - LineTiming(baud).silence_s, (took, cycle)  # the master's own gap is not in it


# ----- late replies -----------------------------------------------------------------------------

LATE_S = TIMEOUT_S + 0.03  # the reply leaves the slave this long after the request: after the timeout


async def test_plain_pymodbus_takes_a_late_reply_as_the_answer_to_the_next_request(sim, line, links):
    """Why hal.rtu exists: the hazard, reproduced with a bare pymodbus client on the same line."""
    client = AsyncModbusSerialClient(str(links[0]), baudrate=BAUD, timeout=TIMEOUT_S, retries=0)
    await client.connect()
    try:
        line.delay_next_reply(LATE_S, unit=1)
        with pytest.raises(ModbusIOException):
            await client.read_input_registers(HeaderInput.PROFILE_MAGIC, count=2, device_id=1)
        reply = await client.read_input_registers(HeaderInput.SLOT_COUNT, count=2, device_id=1)
    finally:
        client.close()
    assert reply.registers == [PROFILE_MAGIC, PROFILE_VERSION], "the late answer to the first read"


async def test_a_late_reply_is_never_the_answer_to_the_next_request_of_the_same_unit(line, master):
    line.delay_next_reply(LATE_S, unit=1)
    with pytest.raises(CommsError):
        await master.read_input(1, HeaderInput.PROFILE_MAGIC, 2)
    # same unit, same function, same count, another address: only the timing tells the replies apart
    assert await master.read_input(1, HeaderInput.SLOT_COUNT, 2) == [2, 10]
    assert line.delayed_frames == 1 and master.stray_receptions >= 1, "the late reply came, and was dropped"


@pytest.mark.parametrize("late_s", [LATE_S, 2 * TIMEOUT_S], ids=["in-the-drain", "during-the-next-request"])
async def test_a_late_reply_is_never_the_answer_to_a_request_to_another_unit(line, master, late_s):
    line.delay_next_reply(late_s, unit=1)
    with pytest.raises(CommsError):
        await master.read_input(1, HeaderInput.PROFILE_MAGIC, 2)
    results = []
    for _ in range(3):  # a request that meets the late reply on the wire may fail: it must not take it
        try:
            results.append(await master.read_input(2, HeaderInput.SLOT_COUNT, 2))
        except CommsError as exc:
            results.append(str(exc))
    assert [PROFILE_MAGIC, PROFILE_VERSION] not in results, results
    assert results[-1] == [1, 10], results
    assert await master.read_input(1, HeaderInput.SLOT_COUNT, 2) == [2, 10]
    assert line.delayed_frames == 1


async def test_bus_state_stays_right_while_replies_of_one_unit_come_late(line, sim, tmp_path, links):
    site = line_site(tmp_path, links[0], BAUD)
    readings = Readings()
    async with running_bus(site, readings, ["plc-1", "plc-2"], poll_s=0.05):
        await async_wait_until(lambda: readings.is_good("plc-1", "plc-2"), 10, "both units good")
        since = asyncio.get_running_loop().time()
        for _ in range(5):
            line.delay_next_reply(LATE_S, unit=1)
            await async_wait_until(lambda: not line.delay_armed, 5, "the late reply sent")
            mark = len(readings.items)
            await async_wait_until(lambda: readings.is_good("plc-1") and len(readings.items) > mark + 4, 5, "good")
    one, two = readings.of("plc-1", since), readings.of("plc-2", since)
    assert line.delayed_frames == 5
    assert any(r.quality is Quality.STALE for r in one), "a late reply is a failed exchange"
    for plc, readings_of, slots in (("plc-1", one, 2), ("plc-2", two, 1)):
        assert all(r.quality is not Quality.INVALID for r in readings_of), f"{plc}: wrong data or comms lost"
        good = [r for r in readings_of if r.quality is Quality.GOOD]
        assert good and all(len(r.snapshot.slots) == slots for r in good), f"{plc}: another unit's data"
    # A late reply can meet the other unit's answer on the wire and spoil it: at most one exchange each.
    assert sum(r.quality is not Quality.GOOD for r in two) <= line.delayed_frames


# ----- the line itself --------------------------------------------------------------------------


async def test_master_and_slaves_keep_three_and_a_half_characters_of_silence_before_every_frame(
    line, sim, tmp_path, links
):
    """Seen on the wire (by the relay): however fast the bus polls, no frame starts within t3.5 of the last one."""
    site = line_site(tmp_path, links[0], BAUD)
    readings = Readings()
    async with running_bus(site, readings, ["plc-1", "plc-2"], poll_s=0.0):
        await async_wait_until(lambda: readings.good("plc-1") + readings.good("plc-2") >= 100, 20, "100 good polls")
    gaps = line.shortest_gaps_s
    silence = LineTiming(BAUD).silence_s
    assert gaps["a_to_b"] is not None and gaps["b_to_a"] is not None, gaps
    assert gaps["a_to_b"] >= silence, f"a request started {gaps['a_to_b'] * 1000:.3f} ms after a reply"
    assert gaps["b_to_a"] >= silence, f"a reply started {gaps['b_to_a'] * 1000:.3f} ms after its request"



async def test_a_line_that_goes_away_is_reopened_when_it_returns(tmp_path, links):
    site = line_site(tmp_path, links[0], BAUD)
    readings = Readings()
    first = VirtualLine(*links, BAUD).start()
    try:
        async with SimSite(site, plc_names=["plc-1", "plc-2"], serial={BUS: str(links[1])}):
            async with running_bus(site, readings, ["plc-1", "plc-2"]):
                await async_wait_until(lambda: readings.is_good("plc-1", "plc-2"), 10, "both units good")
                first.stop()  # the USB adapter is unplugged
                assert not links[0].exists()
                await async_wait_until(
                    lambda: all(r is not None and r.comms_lost and r.reason == "not connected"
                                for r in (readings.latest("plc-1"), readings.latest("plc-2"))),
                    5, "both units lost with the line",
                )
                with VirtualLine(*links, BAUD):  # plugged in again: new ptys behind the same names
                    mark = asyncio.get_running_loop().time()
                    await async_wait_until(
                        lambda: readings.good("plc-1", mark) and readings.good("plc-2", mark), 10, "good again"
                    )
    finally:
        first.stop()


async def test_a_pty_refuses_even_parity_and_that_is_a_comms_error_not_a_crash(line, links):
    transport = RtuTransport(BUS, str(links[0]), baudrate=BAUD, parity="E", timeout_s=TIMEOUT_S)
    try:
        with pytest.raises(CommsError, match="cannot open"):
            await transport.connect()
        assert not transport.connected
    finally:
        transport.close()
