"""Requests over a pymodbus async client, every reply checked by hal/validate.py (RTU's transport builds on it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pymodbus.exceptions import ModbusException
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse, ReadInputRegistersResponse

from hal.errors import CommsError, NotConnectedError
from hal.transport import FC_READ_HOLDING, FC_READ_INPUT, FC_WRITE_MULTIPLE, FC_WRITE_SINGLE
from hal.validate import check_read_reply, check_write_reply, u16_block


class _ReadHoldingReply(ReadHoldingRegistersResponse):
    """FC3 reply that keeps its byte count: pymodbus drops it, and with it an odd trailing byte."""

    def decode(self, data: bytes) -> None:
        super().decode(data)
        self.byte_count = int(data[0])


class _ReadInputReply(ReadInputRegistersResponse):
    """FC4 reply that keeps its byte count (see _ReadHoldingReply)."""

    def decode(self, data: bytes) -> None:
        super().decode(data)
        self.byte_count = int(data[0])


class PymodbusTransport:
    """Shared request/validation logic over any pymodbus async client; subclasses build the client."""

    name: str

    def __init__(self, name: str, client):
        self.name = name
        self._client = client
        client.register(_ReadHoldingReply)
        client.register(_ReadInputReply)

    @property
    def connected(self) -> bool:
        return bool(self._client.connected)

    async def connect(self) -> None:
        self.close()
        try:
            ok = await self._client.connect()
        except (OSError, ModbusException) as exc:
            raise CommsError(f"{self.name}: connect failed: {exc}") from exc
        if not ok:
            raise CommsError(f"{self.name}: connect failed")

    def close(self) -> None:
        self._client.close()

    async def _call(self, what: str, request: Callable[[], Awaitable[Any]]):
        if not self.connected:
            raise NotConnectedError(f"{self.name}: not connected")
        try:
            # pymodbus raises ConnectionException when the request is *made* on a dropped link,
            # so the request is made here, inside the try, not by the caller.
            return await request()
        except ModbusException as exc:
            raise CommsError(f"{self.name}: {what}: {exc}") from exc
        except OSError as exc:
            raise CommsError(f"{self.name}: {what}: {exc}") from exc

    async def read_input(self, unit: int, address: int, count: int) -> list[int]:
        what = f"read IR {address}+{count} unit {unit}"
        reply = await self._call(
            what, lambda: self._client.read_input_registers(address, count=count, device_id=unit)
        )
        return check_read_reply(reply, function_code=FC_READ_INPUT, count=count, unit=unit, what=what)

    async def read_input_block(self, unit: int, address: int, count: int) -> bytes:
        return u16_block(count).pack(*await self.read_input(unit, address, count))

    async def read_holding(self, unit: int, address: int, count: int) -> list[int]:
        what = f"read HR {address}+{count} unit {unit}"
        reply = await self._call(
            what, lambda: self._client.read_holding_registers(address, count=count, device_id=unit)
        )
        return check_read_reply(reply, function_code=FC_READ_HOLDING, count=count, unit=unit, what=what)

    async def write_register(self, unit: int, address: int, value: int) -> None:
        what = f"write HR {address}={value} unit {unit}"
        reply = await self._call(what, lambda: self._client.write_register(address, value, device_id=unit))
        check_write_reply(reply, function_code=FC_WRITE_SINGLE, address=address, count=1, unit=unit, what=what)

    async def write_registers(self, unit: int, address: int, values: list[int]) -> None:
        what = f"write HR {address}={values} unit {unit}"
        reply = await self._call(what, lambda: self._client.write_registers(address, values, device_id=unit))
        check_write_reply(
            reply, function_code=FC_WRITE_MULTIPLE, address=address, count=len(values), unit=unit, what=what
        )
