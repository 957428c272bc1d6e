"""A simulated PLC's register image decoded into JSON-ready data, for the `state` command and tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hal.profile import (
    SLOT_STRIDE,
    AckResult,
    FaultCode,
    HeaderInput,
    Kind,
    PlcStatus,
    SignalStatus,
    SlotInput,
    Status,
    join_u32,
    slot_base,
    to_signed16,
)

if TYPE_CHECKING:
    from sim_plc.plant import SimPlc


def bit_names(value: int, flags: type[Status] | type[SignalStatus] | type[PlcStatus]) -> list[str]:
    return [str(flag.name) for flag in flags if value & flag]


def _name(enum: type[AckResult] | type[FaultCode], value: int) -> str:
    try:
        return str(enum(value).name)
    except ValueError:
        return str(value)


def decode_slot(block: list[int], slot: int) -> dict[str, Any]:
    """One slot's 12 input registers (B..B+11) as named values."""
    kind = Kind(block[SlotInput.KIND])
    flags = SignalStatus if kind == Kind.TRAFFIC_SIGNAL else Status
    analog_2 = block[SlotInput.ANALOG_2]
    return {
        "slot": slot,
        "kind": kind.name.lower(),
        "status": block[SlotInput.STATUS],
        "status_bits": bit_names(block[SlotInput.STATUS], flags),
        "position": block[SlotInput.POSITION],
        "ack_seq": block[SlotInput.ACK_SEQ],
        "ack_result": block[SlotInput.ACK_RESULT],
        "ack_result_name": _name(AckResult, block[SlotInput.ACK_RESULT]),
        "fault_code": block[SlotInput.FAULT_CODE],
        "fault_code_name": _name(FaultCode, block[SlotInput.FAULT_CODE]),
        "analog_1": block[SlotInput.ANALOG_1],
        "analog_2": to_signed16(analog_2) if kind == Kind.ROAD_BLOCKER else analog_2,
        "last_travel_ms": block[SlotInput.LAST_TRAVEL_MS],
        "cycle_count": join_u32(block[SlotInput.CYCLE_COUNT], block[SlotInput.CYCLE_COUNT + 1]),
    }


def snapshot(plc: SimPlc) -> dict[str, Any]:
    """Header, slots, holding registers and active faults of one PLC, as Modbus would see them."""
    image = plc.read_input(0, plc.input_size)
    slots = []
    for index, slot in enumerate(plc.slots):
        base = slot_base(index)
        entry = decode_slot(image[base : base + SLOT_STRIDE], index)
        entry["command"], entry["command_seq"] = plc.read_holding(base, 2)
        slots.append(entry)
    return {
        "plc": plc.name,
        "unit": plc.unit,
        "heartbeat": image[HeaderInput.PLC_HEARTBEAT],
        "plc_status": image[HeaderInput.PLC_STATUS],
        "plc_status_bits": bit_names(image[HeaderInput.PLC_STATUS], PlcStatus),
        "slot_count": image[HeaderInput.SLOT_COUNT],
        "scan_time_ms": image[HeaderInput.SCAN_TIME_MS],
        "config_crc32": join_u32(image[HeaderInput.CONFIG_CRC32], image[HeaderInput.CONFIG_CRC32 + 1]),
        "supervisor_heartbeat": plc.supervisor_heartbeat,
        "watchdog_timeout_ms": plc.watchdog_timeout_ms,
        "frozen_logic": plc.frozen,
        "comms_silence": plc.comms_silent,
        "faults": plc.active_faults(),
        "slots": slots,
        "input_registers": image,
    }
