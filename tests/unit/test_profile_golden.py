"""Golden test: hal/profile.py against every table of "Barrier PLC Modbus profile, version 1".

The tables below are copied by hand from the normative profile document. The document
file itself is deliberately not read at test time; if the spec changes, change the
literals here and then the profile. Every comparison runs in both directions: nothing
of the spec is missing from the profile and the profile adds nothing the spec lacks.
"""

from __future__ import annotations

import zlib
from enum import IntEnum, IntFlag

import pytest

from hal import profile as p

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


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def enum_table(enum: type[IntEnum]) -> dict[int, str]:
    """value -> name for every member, aliases included; fails on two names for one value."""
    table: dict[int, str] = {}
    for name, member in enum.__members__.items():
        assert int(member) not in table, f"{enum.__name__}: {name} and {table[int(member)]} share {int(member)}"
        table[int(member)] = name
    return table


def flag_bits(flag: type[IntFlag]) -> dict[int, str]:
    """bit number -> name for every member; every member must be exactly one bit."""
    table: dict[int, str] = {}
    for name, member in flag.__members__.items():
        value = int(member)
        assert value > 0 and value & (value - 1) == 0, f"{flag.__name__}.{name} = {value:#x} is not a single bit"
        bit = value.bit_length() - 1
        assert bit not in table, f"{flag.__name__}: {name} and {table[bit]} share bit {bit}"
        table[bit] = name
    return table


def diff(spec: dict, impl: dict) -> str:
    missing = {k: spec[k] for k in spec.keys() - impl.keys()}
    extra = {k: impl[k] for k in impl.keys() - spec.keys()}
    wrong = {k: (spec[k], impl[k]) for k in spec.keys() & impl.keys() if spec[k] != impl[k]}
    return f"missing from profile: {missing}; extra in profile: {extra}; differ (spec, profile): {wrong}"


def assert_same(spec: dict, impl: dict) -> None:
    assert impl == spec, diff(spec, impl)


def normalise(text: str) -> str:
    return text.replace("_", " ").lower()


# ---------------------------------------------------------------------------
# §1 PLC header
# ---------------------------------------------------------------------------


def test_header_input_register_names_and_addresses():
    assert_same({addr: name for addr, (name, _) in SPEC_HEADER_IR.items()}, enum_table(p.HeaderInput))


def test_header_input_registers_cover_0_to_15_with_reserved_8_to_15():
    covered: list[int] = []
    for addr, (_, width) in SPEC_HEADER_IR.items():
        covered += range(addr, addr + width)
    covered += SPEC_HEADER_IR_RESERVED
    assert sorted(covered) == list(range(SPEC_SLOT_BASE)), "header registers overlap or leave a gap"
    assert p.HEADER_SIZE == SPEC_SLOT_BASE == 16
    assert not set(SPEC_HEADER_IR_RESERVED) & {int(m) for m in p.HeaderInput}
    # CONFIG_CRC32 occupies IR 6 and 7: the next named register starts after both
    assert p.HeaderInput.CONFIG_CRC32 == 6
    assert p.HeaderInput.CONFIG_CRC32 + 2 == SPEC_HEADER_IR_RESERVED.start


def test_magic_and_version():
    assert p.PROFILE_MAGIC == SPEC_MAGIC == 0x4250
    assert p.PROFILE_MAGIC.to_bytes(2, "big") == SPEC_MAGIC_ASCII
    assert p.PROFILE_VERSION == SPEC_VERSION == 1


def test_slot_count_range():
    assert (p.MIN_SLOTS, p.MAX_SLOTS) == (SPEC_SLOT_COUNT_MIN, SPEC_SLOT_COUNT_MAX)


def test_crc32_is_high_word_first():
    value = SPEC_CRC_EXAMPLE_VALUE
    high, low = p.split_u32(value)
    assert (high, low) == (0x8FED, 0xD848)  # IR 6 = high word, IR 7 = low word
    assert p.join_u32(high, low) == value
    for v in (0, 1, 0xFFFF, 0x10000, 0xFFFFFFFF, 0x12345678):
        assert p.join_u32(*p.split_u32(v)) == v
        assert all(0 <= w <= 0xFFFF for w in p.split_u32(v))


def test_header_holding_register_names_and_addresses():
    assert_same(SPEC_HEADER_HR, enum_table(p.HeaderHolding))


def test_watchdog_timeout_range_and_power_up_value():
    lo, hi = SPEC_WATCHDOG_RANGE
    assert (p.WATCHDOG_OFF, p.WATCHDOG_MIN_MS, p.WATCHDOG_MAX_MS) == (SPEC_WATCHDOG_OFF, lo, hi)
    assert p.WATCHDOG_POWER_UP_MS == SPEC_WATCHDOG_POWER_UP
    assert p.watchdog_value_valid(p.WATCHDOG_POWER_UP_MS)
    for value in (0, lo, lo + 1, 1000, SPEC_WATCHDOG_POWER_UP, hi - 1, hi):
        assert p.watchdog_value_valid(value), value
    for value in (1, 50, lo - 1, hi + 1, 65535, -1):
        assert not p.watchdog_value_valid(value), value


