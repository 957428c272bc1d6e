"""The simulated PLC's register tables: header, contiguous input block, sparse holding table, exceptions."""

from __future__ import annotations

import zlib

import pytest
from pymodbus.constants import ExcCodes

from hal.profile import (
    HEADER_SIZE,
    PROFILE_MAGIC,
    PROFILE_VERSION,
    SLOT_STRIDE,
    HeaderHolding,
    HeaderInput,
    Kind,
    SlotHolding,
    SlotInput,
    input_block_size,
    join_u32,
    slot_base,
)
from sim_plc.errors import ModbusError
from sim_plc.testing import PlcRig

KINDS = [Kind.FOLDING_GATE, Kind.ROAD_BLOCKER, Kind.TRAFFIC_SIGNAL]


@pytest.fixture
def rig() -> PlcRig:
    rig = PlcRig(KINDS, scan_ms=20)
    rig.plc.scan()  # one scan, no supervisor heartbeat written
    return rig


def exception_code(call, *args) -> int:
    with pytest.raises(ModbusError) as info:
        call(*args)
    return int(info.value.code)


def test_header(rig: PlcRig) -> None:
    header = rig.plc.read_input(0, HEADER_SIZE)
    assert header[HeaderInput.PROFILE_MAGIC] == PROFILE_MAGIC == 0x4250
    assert header[HeaderInput.PROFILE_VERSION] == PROFILE_VERSION
    assert header[HeaderInput.SLOT_COUNT] == 3
    assert header[HeaderInput.SCAN_TIME_MS] == 20
    assert header[HeaderInput.CONFIG_CRC32 + 2 :] == [0] * 8  # IR 8-15 reserved


def test_config_crc32_is_the_crc_of_the_kinds_text(rig: PlcRig) -> None:
    high, low = rig.plc.read_input(HeaderInput.CONFIG_CRC32, 2)
    assert join_u32(high, low) == zlib.crc32(b"1,2,4")


def test_the_input_table_is_one_contiguous_block(rig: PlcRig) -> None:
    size = input_block_size(len(KINDS))
    assert size == 16 + 12 * 3
    block = rig.plc.read_input(0, size)
    assert len(block) == size
    for slot, kind in enumerate(KINDS):
        base = slot_base(slot)
        assert block[base + SlotInput.KIND] == kind
        assert block[base + SlotInput.RESERVED] == 0
        assert rig.plc.read_input(base, SLOT_STRIDE) == block[base : base + SLOT_STRIDE]
    assert exception_code(rig.plc.read_input, 0, size + 1) == ExcCodes.ILLEGAL_ADDRESS
    assert exception_code(rig.plc.read_input, size, 1) == ExcCodes.ILLEGAL_ADDRESS


@pytest.mark.parametrize(
    "address",
    [2, 15, slot_base(0) + 2, slot_base(0) + SlotInput.RESERVED, slot_base(2) + 2, slot_base(3), 9999],
)
def test_holding_registers_outside_the_map_give_0x02(rig: PlcRig, address: int) -> None:
    assert exception_code(rig.plc.read_holding, address, 1) == ExcCodes.ILLEGAL_ADDRESS
    assert exception_code(rig.plc.write_holding, address, [1]) == ExcCodes.ILLEGAL_ADDRESS


def test_the_holding_map_has_exactly_hr0_hr1_and_two_per_slot(rig: PlcRig) -> None:
    assert rig.plc.read_holding(HeaderHolding.SUPERVISOR_HEARTBEAT, 2) == [0, 3000]
    for slot in range(len(KINDS)):
        assert rig.plc.read_holding(slot_base(slot) + SlotHolding.COMMAND, 2) == [0, 0]
    assert exception_code(rig.plc.read_holding, 0, 3) == ExcCodes.ILLEGAL_ADDRESS
    assert exception_code(rig.plc.read_holding, slot_base(0), 3) == ExcCodes.ILLEGAL_ADDRESS


def test_a_write_spanning_a_missing_register_changes_nothing(rig: PlcRig) -> None:
    assert exception_code(rig.plc.write_holding, 0, [7, 500, 1]) == ExcCodes.ILLEGAL_ADDRESS
    assert rig.plc.read_holding(0, 2) == [0, 3000]


@pytest.mark.parametrize("value", [1, 50, 99, 60001, 65535])
def test_watchdog_timeout_out_of_range_gives_0x03(rig: PlcRig, value: int) -> None:
    assert exception_code(rig.plc.write_holding, HeaderHolding.WATCHDOG_TIMEOUT_MS, [value]) == ExcCodes.ILLEGAL_VALUE
    assert rig.plc.read_holding(HeaderHolding.WATCHDOG_TIMEOUT_MS, 1) == [3000]


@pytest.mark.parametrize("value", [0, 100, 60000])
def test_watchdog_timeout_in_range_is_stored(rig: PlcRig, value: int) -> None:
    rig.plc.write_holding(HeaderHolding.WATCHDOG_TIMEOUT_MS, [value])
    assert rig.plc.read_holding(HeaderHolding.WATCHDOG_TIMEOUT_MS, 1) == [value]


def test_command_register_takes_any_16_bit_value(rig: PlcRig) -> None:
    rig.plc.write_holding(slot_base(1), [0xFFFF, 0xFFFF])
    assert rig.plc.read_holding(slot_base(1), 2) == [0xFFFF, 0xFFFF]
    assert exception_code(rig.plc.write_holding, slot_base(1), [0x10000]) == ExcCodes.ILLEGAL_VALUE


def test_sixteen_slots_fit_and_seventeen_do_not() -> None:
    rig = PlcRig([Kind.BOOM_BARRIER] * 16)
    rig.step()
    assert len(rig.plc.read_input(0, input_block_size(16))) == 16 + 12 * 16
    with pytest.raises(ValueError):
        PlcRig([Kind.BOOM_BARRIER] * 17)
    with pytest.raises(ValueError):
        PlcRig([])
