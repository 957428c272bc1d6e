"""The bridge from pymodbus to a SimPlc: a SimDevice whose action serves reads from and applies writes to it.

Transport-independent: the TCP server uses one device per port; a serial (RTU) server can later put
the devices of every PLC on one bus into one list.
"""

from __future__ import annotations

import logging
from functools import partial

from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData, SimDevice

from sim_plc.errors import ModbusError
from sim_plc.plant import SimPlc
from sim_plc.writelog import WriteLog

log = logging.getLogger(__name__)

FC_READ_HOLDING = 3
FC_READ_INPUT = 4
FC_WRITE_SINGLE = 6
FC_WRITE_MULTIPLE = 16
FC_BITS = frozenset({1, 2, 5, 15})  # coils and discrete inputs: this profile has none
ADDRESS_SPACE = 0x10000


def build_device(plc: SimPlc, write_log: WriteLog) -> SimDevice:
    """A pymodbus device for `plc`. Its datastore spans every address, so the SimPlc alone decides
    which registers exist (0x02) and which values are legal (0x03), and every write reaches the log."""
    whole_table = [SimData(0, count=ADDRESS_SPACE, datatype=DataType.REGISTERS)]
    no_bits = [SimData(0, datatype=DataType.BITS)]
    return SimDevice(
        id=plc.unit,
        simdata=(no_bits, list(no_bits), whole_table, list(whole_table)),
        action=partial(serve_access, plc, write_log),
    )


async def serve_access(
    plc: SimPlc,
    write_log: WriteLog,
    function_code: int,
    start_address: int,
    address: int,
    count: int,
    current_registers: list[int],
    set_values: list[int] | list[bool] | None,
) -> ExcCodes | None:
    """pymodbus SimDevice action: runs on every access (twice for FC6: the write, then a read-back)."""
    if function_code in FC_BITS:
        return ExcCodes.ILLEGAL_ADDRESS
    if function_code not in (FC_READ_HOLDING, FC_READ_INPUT, FC_WRITE_SINGLE, FC_WRITE_MULTIPLE):
        return ExcCodes.ILLEGAL_FUNCTION
    if set_values is None:  # a read, or FC6's read-back of the value just written
        try:
            if function_code == FC_READ_INPUT:
                values = plc.read_input(address, count)
            else:
                values = plc.read_holding(address, count)
        except ModbusError as exc:
            return exc.code
        offset = address - start_address
        current_registers[offset : offset + count] = values
        return None
    values = [int(v) for v in set_values]
    if plc.comms_silent:  # the wire is dead: the write never reaches the PLC
        write_log.record(plc.name, plc.unit, function_code, address, values, "silenced")
        return ExcCodes.DEVICE_FAILURE
    try:
        plc.write_holding(address, values)
    except ModbusError as exc:
        write_log.record(plc.name, plc.unit, function_code, address, values, f"exception {int(exc.code)}")
        return exc.code
    write_log.record(plc.name, plc.unit, function_code, address, values, "ok")
    return None