def test_watchdog_validity_exhaustive_over_u16():
    lo, hi = SPEC_WATCHDOG_RANGE
    for value in range(0x10000):
        assert p.watchdog_value_valid(value) == (value == 0 or lo <= value <= hi), value


def test_plc_status_bits():
    assert_same(SPEC_PLC_STATUS_BITS, flag_bits(p.PlcStatus))


# ---------------------------------------------------------------------------
# §2 Device slots
# ---------------------------------------------------------------------------


def test_slot_base_is_16_plus_12s():
    assert (p.SLOT_BASE, p.SLOT_STRIDE) == (SPEC_SLOT_BASE, SPEC_SLOT_STRIDE)
    for s in range(SPEC_SLOT_COUNT_MAX):
        assert p.slot_base(s) == 16 + 12 * s


@pytest.mark.parametrize("slot", [-1, SPEC_SLOT_COUNT_MAX, 100])
def test_slot_base_refuses_slots_outside_profile(slot):
    with pytest.raises(ValueError):
        p.slot_base(slot)


def test_slot_input_register_offsets():
    assert_same({off: name for off, (name, _) in SPEC_SLOT_IR.items()}, enum_table(p.SlotInput))


def test_slot_input_registers_fill_exactly_one_stride():
    covered: list[int] = []
    for off, (_, width) in SPEC_SLOT_IR.items():
        covered += range(off, off + width)
    assert sorted(covered) == list(range(SPEC_SLOT_STRIDE))
    assert p.SlotInput.CYCLE_COUNT + 2 == p.SlotInput.RESERVED == SPEC_SLOT_STRIDE - 1


def test_slot_holding_register_offsets():
    assert_same(SPEC_SLOT_HR, enum_table(p.SlotHolding))


def test_input_block_is_contiguous_header_plus_slots():
    for n in range(SPEC_SLOT_COUNT_MIN, SPEC_SLOT_COUNT_MAX + 1):
        # IR 0 .. 16 + 12*n - 1
        assert p.input_block_size(n) == 16 + 12 * n
        assert p.input_block_size(n) == p.slot_base(n - 1) + SPEC_SLOT_STRIDE


def test_header_and_up_to_nine_slots_in_one_fc4_read():
    assert p.MAX_READ_REGISTERS == SPEC_MAX_FC4_REGISTERS
    assert p.SLOTS_PER_READ_WITH_HEADER == SPEC_SLOTS_WITH_HEADER_IN_ONE_READ
    assert p.input_block_size(SPEC_SLOTS_WITH_HEADER_IN_ONE_READ) <= SPEC_MAX_FC4_REGISTERS
    assert p.input_block_size(SPEC_SLOTS_WITH_HEADER_IN_ONE_READ + 1) > SPEC_MAX_FC4_REGISTERS


@pytest.mark.parametrize("slot_count", range(SPEC_SLOT_COUNT_MIN, SPEC_SLOT_COUNT_MAX + 1))
def test_holding_addresses_are_only_hr0_1_and_each_slot_b_b1(slot_count):
    expected = {0, 1}
    for s in range(slot_count):
        b = SPEC_SLOT_BASE + SPEC_SLOT_STRIDE * s
        expected |= {b, b + 1}
    got = p.holding_addresses(slot_count)
    assert got == frozenset(expected)
    assert all(type(a) is int for a in got)
    # reserved header HRs and the rest of each slot's range do not exist
    assert not got & set(range(2, SPEC_SLOT_BASE))
    assert max(got) == p.slot_base(slot_count - 1) + 1


def test_kind_codes():
    impl = {value: name for value, name in enum_table(p.Kind).items()}
    spec = {value: text.upper().replace(" ", "_") for value, text in SPEC_KINDS.items()}
    assert_same(spec, impl)


def test_position_scale():
    assert (p.POSITION_OPEN, p.POSITION_CLOSED, p.POSITION_NO_ENCODER) == (
        SPEC_POSITION_OPEN,
        SPEC_POSITION_CLOSED,
        SPEC_POSITION_NO_ENCODER,
    )


def test_status_bits_for_kinds_1_to_3():
    assert len(SPEC_STATUS_BITS) == 14
    assert_same(SPEC_STATUS_BITS, flag_bits(p.Status))


def test_signal_status_bits():
    assert_same(SPEC_SIGNAL_STATUS_BITS, flag_bits(p.SignalStatus))
    # LOCAL is the same bit for every kind
    assert int(p.SignalStatus.LOCAL) == int(p.Status.LOCAL)


