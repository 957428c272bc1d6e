"""Golden test: hal/profile.py against every table of "Barrier PLC Modbus profile, version 1".

The tables (tests/unit/profile_spec_tables.py) are copied by hand from the normative profile document. The document
file itself is deliberately not read at test time; if the spec changes, change the
literals here and then the profile. Every comparison runs in both directions: nothing
of the spec is missing from the profile and the profile adds nothing the spec lacks.
"""

from __future__ import annotations

import zlib
from enum import IntEnum, IntFlag

import pytest

from hal import profile as p
from tests.unit.profile_spec_tables import (  # the spec, table by table
    SPEC_SLOT_COUNT_MAX,
    SPEC_SLOT_COUNT_MIN,
    SPEC_ACK_RESULT,
    SPEC_COMMANDS,
    SPEC_CRC_EXAMPLE_KINDS,
    SPEC_CRC_EXAMPLE_TEXT,
    SPEC_CRC_EXAMPLE_VALUE,
    SPEC_FAULT_CODES,
    SPEC_HEADER_HR,
    SPEC_HEADER_IR,
    SPEC_HEADER_IR_RESERVED,
    SPEC_KINDS,
    SPEC_MAGIC,
    SPEC_MAGIC_ASCII,
    SPEC_MAX_FC4_REGISTERS,
    SPEC_PLC_STATUS_BITS,
    SPEC_POSITION_CLOSED,
    SPEC_POSITION_NO_ENCODER,
    SPEC_POSITION_OPEN,
    SPEC_SIGNAL_COMMANDS,
    SPEC_SIGNAL_STATUS_BITS,
    SPEC_SLOTS_WITH_HEADER_IN_ONE_READ,
    SPEC_SLOT_BASE,
    SPEC_SLOT_HR,
    SPEC_SLOT_IR,
    SPEC_SLOT_STRIDE,
    SPEC_STATUS_BITS,
    SPEC_VALID_COMMANDS,
    SPEC_VERSION,
    SPEC_WATCHDOG_OFF,
    SPEC_WATCHDOG_POWER_UP,
    SPEC_WATCHDOG_RANGE,
)

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
