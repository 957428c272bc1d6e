"""The profile's answer to one Modbus request PDU: FC3, FC4, FC6 and FC16 served by a SimPlc, everything else refused.

Transport-independent: the TCP server (sim_plc/tcp_server.py) and the RTU line (sim_plc/serial_server.py)
hand every request PDU of a served unit here and send what comes back. What is refused and how:
  - FC 1, 2, 5, 15 (coils, discrete inputs): 0x02, the profile has none;
  - any other function code (0x80 and up included): 0x01;
  - a served request whose body does not decode (too short, a count of 0 or above the Modbus maximum,
    an FC16 byte count that is not twice its count or not the bytes that follow): 0x03;
  - registers past the 16-bit address space: 0x02;
  - then the SimPlc decides: 0x02 for a register the profile does not list, 0x03 for a bad value.
Every write that reaches the PLC is recorded in the write log with its result, and one sent while
comms_silence is on is recorded as "silenced" and not applied (its answer is never sent anyway).
"""

from __future__ import annotations

import struct

from hal.profile import MAX_READ_REGISTERS
from sim_plc.errors import ModbusError
from sim_plc.plant import SimPlc
from sim_plc.writelog import WriteLog

FC_READ_HOLDING = 3
FC_READ_INPUT = 4
FC_WRITE_SINGLE = 6
FC_WRITE_MULTIPLE = 16
FC_BITS = frozenset({1, 2, 5, 15})  # coils and discrete inputs: this profile has none
ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE, DEVICE_FAILURE = 1, 2, 3, 4
MAX_WRITE_REGISTERS = 123  # Modbus limit for one FC16 request
ADDRESS_SPACE = 0x10000

ADDRESS_COUNT = struct.Struct(">HH")  # FC3/FC4 address and count, FC6 address and value
WRITE_HEAD = struct.Struct(">HHB")  # FC16 address, count and byte count
ECHO = struct.Struct(">BHH")  # a write's answer: function code, address, count or value


def refusal(function_code: int, code: int) -> bytes:
    """An exception reply: the request's function code with the high bit set, and the exception code."""
    return bytes(((function_code & 0x7F) | 0x80, code))


def serve_pdu(plc: SimPlc, write_log: WriteLog, pdu: bytes) -> bytes:
    """The reply PDU to request `pdu` (function code and body, at least one byte) addressed to `plc`."""
    fc = pdu[0]
    if fc == FC_READ_INPUT or fc == FC_READ_HOLDING:
        if len(pdu) < 5:
            return refusal(fc, ILLEGAL_VALUE)
        address, count = ADDRESS_COUNT.unpack_from(pdu, 1)
        if not 1 <= count <= MAX_READ_REGISTERS:
            return refusal(fc, ILLEGAL_VALUE)
        if address + count > ADDRESS_SPACE:
            return refusal(fc, ILLEGAL_ADDRESS)
        try:
            values = plc.read_input(address, count) if fc == FC_READ_INPUT else plc.read_holding(address, count)
        except ModbusError as exc:
            return refusal(fc, int(exc.code))
        return struct.pack(f">BB{count}H", fc, 2 * count, *values)
    if fc == FC_WRITE_SINGLE:
        if len(pdu) < 5:
            return refusal(fc, ILLEGAL_VALUE)
        address, value = ADDRESS_COUNT.unpack_from(pdu, 1)
        if code := _write(plc, write_log, fc, address, [value]):
            return refusal(fc, code)
        # the answer echoes the register as read back: a PLC ignoring the write (watchdog_ignored) shows it
        return ECHO.pack(fc, address, plc.read_holding(address, 1)[0])
    if fc == FC_WRITE_MULTIPLE:
        if len(pdu) < 6:
            return refusal(fc, ILLEGAL_VALUE)
        address, count, byte_count = WRITE_HEAD.unpack_from(pdu, 1)
        if not 1 <= count <= MAX_WRITE_REGISTERS or byte_count != 2 * count or len(pdu) - 6 != byte_count:
            return refusal(fc, ILLEGAL_VALUE)
        if address + count > ADDRESS_SPACE:
            return refusal(fc, ILLEGAL_ADDRESS)
        if code := _write(plc, write_log, fc, address, list(struct.unpack_from(f">{count}H", pdu, 6))):
            return refusal(fc, code)
        return ECHO.pack(fc, address, count)
    return refusal(fc, ILLEGAL_ADDRESS if fc in FC_BITS else ILLEGAL_FUNCTION)


def _write(plc: SimPlc, write_log: WriteLog, fc: int, address: int, values: list[int]) -> int:
    """Apply one client write and record it; the exception code it is refused with, or 0."""
    if plc.comms_silent:  # the wire is dead: the write never reaches the PLC
        write_log.record(plc.name, plc.unit, fc, address, values, "silenced")
        return DEVICE_FAILURE
    try:
        plc.write_holding(address, values)
    except ModbusError as exc:
        code = int(exc.code)
        write_log.record(plc.name, plc.unit, fc, address, values, f"exception {code}")
        return code
    write_log.record(plc.name, plc.unit, fc, address, values, "ok")
    return 0