def test_analog_2_is_signed_twos_complement():
    assert p.to_signed16(0) == 0
    assert p.to_signed16(0x7FFF) == 32767
    assert p.to_signed16(0x8000) == -32768
    assert p.to_signed16(0xFFFF) == -1
    assert p.to_signed16(0xFF9C) == -100  # -10.0 °C


# ---------------------------------------------------------------------------
# §2.2 Commands and results
# ---------------------------------------------------------------------------


def test_leaf_command_values():
    assert_same(SPEC_COMMANDS, enum_table(p.Command))


def test_signal_command_values():
    assert_same(SPEC_SIGNAL_COMMANDS, enum_table(p.SignalCommand))


def test_valid_commands_per_kind():
    impl = {int(kind): {int(c) for c in cmds} for kind, cmds in p.VALID_COMMANDS.items()}
    assert_same(SPEC_VALID_COMMANDS, impl)
    assert set(p.VALID_COMMANDS) == set(p.Kind)


@pytest.mark.parametrize("kind", sorted(SPEC_VALID_COMMANDS))
def test_valid_commands_membership_over_u16(kind):
    valid = p.VALID_COMMANDS[p.Kind(kind)]
    for value in range(0x10000):
        assert (value in valid) == (value in SPEC_VALID_COMMANDS[kind]), (kind, value)


def test_invalid_command_examples_from_spec():
    assert p.Command.EFO not in p.VALID_COMMANDS[p.Kind.FOLDING_GATE]  # EFO to a gate
    assert p.Command.EFO not in p.VALID_COMMANDS[p.Kind.BOOM_BARRIER]  # EFO is blocker only
    assert p.Command.STOP not in p.VALID_COMMANDS[p.Kind.TRAFFIC_SIGNAL]  # STOP to a signal
    for kind in p.Kind:
        assert 6 not in p.VALID_COMMANDS[kind]  # any value above 5
        assert 0 in p.VALID_COMMANDS[kind]  # COMMAND 0 is acknowledged with result 0


def test_ack_result_values():
    assert_same({v: name for v, (name, _) in SPEC_ACK_RESULT.items()}, enum_table(p.AckResult))


def test_ack_result_meanings():
    assert set(p.ACK_RESULT_MEANING) == set(p.AckResult)
    spec = {v: normalise(meaning or name) for v, (name, meaning) in SPEC_ACK_RESULT.items()}
    impl = {int(k): normalise(v) for k, v in p.ACK_RESULT_MEANING.items()}
    assert_same(spec, impl)


def test_fault_codes():
    assert_same(set(SPEC_FAULT_CODES), {int(m) for m in p.FaultCode})
    assert set(p.FAULT_CODE_MEANING) == set(p.FaultCode)
    assert_same(SPEC_FAULT_CODES, {int(k): v for k, v in p.FAULT_CODE_MEANING.items()})
    assert p.FaultCode.NONE == 0


# ---------------------------------------------------------------------------
# CONFIG_CRC32 and COMMAND_SEQ helpers
# ---------------------------------------------------------------------------


def test_config_crc32_example_from_spec():
    assert zlib.crc32(SPEC_CRC_EXAMPLE_TEXT) == SPEC_CRC_EXAMPLE_VALUE
    assert p.config_crc32(SPEC_CRC_EXAMPLE_KINDS) == SPEC_CRC_EXAMPLE_VALUE
    assert p.config_crc32([p.Kind.FOLDING_GATE, p.Kind.ROAD_BLOCKER, p.Kind.TRAFFIC_SIGNAL]) == SPEC_CRC_EXAMPLE_VALUE


def test_config_crc32_depends_on_slot_order_and_is_decimal_text():
    assert p.config_crc32([4, 2, 1]) == zlib.crc32(b"4,2,1") != SPEC_CRC_EXAMPLE_VALUE
    assert p.config_crc32([3]) == zlib.crc32(b"3")
    assert p.config_crc32([1] * 16) == zlib.crc32(b",".join([b"1"] * 16))
    assert 0 <= p.config_crc32([2, 2, 3, 4]) <= 0xFFFFFFFF


def test_next_command_seq_never_zero_and_wraps():
    assert p.next_command_seq(0) == 1  # from the power-up value
    assert p.next_command_seq(1) == 2
    assert p.next_command_seq(65534) == 65535
    assert p.next_command_seq(65535) == 1  # wraps past 0
    for seq in range(0x10000):
        nxt = p.next_command_seq(seq)
        assert 1 <= nxt <= 0xFFFF and nxt != seq, seq


def test_next_command_seq_cycle_visits_every_nonzero_value():
    seen = set()
    seq = 0
    for _ in range(0xFFFF):
        seq = p.next_command_seq(seq)
        seen.add(seq)
    assert seen == set(range(1, 0x10000))
    assert p.next_command_seq(seq) == 1
