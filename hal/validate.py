"""Check every Modbus reply ourselves: pymodbus accepts wrong function codes and counts without an error.

Each check function first tries the reply against every check at once (plain attribute reads, no text built:
this runs for every poll); only a reply that fails one, or lacks an attribute, is checked again step by step
for the error that names what is wrong.
"""

from __future__ import annotations

import struct
from typing import Any

from hal.errors import BadReplyError, ExceptionReplyError


def _check_common(reply: Any, function_code: int, unit: int, what: str) -> None:
    if reply is None:
        raise BadReplyError(f"{what}: no reply object")
    if reply.isError():
        code = getattr(reply, "exception_code", 0) or 0
        raise ExceptionReplyError(function_code, int(code), what)
    got_fc = getattr(reply, "function_code", None)
    if got_fc != function_code:
        raise BadReplyError(f"{what}: reply has function code {got_fc}, expected {function_code}")
    got_unit = getattr(reply, "dev_id", unit)
    if got_unit != unit:
        raise BadReplyError(f"{what}: reply from unit {got_unit}, expected {unit}")


def read_registers(reply: Any, function_code: int, count: int, unit: int) -> list[int] | None:
    """The registers of a FC3/FC4 reply that passes every check of check_read_reply, else None."""
    try:
        if reply.function_code != function_code or reply.isError() or reply.dev_id != unit:
            return None
        registers, byte_count = reply.registers, reply.byte_count
    except AttributeError:  # (None, or a reply object without one of them: checked step by step)
        return None
    if registers.__class__ is not list or len(registers) != count or (byte_count is not None and byte_count != 2 * count):
        return None
    try:
        u16_block(count).pack(*registers)  # every value 0..0xFFFF: one C call, a third of min() and max()'s cost
    except struct.error:
        return None
    return registers[:]  # a list of its own, never the reply object's


_U16: dict[int, struct.Struct] = {}


def u16_block(count: int) -> struct.Struct:
    """The packing of `count` unsigned 16-bit big-endian values, as Modbus carries registers (made once per count)."""
    if (packing := _U16.get(count)) is None:
        packing = _U16[count] = struct.Struct(f">{count}H")
    return packing


def check_read_reply(reply: Any, *, function_code: int, count: int, unit: int, what: str) -> list[int]:
    """The registers of a valid FC3/FC4 reply, or BadReplyError / ExceptionReplyError."""
    if (registers := read_registers(reply, function_code, count, unit)) is not None:
        return registers
    _check_common(reply, function_code, unit, what)
    registers = list(getattr(reply, "registers", None) or [])
    if len(registers) != count:
        raise BadReplyError(f"{what}: reply has {len(registers)} registers, expected {count}")
    byte_count = getattr(reply, "byte_count", None)
    if byte_count is not None and byte_count != 2 * count:
        raise BadReplyError(f"{what}: reply has byte count {byte_count}, expected {2 * count}")
    if registers and (min(registers) < 0 or max(registers) > 0xFFFF):
        raise BadReplyError(f"{what}: reply holds a value outside 16 bits")
    return registers


def write_echoed(reply: Any, function_code: int, address: int, count: int, unit: int) -> bool:
    """True when a FC6/FC16 reply passes every check of check_write_reply."""
    try:
        return (reply.function_code == function_code and not reply.isError() and reply.dev_id == unit
                and reply.address == address and (function_code != 16 or reply.count == count))
    except AttributeError:
        return False


def check_write_reply(reply: Any, *, function_code: int, address: int, count: int, unit: int, what: str) -> None:
    """Raise unless `reply` echoes a FC6/FC16 write of `count` registers at `address`."""
    if write_echoed(reply, function_code, address, count, unit):
        return
    _check_common(reply, function_code, unit, what)
    if getattr(reply, "address", None) != address:
        raise BadReplyError(f"{what}: reply echoes address {getattr(reply, 'address', None)}, expected {address}")
    if function_code == 16 and getattr(reply, "count", None) != count:
        raise BadReplyError(f"{what}: reply echoes count {getattr(reply, 'count', None)}, expected {count}")
