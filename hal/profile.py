"""Barrier PLC Modbus profile v1 as data: the one register map the HAL and the simulator share."""

from __future__ import annotations

import zlib
from enum import IntEnum, IntFlag

PROFILE_MAGIC = 0x4250  # ASCII "BP"
PROFILE_VERSION = 1

HEADER_SIZE = 16  # IR 0..15; IR 8..15 are reserved and read as 0
SLOT_BASE = 16
SLOT_STRIDE = 12
MIN_SLOTS = 1
MAX_SLOTS = 16
MAX_READ_REGISTERS = 125  # Modbus limit for one FC3/FC4 request
SLOTS_PER_READ_WITH_HEADER = (MAX_READ_REGISTERS - HEADER_SIZE) // SLOT_STRIDE  # 9

POSITION_OPEN = 0
POSITION_CLOSED = 1000
POSITION_NO_ENCODER = 0xFFFF

WATCHDOG_OFF = 0
WATCHDOG_MIN_MS = 100
WATCHDOG_MAX_MS = 60000
WATCHDOG_POWER_UP_MS = 3000


class HeaderInput(IntEnum):
    """Input registers of the PLC header (FC4)."""

    PROFILE_MAGIC = 0
    PROFILE_VERSION = 1
    PLC_HEARTBEAT = 2
    PLC_STATUS = 3
    SLOT_COUNT = 4
    SCAN_TIME_MS = 5
    CONFIG_CRC32 = 6  # 32-bit, high word first: IR 6 and 7


class HeaderHolding(IntEnum):
    """Holding registers of the PLC header (FC3/FC6/FC16)."""

    SUPERVISOR_HEARTBEAT = 0
    WATCHDOG_TIMEOUT_MS = 1


class PlcStatus(IntFlag):
    """PLC_STATUS bits."""

    WATCHDOG_EXPIRED = 1 << 0
    ESTOP = 1 << 1
    MAINS_FAIL = 1 << 2
    CABINET_TAMPER = 1 << 3
    LOCAL_PANEL = 1 << 4


class SlotInput(IntEnum):
    """Offsets of a slot's input registers from its base B."""

    KIND = 0
    STATUS = 1
    POSITION = 2
    ACK_SEQ = 3
    ACK_RESULT = 4
    FAULT_CODE = 5
    ANALOG_1 = 6
    ANALOG_2 = 7
    LAST_TRAVEL_MS = 8
    CYCLE_COUNT = 9  # 32-bit, high word first: B+9 and B+10
    RESERVED = 11


class SlotHolding(IntEnum):
    """Offsets of a slot's holding registers from its base B."""

    COMMAND = 0
    COMMAND_SEQ = 1


class Kind(IntEnum):
    """Device kind codes in a slot's KIND register."""

    FOLDING_GATE = 1
    ROAD_BLOCKER = 2
    BOOM_BARRIER = 3
    TRAFFIC_SIGNAL = 4


class Status(IntFlag):
    """STATUS bits of a leaf device slot (kinds 1 to 3)."""

    AT_OPEN = 1 << 0
    AT_CLOSED = 1 << 1
    MOVING_OPEN = 1 << 2
    MOVING_CLOSE = 1 << 3
    OBSTRUCTED = 1 << 4
    VEHICLE_PRESENT = 1 << 5
    DRIVE_FAULT = 1 << 6
    LOCAL = 1 << 7
    MANUAL_RELEASE = 1 << 8
    EFO_ACTIVE = 1 << 9
    LOW_PRESSURE = 1 << 10
    OIL_TEMP = 1 << 11
    LOCKED = 1 << 12
    SENSOR_FAULT = 1 << 13


class SignalStatus(IntFlag):
    """STATUS bits of a traffic signal slot (kind 4)."""

    GREEN = 1 << 0
    RED = 1 << 1
    LAMP_FAULT = 1 << 6
    LOCAL = 1 << 7


class Command(IntEnum):
    """COMMAND values for leaf devices (kinds 1 to 3)."""

    NONE = 0
    OPEN = 1
    CLOSE = 2
    STOP = 3
    RESET = 4
    EFO = 5


class SignalCommand(IntEnum):
    """COMMAND values for traffic signals (kind 4)."""

    NONE = 0
    GREEN = 1
    RED = 2
    RESET = 4


VALID_COMMANDS: dict[Kind, frozenset[int]] = {
    Kind.FOLDING_GATE: frozenset({Command.NONE, Command.OPEN, Command.CLOSE, Command.STOP, Command.RESET}),
    Kind.BOOM_BARRIER: frozenset({Command.NONE, Command.OPEN, Command.CLOSE, Command.STOP, Command.RESET}),
    Kind.ROAD_BLOCKER: frozenset(
        {Command.NONE, Command.OPEN, Command.CLOSE, Command.STOP, Command.RESET, Command.EFO}
    ),
    Kind.TRAFFIC_SIGNAL: frozenset(
        {SignalCommand.NONE, SignalCommand.GREEN, SignalCommand.RED, SignalCommand.RESET}
    ),
}


