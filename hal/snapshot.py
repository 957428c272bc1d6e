"""Decode the PLC's input-register block into a typed snapshot, rejecting values outside the profile."""

from __future__ import annotations

import struct
from typing import NamedTuple

from hal.errors import BadReplyError
from hal.profile import (
    MAX_SLOTS,
    POSITION_CLOSED,
    POSITION_NO_ENCODER,
    SLOT_STRIDE,
    HeaderInput,
    Kind,
    SlotInput,
    input_block_size,
    join_u32,
    slot_base,
    to_signed16,
)


class SlotSnapshot(NamedTuple):
    """One device slot as the PLC reported it in one poll (a NamedTuple: built for every slot of every poll)."""

    kind: Kind
    status: int
    position: int | None  # None: no encoder
    ack_seq: int
    ack_result: int
    fault_code: int
    analog_1: int
    analog_2: int  # signed
    last_travel_ms: int
    cycle_count: int


class PlcSnapshot(NamedTuple):
    """The header and every slot of one PLC from one coherent poll (a NamedTuple: built on every poll)."""

    magic: int
    version: int
    heartbeat: int
    plc_status: int
    slot_count: int
    scan_time_ms: int
    config_crc32: int
    slots: tuple[SlotSnapshot, ...]
    read_at: float  # event-loop time of the reply


# Register offsets as plain ints and the KIND codes as a dict: this runs for every slot of every poll,
# where IntEnum indexing and Enum lookup cost several times a plain one.
_KIND, _STATUS, _POSITION = int(SlotInput.KIND), int(SlotInput.STATUS), int(SlotInput.POSITION)
_ACK_SEQ, _ACK_RESULT, _FAULT_CODE = int(SlotInput.ACK_SEQ), int(SlotInput.ACK_RESULT), int(SlotInput.FAULT_CODE)
_ANALOG_1, _ANALOG_2 = int(SlotInput.ANALOG_1), int(SlotInput.ANALOG_2)
_LAST_TRAVEL_MS, _CYCLE_COUNT = int(SlotInput.LAST_TRAVEL_MS), int(SlotInput.CYCLE_COUNT)
_KINDS = {int(kind): kind for kind in Kind}


def decode_slot(words: list[int], slot: int) -> SlotSnapshot:
    """Decode the 12 registers of one slot; BadReplyError on a value the profile does not allow."""
    if len(words) != SLOT_STRIDE:
        raise BadReplyError(f"slot {slot}: {len(words)} registers, expected {SLOT_STRIDE}")
    kind = _KINDS.get(words[_KIND])
    if kind is None:
        raise BadReplyError(f"slot {slot}: KIND {words[_KIND]} is not a known kind")
    position = words[_POSITION]
    if position != POSITION_NO_ENCODER and position > POSITION_CLOSED:
        raise BadReplyError(f"slot {slot}: POSITION {position} outside 0..{POSITION_CLOSED}")
    return SlotSnapshot(
        kind,
        words[_STATUS],
        None if position == POSITION_NO_ENCODER else position,
        words[_ACK_SEQ],
        words[_ACK_RESULT],
        words[_FAULT_CODE],
        words[_ANALOG_1],
        to_signed16(words[_ANALOG_2]),
        words[_LAST_TRAVEL_MS],
        join_u32(words[_CYCLE_COUNT], words[_CYCLE_COUNT + 1]),
    )


def block_words(block: bytes) -> list[int]:
    """The registers of a block read as Modbus carries them (2 bytes each, big-endian)."""
    return list(struct.unpack(f">{len(block) // 2}H", block))


def decode_block(words: list[int], slot_count: int, read_at: float) -> PlcSnapshot:
    """Decode IR 0 .. 16 + 12·slot_count − 1 read for a PLC configured with `slot_count` slots."""
    if len(words) != input_block_size(slot_count):
        raise BadReplyError(f"input block has {len(words)} registers, expected {input_block_size(slot_count)}")
    reported = words[HeaderInput.SLOT_COUNT]
    if not 1 <= reported <= MAX_SLOTS:
        raise BadReplyError(f"SLOT_COUNT {reported} outside 1..{MAX_SLOTS}")
    slots = tuple(
        decode_slot(words[slot_base(s) : slot_base(s) + SLOT_STRIDE], s) for s in range(slot_count)
    )
    return PlcSnapshot(
        magic=words[HeaderInput.PROFILE_MAGIC],
        version=words[HeaderInput.PROFILE_VERSION],
        heartbeat=words[HeaderInput.PLC_HEARTBEAT],
        plc_status=words[HeaderInput.PLC_STATUS],
        slot_count=reported,
        scan_time_ms=words[HeaderInput.SCAN_TIME_MS],
        config_crc32=join_u32(words[HeaderInput.CONFIG_CRC32], words[HeaderInput.CONFIG_CRC32 + 1]),
        slots=slots,
        read_at=read_at,
    )
