"""sim_plc over real Modbus TCP: the demo site on ephemeral ports, read and written by a pymodbus client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from config.loader import load_site
from hal.profile import (
    PROFILE_MAGIC,
    AckResult,
    Command,
    HeaderHolding,
    HeaderInput,
    Kind,
    SlotInput,
    Status,
    input_block_size,
    slot_base,
)
from sim_plc.clock import FakeClock
from sim_plc.server import SimSite

DEMO = Path(__file__).resolve().parents[2] / "config" / "sites" / "demo.toml"
LANE = "plc-lane-1"
GATE = 0
T = TypeVar("T")


async def poll(read: Callable[[], Awaitable[T]], ok: Callable[[T], bool], deadline_s: float = 5.0) -> T:
    """Call read() until ok(value) holds; fail with the last value after the deadline."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while True:
        value = await read()
        if ok(value):
            return value
        if loop.time() > end:
            raise AssertionError(f"condition not met within {deadline_s} s; last value {value!r}")
        await asyncio.sleep(0.02)


@pytest_asyncio.fixture
async def sim(tmp_path: Path) -> AsyncIterator[SimSite]:
    site = SimSite(load_site(DEMO), port_override=0, write_log=tmp_path / "writes.jsonl")
    await site.start()
    try:
        yield site
    finally:
        await site.stop()


async def connect(sim: SimSite, plc: str = LANE) -> AsyncModbusTcpClient:
    client = AsyncModbusTcpClient("127.0.0.1", port=sim.port_of(plc), timeout=0.5, retries=0)
    assert await client.connect()
    return client


@pytest_asyncio.fixture
async def client(sim: SimSite) -> AsyncIterator[AsyncModbusTcpClient]:
    client = await connect(sim)
    try:
        yield client
    finally:
        client.close()


async def read_inputs(client: AsyncModbusTcpClient, address: int, count: int) -> list[int]:
    reply = await client.read_input_registers(address, count=count, device_id=1)
    assert not reply.isError(), reply
    assert reply.function_code == 4
    assert len(reply.registers) == count
    return list(reply.registers)


async def write(client: AsyncModbusTcpClient, address: int, values: list[int]) -> Any:
    return await client.write_registers(address, values, device_id=1)


@pytest.mark.asyncio
async def test_every_demo_plc_listens_on_its_own_ephemeral_port(sim: SimSite) -> None:
    assert set(sim.plcs) == {"plc-lane-1", "plc-lane-2", "plc-bay"}
    ports = sim.ports
    assert len(set(ports.values())) == 3 and all(port > 0 for port in ports.values())
    bay = await connect(sim, "plc-bay")
    try:
        block = await read_inputs(bay, 0, input_block_size(2))
        assert block[HeaderInput.SLOT_COUNT] == 2
        assert block[slot_base(1) + SlotInput.KIND] == Kind.BOOM_BARRIER
    finally:
        bay.close()


@pytest.mark.asyncio
async def test_header_and_slots_in_one_read_with_a_running_heartbeat(client: AsyncModbusTcpClient) -> None:
    size = input_block_size(3)
    assert size == 16 + 12 * 3
    first = await read_inputs(client, 0, size)
    assert first[HeaderInput.PROFILE_MAGIC] == PROFILE_MAGIC == 0x4250
    assert first[HeaderInput.SLOT_COUNT] == 3
    kinds = [first[slot_base(s) + SlotInput.KIND] for s in range(3)]
    assert kinds == [Kind.FOLDING_GATE, Kind.ROAD_BLOCKER, Kind.TRAFFIC_SIGNAL]
    beat = first[HeaderInput.PLC_HEARTBEAT]
    await poll(lambda: read_inputs(client, 0, size), lambda regs: regs[HeaderInput.PLC_HEARTBEAT] != beat)


@pytest.mark.asyncio
async def test_fc16_command_is_acknowledged_and_moves_the_gate(sim: SimSite, client: AsyncModbusTcpClient) -> None:
    reply = await client.write_register(HeaderHolding.WATCHDOG_TIMEOUT_MS, 0, device_id=1)  # FC6
    assert not reply.isError(), reply
    base = slot_base(GATE)
    reply = await write(client, base, [Command.OPEN, 1])
    assert not reply.isError(), reply
    ack = await poll(lambda: read_inputs(client, base, 12), lambda regs: regs[SlotInput.ACK_SEQ] == 1)
    assert ack[SlotInput.ACK_RESULT] == AckResult.ACCEPTED
    await poll(
        lambda: read_inputs(client, base, 12),
        lambda regs: regs[SlotInput.STATUS] & Status.MOVING_OPEN and regs[SlotInput.POSITION] < 1000,
    )
    reply = await write(client, base, [Command.EFO, 2])  # EFO is not a gate command
    assert not reply.isError()
    ack = await poll(lambda: read_inputs(client, base, 12), lambda regs: regs[SlotInput.ACK_SEQ] == 2)
    assert ack[SlotInput.ACK_RESULT] == AckResult.REJECTED_INVALID
    holding = await client.read_holding_registers(base, count=2, device_id=1)
    assert holding.registers == [Command.EFO, 2]


@pytest.mark.asyncio
async def test_missing_register_gives_0x02_and_bad_value_0x03(sim: SimSite, client: AsyncModbusTcpClient) -> None:
    reply = await client.read_holding_registers(slot_base(0) + 2, count=1, device_id=1)
    assert reply.isError() and reply.exception_code == 0x02
    reply = await client.read_input_registers(0, count=input_block_size(3) + 1, device_id=1)
    assert reply.isError() and reply.exception_code == 0x02
    reply = await client.read_coils(0, count=1, device_id=1)
    assert reply.isError() and reply.exception_code == 0x02
    reply = await client.write_register(HeaderHolding.WATCHDOG_TIMEOUT_MS, 50, device_id=1)
    assert reply.isError() and reply.exception_code == 0x03
    reply = await client.read_holding_registers(0, count=2, device_id=1)
    assert not reply.isError() and reply.registers[1] == 3000


