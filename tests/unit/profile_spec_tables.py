"""The tables of "Barrier PLC Modbus profile, version 1", copied by hand as literals for the golden test."""

from __future__ import annotations

# ---------------------------------------------------------------------------
# Spec tables as literal data
# ---------------------------------------------------------------------------

# §1 PLC header, input registers: addr -> (name, width in registers).
SPEC_HEADER_IR = {
    0: ("PROFILE_MAGIC", 1),
    1: ("PROFILE_VERSION", 1),
    2: ("PLC_HEARTBEAT", 1),
    3: ("PLC_STATUS", 1),
    4: ("SLOT_COUNT", 1),
    5: ("SCAN_TIME_MS", 1),
    6: ("CONFIG_CRC32", 2),  # IR 6-7, high word first
}
SPEC_HEADER_IR_RESERVED = range(8, 16)  # IR 8-15 reserved, read as 0
SPEC_MAGIC = 0x4250
SPEC_MAGIC_ASCII = b"BP"
SPEC_VERSION = 1
SPEC_SLOT_COUNT_MIN, SPEC_SLOT_COUNT_MAX = 1, 16

# §1 PLC header, holding registers.
SPEC_HEADER_HR = {
    0: "SUPERVISOR_HEARTBEAT",
    1: "WATCHDOG_TIMEOUT_MS",
}
SPEC_WATCHDOG_OFF = 0
SPEC_WATCHDOG_RANGE = (100, 60000)
SPEC_WATCHDOG_POWER_UP = 3000

# §1 PLC_STATUS bits: bit -> name.
SPEC_PLC_STATUS_BITS = {
    0: "WATCHDOG_EXPIRED",
    1: "ESTOP",
    2: "MAINS_FAIL",
    3: "CABINET_TAMPER",
    4: "LOCAL_PANEL",
}

# §2 Device slots.
SPEC_SLOT_BASE = 16
SPEC_SLOT_STRIDE = 12
SPEC_MAX_FC4_REGISTERS = 125
SPEC_SLOTS_WITH_HEADER_IN_ONE_READ = 9

# §2.1 slot input registers: offset from B -> (name, width). B+11 is reserved (prose).
SPEC_SLOT_IR = {
    0: ("KIND", 1),
    1: ("STATUS", 1),
    2: ("POSITION", 1),
    3: ("ACK_SEQ", 1),
    4: ("ACK_RESULT", 1),
    5: ("FAULT_CODE", 1),
    6: ("ANALOG_1", 1),
    7: ("ANALOG_2", 1),
    8: ("LAST_TRAVEL_MS", 1),
    9: ("CYCLE_COUNT", 2),  # B+9-10, 32-bit
    11: ("RESERVED", 1),
}

# §2.1 KIND values.
SPEC_KINDS = {
    1: "folding gate",
    2: "road blocker",
    3: "boom barrier",
    4: "traffic signal",
}

# §2.1 POSITION.
SPEC_POSITION_OPEN = 0
SPEC_POSITION_CLOSED = 1000
SPEC_POSITION_NO_ENCODER = 0xFFFF

# §2.1 STATUS bits for kinds 1-3: bit -> name.
SPEC_STATUS_BITS = {
    0: "AT_OPEN",
    1: "AT_CLOSED",
    2: "MOVING_OPEN",
    3: "MOVING_CLOSE",
    4: "OBSTRUCTED",
    5: "VEHICLE_PRESENT",
    6: "DRIVE_FAULT",
    7: "LOCAL",
    8: "MANUAL_RELEASE",
    9: "EFO_ACTIVE",
    10: "LOW_PRESSURE",
    11: "OIL_TEMP",
    12: "LOCKED",
    13: "SENSOR_FAULT",
}

# §2.1 STATUS bits for kind 4 (traffic signal).
SPEC_SIGNAL_STATUS_BITS = {
    0: "GREEN",
    1: "RED",
    6: "LAMP_FAULT",
    7: "LOCAL",
}

# §2.2 slot holding registers: offset from B -> name.
SPEC_SLOT_HR = {
    0: "COMMAND",
    1: "COMMAND_SEQ",
}

# §2.2 COMMAND values, leaf devices (kinds 1-3).
SPEC_COMMANDS = {
    0: "NONE",
    1: "OPEN",
    2: "CLOSE",
    3: "STOP",
    4: "RESET",
    5: "EFO",  # blocker only
}
# §2.2 COMMAND values, signal ("signal: 1 GREEN, 2 RED, 4 RESET"; 0 NONE is common to all, §3).
SPEC_SIGNAL_COMMANDS = {
    0: "NONE",
    1: "GREEN",
    2: "RED",
    4: "RESET",
}

# §2.2 / §3 valid COMMAND values per KIND ("EFO (blocker only)", "EFO to a gate, STOP to a
# signal, any value above 5" are invalid).
SPEC_VALID_COMMANDS = {
    1: {0, 1, 2, 3, 4},  # folding gate
    2: {0, 1, 2, 3, 4, 5},  # road blocker
    3: {0, 1, 2, 3, 4},  # boom barrier
    4: {0, 1, 2, 4},  # traffic signal
}

# §2.2 ACK_RESULT table: value -> (name, meaning).
SPEC_ACK_RESULT = {
    0: ("ACCEPTED", ""),
    1: ("REJECTED_LOCAL", "slot under local control or manual release"),
    2: ("REJECTED_INTERLOCK", "a PLC hard interlock"),
    3: ("REJECTED_FAULT", "DRIVE_FAULT latched (only RESET is accepted)"),
    4: ("REJECTED_INVALID", "command not valid for this kind"),
    5: ("REJECTED_WATCHDOG", "supervisor heartbeat lost"),
    6: ("REJECTED_ESTOP", "emergency stop chain open"),
}

# §2.2 FAULT_CODE values ("0 = none" from the status table).
SPEC_FAULT_CODES = {
    0: "none",
    1: "drive overload",
    2: "drive over-temperature",
    3: "pump fault",
    4: "low pressure",
    5: "limit switch fault (both limits made)",
    6: "PLC max-run time exceeded",
    7: "lamp fault",
    8: "safety sensor fault",
}

# §1 CONFIG_CRC32 example: slots with kinds 1,2,4 -> crc32(b"1,2,4").
SPEC_CRC_EXAMPLE_KINDS = [1, 2, 4]
SPEC_CRC_EXAMPLE_TEXT = b"1,2,4"
SPEC_CRC_EXAMPLE_VALUE = 0x8FEDD848  # zlib.crc32(b"1,2,4"), computed once and pinned