class AckResult(IntEnum):
    """ACK_RESULT values."""

    ACCEPTED = 0
    REJECTED_LOCAL = 1
    REJECTED_INTERLOCK = 2
    REJECTED_FAULT = 3
    REJECTED_INVALID = 4
    REJECTED_WATCHDOG = 5
    REJECTED_ESTOP = 6


ACK_RESULT_MEANING: dict[AckResult, str] = {
    AckResult.ACCEPTED: "accepted",
    AckResult.REJECTED_LOCAL: "slot under local control or manual release",
    AckResult.REJECTED_INTERLOCK: "a PLC hard interlock",
    AckResult.REJECTED_FAULT: "drive fault latched (only RESET is accepted)",
    AckResult.REJECTED_INVALID: "command not valid for this kind",
    AckResult.REJECTED_WATCHDOG: "supervisor heartbeat lost",
    AckResult.REJECTED_ESTOP: "emergency stop chain open",
}


class FaultCode(IntEnum):
    """FAULT_CODE values (latched first-out fault)."""

    NONE = 0
    DRIVE_OVERLOAD = 1
    DRIVE_OVER_TEMPERATURE = 2
    PUMP_FAULT = 3
    LOW_PRESSURE = 4
    LIMIT_SWITCH_FAULT = 5
    MAX_RUN_EXCEEDED = 6
    LAMP_FAULT = 7
    SAFETY_SENSOR_FAULT = 8


FAULT_CODE_MEANING: dict[FaultCode, str] = {
    FaultCode.NONE: "none",
    FaultCode.DRIVE_OVERLOAD: "drive overload",
    FaultCode.DRIVE_OVER_TEMPERATURE: "drive over-temperature",
    FaultCode.PUMP_FAULT: "pump fault",
    FaultCode.LOW_PRESSURE: "low pressure",
    FaultCode.LIMIT_SWITCH_FAULT: "limit switch fault (both limits made)",
    FaultCode.MAX_RUN_EXCEEDED: "PLC max-run time exceeded",
    FaultCode.LAMP_FAULT: "lamp fault",
    FaultCode.SAFETY_SENSOR_FAULT: "safety sensor fault",
}


def slot_base(slot: int) -> int:
    """First register address of slot `slot` (same in both tables)."""
    if not MIN_SLOTS - 1 <= slot < MAX_SLOTS:
        raise ValueError(f"slot {slot} outside 0..{MAX_SLOTS - 1}")
    return SLOT_BASE + SLOT_STRIDE * slot


def input_block_size(slot_count: int) -> int:
    """Number of input registers from IR 0 through the last slot's last register."""
    return SLOT_BASE + SLOT_STRIDE * slot_count


def holding_addresses(slot_count: int) -> frozenset[int]:
    """Every holding-register address that exists on a PLC with `slot_count` slots."""
    addresses = {HeaderHolding.SUPERVISOR_HEARTBEAT, HeaderHolding.WATCHDOG_TIMEOUT_MS}
    for slot in range(slot_count):
        base = slot_base(slot)
        addresses.update({base + SlotHolding.COMMAND, base + SlotHolding.COMMAND_SEQ})
    return frozenset(int(a) for a in addresses)


def watchdog_value_valid(value: int) -> bool:
    """WATCHDOG_TIMEOUT_MS accepts 0 (off) or 100..60000."""
    return value == WATCHDOG_OFF or WATCHDOG_MIN_MS <= value <= WATCHDOG_MAX_MS


def config_crc32(kinds: list[int]) -> int:
    """CONFIG_CRC32: zlib CRC-32 of the slot kinds as decimal text joined by commas."""
    return zlib.crc32(",".join(str(int(k)) for k in kinds).encode("ascii"))


def split_u32(value: int) -> tuple[int, int]:
    """A 32-bit value as two registers, high word first."""
    return (value >> 16) & 0xFFFF, value & 0xFFFF


def join_u32(high: int, low: int) -> int:
    """Two registers, high word first, as one 32-bit value."""
    return (high << 16) | low


def to_signed16(word: int) -> int:
    """A register read as a two's-complement signed 16-bit value."""
    return word - 0x10000 if word & 0x8000 else word


def next_command_seq(seq: int) -> int:
    """The COMMAND_SEQ after `seq`: 1..65535, never 0 (the power-up value)."""
    return seq % 0xFFFF + 1