@pytest.mark.asyncio
async def test_comms_silence_times_the_client_out_until_cleared(sim: SimSite, client: AsyncModbusTcpClient) -> None:
    await read_inputs(client, 0, 4)
    sim.inject(LANE, "comms_silence")
    with pytest.raises(ModbusIOException):
        await client.read_input_registers(0, count=4, device_id=1)
    with pytest.raises(ModbusIOException):
        await write(client, slot_base(GATE), [Command.OPEN, 7])
    assert sim.plcs[LANE].read_holding(slot_base(GATE), 2) == [0, 0]  # the write never arrived
    sim.inject(LANE, "comms_silence", active=False)
    regs = await read_inputs(client, 0, 4)
    assert regs[HeaderInput.PROFILE_MAGIC] == PROFILE_MAGIC
    assert any(w["result"] == "silenced" and w["values"] == [Command.OPEN, 7] for w in sim.writes)


@pytest.mark.asyncio
async def test_frozen_logic_freezes_the_heartbeat_while_replies_keep_coming(
    sim: SimSite, client: AsyncModbusTcpClient
) -> None:
    sim.inject(LANE, "frozen_logic")
    frozen = (await read_inputs(client, 0, 4))[HeaderInput.PLC_HEARTBEAT]
    loop = asyncio.get_running_loop()
    end = loop.time() + 0.3  # 30 scan periods
    replies = 0
    while loop.time() < end:
        assert (await read_inputs(client, 0, 4))[HeaderInput.PLC_HEARTBEAT] == frozen
        replies += 1
    assert replies >= 5
    sim.inject(LANE, "frozen_logic", active=False)
    await poll(lambda: read_inputs(client, 0, 4), lambda regs: regs[HeaderInput.PLC_HEARTBEAT] != frozen)


@pytest.mark.asyncio
async def test_the_write_log_records_every_client_write(
    sim: SimSite, client: AsyncModbusTcpClient, tmp_path: Path
) -> None:
    await write(client, slot_base(GATE), [Command.CLOSE, 5])
    await client.write_register(HeaderHolding.WATCHDOG_TIMEOUT_MS, 50, device_id=1)
    await write(client, slot_base(0) + 2, [1])
    lines = (tmp_path / "writes.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert [(e["fc"], e["address"], e["values"], e["result"]) for e in entries] == [
        (16, slot_base(GATE), [Command.CLOSE, 5], "ok"),
        (6, HeaderHolding.WATCHDOG_TIMEOUT_MS, [50], "exception 3"),
        (16, slot_base(0) + 2, [1], "exception 2"),
    ]
    assert all(e["plc"] == LANE and e["unit"] == 1 and isinstance(e["t"], float) for e in entries)
    assert entries == sim.writes


@pytest.mark.asyncio
async def test_a_fake_clock_drives_the_served_plant() -> None:
    clock = FakeClock()
    sim = SimSite(load_site(DEMO), plc_names=[LANE], port_override={LANE: 0}, clock=clock)
    await sim.start()
    client = await connect(sim)
    try:
        reply = await client.write_register(HeaderHolding.WATCHDOG_TIMEOUT_MS, 0, device_id=1)
        assert not reply.isError()  # time only moves when the test says, so no heartbeat is fed
        base = slot_base(GATE)
        await write(client, base, [Command.OPEN, 1])
        await poll(lambda: read_inputs(client, base, 12), lambda regs: regs[SlotInput.ACK_SEQ] == 1)
        clock.advance(1.0)
        regs = await poll(lambda: read_inputs(client, base, 12), lambda r: r[SlotInput.POSITION] < 1000)
        assert regs[SlotInput.POSITION] == pytest.approx(667, abs=2)
        clock.advance(2.0)
        regs = await poll(lambda: read_inputs(client, base, 12), lambda r: r[SlotInput.STATUS] & Status.AT_OPEN)
        assert regs[SlotInput.LAST_TRAVEL_MS] == 3000
    finally:
        client.close()
        await sim.stop()


def test_unknown_plc_names_are_refused() -> None:
    with pytest.raises(ValueError, match="plc-nope"):
        SimSite(load_site(DEMO), plc_names=["plc-nope"])


MIXED_SITE = """
[site]
name = "mixed"

[[bus]]
name = "rs485-a"
port = "/dev/ttyUSB0"

[[plc]]
name = "plc-tcp"
host = "127.0.0.1"
port = 15099

[[plc]]
name = "plc-rtu"
bus = "rs485-a"
unit = 7

[[device]]
name = "boom-a"
kind = "boom_barrier"
plc = "plc-tcp"
slot = 0

[[device]]
name = "boom-b"
kind = "boom_barrier"
plc = "plc-rtu"
slot = 0
"""


@pytest.mark.asyncio
async def test_plcs_on_a_serial_bus_are_skipped_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "mixed.toml"
    path.write_text(MIXED_SITE)
    sim = SimSite(load_site(path), port_override=0)
    await sim.start()
    try:
        assert list(sim.plcs) == ["plc-tcp"]
        assert "rs485-a" in sim.skipped["plc-rtu"]
        client = await connect(sim, "plc-tcp")
        try:
            assert (await read_inputs(client, 0, input_block_size(1)))[HeaderInput.SLOT_COUNT] == 1
        finally:
            client.close()
    finally:
        await sim.stop()
