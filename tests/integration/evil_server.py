"""An "evil" Modbus TCP server for tests: a correct 1-slot barrier PLC that can be told to misbehave.

Written with raw asyncio streams so that every byte on the wire is under the test's control
(pymodbus' own server would refuse to send most of these replies). It listens on 127.0.0.1,
port 0 (the OS picks one); `EvilServer.port` tells which.

While `mode` is `Mode.CLEAN` it answers FC3, FC4, FC6 and FC16 like a PLC programmed to
profile v1 with one folding gate in slot 0, standing closed (AT_CLOSED, POSITION 1000).
PLC_HEARTBEAT goes up by one on every FC4 read. A FC16 write of COMMAND + COMMAND_SEQ is
acknowledged at once with ACK_RESULT 0 (accepted).

Every misbehaving reply that carries register data carries *poisoned* data: the same image
but with the gate standing open (AT_OPEN, POSITION 0). A client that accepted a bad reply
would therefore show the gate open; tests assert that it never does.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import struct
from dataclasses import dataclass

from hal.profile import (
    PROFILE_MAGIC,
    PROFILE_VERSION,
    HeaderHolding,
    HeaderInput,
    Kind,
    SlotHolding,
    SlotInput,
    Status,
    config_crc32,
    holding_addresses,
    input_block_size,
    slot_base,
    split_u32,
)

FC_READ_HOLDING = 3
FC_READ_INPUT = 4
FC_WRITE_SINGLE = 6
FC_WRITE_MULTIPLE = 16
READ_FCS = frozenset({FC_READ_HOLDING, FC_READ_INPUT})
WRONG_FC = {FC_READ_INPUT: FC_READ_HOLDING, FC_READ_HOLDING: FC_READ_INPUT, FC_WRITE_SINGLE: FC_WRITE_MULTIPLE,
            FC_WRITE_MULTIPLE: FC_WRITE_SINGLE}

GARBAGE = bytes.fromhex("deadbeef0badf00d5a5a5a5affff0000")  # protocol id 0xBEEF: no MBAP frame at all


class Mode(enum.Enum):
    """How the server answers the next request."""

    CLEAN = "clean"
    FEWER_REGISTERS = "fewer_registers"  # FC3/FC4: one register fewer than asked (byte count consistent)
    MORE_REGISTERS = "more_registers"  # FC3/FC4: one register more than asked (byte count consistent)
    ODD_BYTE_COUNT_SHORT = "odd_byte_count_short"  # FC3/FC4: byte count 2n-1 and 2n-1 data bytes
    ODD_BYTE_COUNT_LONG = "odd_byte_count_long"  # FC3/FC4: byte count 2n+1 and 2n+1 data bytes
    BYTE_COUNT_OVERRUN = "byte_count_overrun"  # FC3/FC4: byte count 2n but only 2n-2 data bytes follow
    WRONG_FUNCTION = "wrong_function"  # FC3 answered to FC4 (and 4 to 3, 16 to 6, 6 to 16), same body
    EXCEPTION_02 = "exception_02"  # exception response, illegal data address
    EXCEPTION_04 = "exception_04"  # exception response, server device failure
    GARBAGE = "garbage"  # bytes that are no Modbus TCP frame at all
    UNKNOWN_FUNCTION = "unknown_function"  # a well-framed reply with function code 0x63
    WRONG_UNIT = "wrong_unit"  # a correct-looking reply from unit id + 1
    WRONG_TRANSACTION = "wrong_transaction"  # a correct-looking reply with another transaction id
    LATE = "late"  # a correct-looking reply, `late_s` after the request
    SILENT = "silent"  # no reply at all
    CLOSE = "close"  # close the connection instead of answering


# Modes that only distort register payloads; writes are answered correctly in them.
PAYLOAD_MODES = frozenset(
    {Mode.FEWER_REGISTERS, Mode.MORE_REGISTERS, Mode.ODD_BYTE_COUNT_SHORT, Mode.ODD_BYTE_COUNT_LONG,
     Mode.BYTE_COUNT_OVERRUN}
)
MISBEHAVIOURS = tuple(m for m in Mode if m is not Mode.CLEAN)


@dataclass(frozen=True)
class Request:
    """One request the server received, as logged."""

    transaction_id: int
    unit: int
    function_code: int
    address: int
    count_or_value: int
    mode: Mode


def gate_image(status: int, position: int) -> list[int]:
    """The 28 input registers of a 1-slot PLC with a folding gate in slot 0."""
    words = [0] * input_block_size(1)
    words[HeaderInput.PROFILE_MAGIC] = PROFILE_MAGIC
    words[HeaderInput.PROFILE_VERSION] = PROFILE_VERSION
    words[HeaderInput.SLOT_COUNT] = 1
    words[HeaderInput.SCAN_TIME_MS] = 10
    high, low = split_u32(config_crc32([Kind.FOLDING_GATE]))
    words[HeaderInput.CONFIG_CRC32] = high
    words[HeaderInput.CONFIG_CRC32 + 1] = low
    base = slot_base(0)
    words[base + SlotInput.KIND] = Kind.FOLDING_GATE
    words[base + SlotInput.STATUS] = status
    words[base + SlotInput.POSITION] = position
    words[base + SlotInput.ANALOG_1] = 12
    words[base + SlotInput.LAST_TRAVEL_MS] = 3000
    words[base + SlotInput.CYCLE_COUNT + 1] = 7
    return words


CLOSED_STATUS = int(Status.AT_CLOSED | Status.LOCKED)
OPEN_STATUS = int(Status.AT_OPEN)  # the poisoned image


class EvilServer:
    """A 1-slot barrier PLC over Modbus TCP that misbehaves on demand (set `mode`)."""

    def __init__(self, unit: int = 1, late_s: float = 0.5):
        self.unit = unit
        self.late_s = late_s
        self.mode = Mode.CLEAN
        self.input = gate_image(CLOSED_STATUS, 1000)
        self.holding = {a: 0 for a in holding_addresses(1)}
        self.holding[HeaderHolding.WATCHDOG_TIMEOUT_MS] = 3000
        self.requests: list[Request] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> EvilServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def __aenter__(self) -> EvilServer:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # ----- wire --------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            while True:
                header = await reader.readexactly(7)
                tid, protocol, length, unit = struct.unpack(">HHHB", header)
                pdu = await reader.readexactly(length - 1)
                if protocol != 0 or not pdu:
                    return
                mode = self.mode
                fc = pdu[0]
                address, arg = struct.unpack(">HH", pdu[1:5]) if len(pdu) >= 5 else (0, 0)
                self.requests.append(Request(tid, unit, fc, address, arg, mode))
                if mode is Mode.SILENT:
                    continue
                if mode is Mode.CLOSE:
                    return
                if mode is Mode.GARBAGE:
                    writer.write(GARBAGE)
                    await writer.drain()
                    continue
                reply = self._reply(mode, unit, pdu)
                out_tid, out_unit = tid, unit
                if mode is Mode.WRONG_UNIT:
                    out_unit = (unit + 1) & 0xFF
                elif mode is Mode.WRONG_TRANSACTION:
                    out_tid = tid ^ 0x8000
                frame = struct.pack(">HHHB", out_tid, 0, len(reply) + 1, out_unit) + reply
                if mode is Mode.LATE:
                    await asyncio.sleep(self.late_s)
                writer.write(frame)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            self._tasks.discard(task)

    # ----- PDUs --------------------------------------------------------------------------------

    def _reply(self, mode: Mode, unit: int, pdu: bytes) -> bytes:
        fc = pdu[0]
        if mode is Mode.EXCEPTION_02:
            return bytes([fc | 0x80, 0x02])
        if mode is Mode.EXCEPTION_04:
            return bytes([fc | 0x80, 0x04])
        if mode is Mode.UNKNOWN_FUNCTION:
            return bytes([0x63, 0x00, 0x00, 0x00, 0x00])
        clean = mode is Mode.CLEAN or (mode in PAYLOAD_MODES and fc not in READ_FCS)
        if unit != self.unit and clean:
            return bytes([fc | 0x80, 0x0B])  # gateway target failed to respond
        if fc in READ_FCS:
            body = self._read(mode, fc, pdu)
        elif fc == FC_WRITE_SINGLE:
            body = self._write_single(pdu)
        elif fc == FC_WRITE_MULTIPLE:
            body = self._write_multiple(pdu)
        else:
            return bytes([fc | 0x80, 0x01])
        if isinstance(body, int):
            return bytes([fc | 0x80, body])
        out_fc = WRONG_FC.get(fc, fc) if mode is Mode.WRONG_FUNCTION else fc
        return bytes([out_fc]) + body

    def _read(self, mode: Mode, fc: int, pdu: bytes) -> bytes | int:
        address, count = struct.unpack(">HH", pdu[1:5])
        if mode is Mode.CLEAN:
            if fc == FC_READ_INPUT:
                self.input[HeaderInput.PLC_HEARTBEAT] = (self.input[HeaderInput.PLC_HEARTBEAT] + 1) & 0xFFFF
                image = self.input
            else:
                image = [self.holding.get(a, 0) for a in range(max(self.holding) + 1)]
        else:
            image = gate_image(OPEN_STATUS, 0) if fc == FC_READ_INPUT else [0, 3000]
            image[HeaderInput.PLC_HEARTBEAT if fc == FC_READ_INPUT else 0] = len(self.requests) & 0xFFFF
        if mode is Mode.CLEAN and not (1 <= count <= 125 and address + count <= len(image)):
            return 0x02
        words = (image + [0] * 200)[address : address + count]
        if mode is Mode.FEWER_REGISTERS:
            words = words[:-1]
        elif mode is Mode.MORE_REGISTERS:
            words = words + [0]
        data = b"".join(struct.pack(">H", w) for w in words)
        if mode is Mode.ODD_BYTE_COUNT_SHORT:
            data = data[:-1]
        elif mode is Mode.ODD_BYTE_COUNT_LONG:
            data = data + b"\x00"
        elif mode is Mode.BYTE_COUNT_OVERRUN:
            return bytes([len(data)]) + data[:-2]
        return bytes([len(data)]) + data

    def _write_single(self, pdu: bytes) -> bytes | int:
        address, value = struct.unpack(">HH", pdu[1:5])
        if address not in self.holding:
            return 0x02
        self.holding[address] = value
        return pdu[1:5]

    def _write_multiple(self, pdu: bytes) -> bytes | int:
        address, count, byte_count = struct.unpack(">HHB", pdu[1:6])
        values = [struct.unpack(">H", pdu[6 + 2 * i : 8 + 2 * i])[0] for i in range(count)]
        if byte_count != 2 * count or any(a not in self.holding for a in range(address, address + count)):
            return 0x02
        for offset, value in enumerate(values):
            self.holding[address + offset] = value
        base = slot_base(0)
        if address == base + SlotHolding.COMMAND and count == 2:
            self.input[base + SlotInput.ACK_SEQ] = values[SlotHolding.COMMAND_SEQ]
            self.input[base + SlotInput.ACK_RESULT] = 0
        return pdu[1:5]
