"""hal.snapshot: the input-register block is decoded into typed values, or refused with BadReplyError."""

from __future__ import annotations

import zlib

import pytest

from hal.errors import BadReplyError
from hal.profile import (
    PROFILE_MAGIC,
    PROFILE_VERSION,
    SLOT_STRIDE,
    HeaderInput,
    Kind,
    SlotInput,
    Status,
    config_crc32,
    input_block_size,
    slot_base,
    split_u32,
)
from hal.snapshot import PlcSnapshot, SlotSnapshot, decode_block, decode_slot


def block(kinds: list[int], **slot0: int) -> list[int]:
    """A valid IR block for a PLC with these slot kinds; slot0 overrides registers of slot 0 by name."""
    words = [0] * input_block_size(len(kinds))
    words[HeaderInput.PROFILE_MAGIC] = PROFILE_MAGIC
    words[HeaderInput.PROFILE_VERSION] = PROFILE_VERSION
    words[HeaderInput.PLC_HEARTBEAT] = 42
    words[HeaderInput.PLC_STATUS] = 0
    words[HeaderInput.SLOT_COUNT] = len(kinds)
    words[HeaderInput.SCAN_TIME_MS] = 10
    words[HeaderInput.CONFIG_CRC32], words[HeaderInput.CONFIG_CRC32 + 1] = split_u32(config_crc32(kinds))
    for slot, kind in enumerate(kinds):
        base = slot_base(slot)
        words[base + SlotInput.KIND] = kind
        words[base + SlotInput.POSITION] = 1000
        words[base + SlotInput.STATUS] = Status.AT_CLOSED
    for name, value in slot0.items():
        words[slot_base(0) + SlotInput[name]] = value
    return words


def test_valid_block_decodes_every_header_field():
    kinds = [Kind.FOLDING_GATE, Kind.ROAD_BLOCKER, Kind.TRAFFIC_SIGNAL]
    words = block(kinds)
    words[HeaderInput.PLC_STATUS] = 0b10010
    snap = decode_block(words, 3, read_at=12.5)
    assert isinstance(snap, PlcSnapshot)
    assert snap.magic == 0x4250
    assert snap.version == 1
    assert snap.heartbeat == 42
    assert snap.plc_status == 0b10010
    assert snap.slot_count == 3
    assert snap.scan_time_ms == 10
    assert snap.config_crc32 == config_crc32(kinds)
    assert snap.read_at == 12.5
    assert [s.kind for s in snap.slots] == kinds
    assert all(isinstance(s.kind, Kind) for s in snap.slots)


def test_each_slot_is_read_from_its_own_base():
    kinds = [Kind.FOLDING_GATE] * 4
    words = block(kinds)
    for slot in range(4):
        base = slot_base(slot)
        words[base + SlotInput.STATUS] = 100 + slot
        words[base + SlotInput.POSITION] = 10 * slot
        words[base + SlotInput.ACK_SEQ] = 200 + slot
        words[base + SlotInput.ACK_RESULT] = slot
        words[base + SlotInput.FAULT_CODE] = slot + 1
        words[base + SlotInput.ANALOG_1] = 300 + slot
        words[base + SlotInput.LAST_TRAVEL_MS] = 400 + slot
        words[base + SlotInput.RESERVED] = 0xAAAA  # ignored
    snap = decode_block(words, 4, 0.0)
    for slot, s in enumerate(snap.slots):
        assert s == SlotSnapshot(
            kind=Kind.FOLDING_GATE,
            status=100 + slot,
            position=10 * slot,
            ack_seq=200 + slot,
            ack_result=slot,
            fault_code=slot + 1,
            analog_1=300 + slot,
            analog_2=0,
            last_travel_ms=400 + slot,
            cycle_count=0,
        )


@pytest.mark.parametrize("delta", [-1, 1, -SLOT_STRIDE, SLOT_STRIDE])
def test_block_of_wrong_length_is_rejected(delta):
    words = block([Kind.FOLDING_GATE, Kind.BOOM_BARRIER])
    words = words[:delta] if delta < 0 else words + [0] * delta
    with pytest.raises(BadReplyError, match=f"{len(words)} registers, expected 40"):
        decode_block(words, 2, 0.0)


def test_empty_block_is_rejected():
    with pytest.raises(BadReplyError):
        decode_block([], 1, 0.0)


