"""Errors the simulated PLC raises: Modbus exception replies and bad fault-injection requests."""

from __future__ import annotations

from pymodbus.constants import ExcCodes


class ModbusError(Exception):
    """A request the PLC answers with a Modbus exception code (0x02 address, 0x03 value)."""

    def __init__(self, code: ExcCodes, message: str) -> None:
        super().__init__(f"exception {int(code)}: {message}")
        self.code = code


class FaultError(ValueError):
    """A fault injection that names an unknown fault, PLC or slot, or a fault the slot cannot have."""
