"""The HAL's small async transport interface (Modbus TCP: hal/tcp.py; RTU over pymodbus: hal/rtu.py)."""

from __future__ import annotations

from typing import Protocol

FC_READ_HOLDING = 3
FC_READ_INPUT = 4
FC_WRITE_SINGLE = 6
FC_WRITE_MULTIPLE = 16


class Transport(Protocol):
    """One Modbus connection (a TCP endpoint or an RS-485 line); one request at a time."""

    name: str

    @property
    def connected(self) -> bool: ...

    async def connect(self) -> None: ...

    def close(self) -> None: ...

    async def read_input(self, unit: int, address: int, count: int) -> list[int]: ...

    async def read_input_block(self, unit: int, address: int, count: int) -> bytes:
        """read_input's registers as Modbus carries them, 2 bytes each, big-endian (the poll compares them whole)."""
        ...

    async def read_holding(self, unit: int, address: int, count: int) -> list[int]: ...

    async def write_register(self, unit: int, address: int, value: int) -> None: ...

    async def write_registers(self, unit: int, address: int, values: list[int]) -> None: ...