@pytest.mark.parametrize("kind", [0, 5, 6, 0x00FF, 0xFFFF])
def test_unknown_kind_is_rejected(kind):
    with pytest.raises(BadReplyError, match=f"KIND {kind} is not a known kind"):
        decode_block(block([Kind.FOLDING_GATE], KIND=kind), 1, 0.0)


def test_unknown_kind_in_a_later_slot_names_that_slot():
    words = block([Kind.FOLDING_GATE, Kind.ROAD_BLOCKER])
    words[slot_base(1) + SlotInput.KIND] = 9
    with pytest.raises(BadReplyError, match="slot 1: KIND 9"):
        decode_block(words, 2, 0.0)


@pytest.mark.parametrize("position", [1001, 2000, 0x8000, 0xFFFE])
def test_position_above_1000_is_rejected(position):
    with pytest.raises(BadReplyError, match=f"POSITION {position} outside 0..1000"):
        decode_block(block([Kind.BOOM_BARRIER], POSITION=position), 1, 0.0)


@pytest.mark.parametrize("position", [0, 1, 500, 999, 1000])
def test_position_in_range_is_kept(position):
    assert decode_block(block([Kind.BOOM_BARRIER], POSITION=position), 1, 0.0).slots[0].position == position


def test_position_0xffff_means_no_encoder():
    assert decode_block(block([Kind.FOLDING_GATE], POSITION=0xFFFF), 1, 0.0).slots[0].position is None


@pytest.mark.parametrize(
    ("word", "value"),
    [(0, 0), (1, 1), (0x7FFF, 32767), (0x8000, -32768), (0xFFFF, -1), (0xFF38, -200)],
)
def test_analog_2_is_signed(word, value):
    snap = decode_block(block([Kind.ROAD_BLOCKER], ANALOG_2=word), 1, 0.0)
    assert snap.slots[0].analog_2 == value


def test_analog_1_is_unsigned():
    assert decode_block(block([Kind.ROAD_BLOCKER], ANALOG_1=0xFFFF), 1, 0.0).slots[0].analog_1 == 0xFFFF


@pytest.mark.parametrize(
    ("high", "low", "value"),
    [(0, 7, 7), (1, 0, 0x10000), (0x0001, 0x0002, 0x00010002), (0xFFFF, 0xFFFF, 0xFFFFFFFF), (0x1234, 0xABCD, 0x1234ABCD)],
)
def test_cycle_count_is_32_bit_high_word_first(high, low, value):
    words = block([Kind.FOLDING_GATE])
    words[slot_base(0) + SlotInput.CYCLE_COUNT] = high
    words[slot_base(0) + SlotInput.CYCLE_COUNT + 1] = low
    assert decode_block(words, 1, 0.0).slots[0].cycle_count == value


def test_config_crc32_is_32_bit_high_word_first():
    words = block([Kind.FOLDING_GATE])
    words[HeaderInput.CONFIG_CRC32] = 0xDEAD
    words[HeaderInput.CONFIG_CRC32 + 1] = 0xBEEF
    assert decode_block(words, 1, 0.0).config_crc32 == 0xDEADBEEF


def test_config_crc32_round_trips_the_spec_example():
    kinds = [1, 2, 4]
    words = block(kinds)
    assert decode_block(words, 3, 0.0).config_crc32 == config_crc32(kinds) == zlib.crc32(b"1,2,4")


@pytest.mark.parametrize("reported", [0, 17, 0xFFFF])
def test_slot_count_outside_1_to_16_is_rejected(reported):
    words = block([Kind.FOLDING_GATE])
    words[HeaderInput.SLOT_COUNT] = reported
    with pytest.raises(BadReplyError, match=f"SLOT_COUNT {reported} outside 1..16"):
        decode_block(words, 1, 0.0)


def test_slot_count_different_from_configured_is_decoded_for_the_identity_check():
    """decode_block decodes; whether the program matches is UnitSpec.identity_problem's job."""
    words = block([Kind.FOLDING_GATE])
    words[HeaderInput.SLOT_COUNT] = 2
    assert decode_block(words, 1, 0.0).slot_count == 2


def test_full_16_slot_block_decodes():
    kinds = [Kind(k % 4 + 1) for k in range(16)]
    snap = decode_block(block(kinds), 16, 0.0)
    assert len(snap.slots) == 16
    assert [s.kind for s in snap.slots] == kinds


@pytest.mark.parametrize("length", [0, 11, 13])
def test_decode_slot_of_wrong_length_is_rejected(length):
    with pytest.raises(BadReplyError, match=f"slot 3: {length} registers, expected 12"):
        decode_slot([1] * length, 3)
