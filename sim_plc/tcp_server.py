"""One SimPlc on one Modbus TCP listening socket, served by a lean asyncio protocol with struct MBAP framing.

Every complete frame of a read is answered (a frame split across reads waits for its rest; several
frames in one read are all answered, in order) by sim_plc/pdu.py, synchronously: the write log is
flushed, then the answers leave in one write. A request for another unit id is answered 0x04, as a
PLC without that unit answers. comms_silence drops every outgoing frame. A connection whose bytes
cannot be Modbus TCP (a protocol id other than 0, an MBAP length outside 2..254) is closed with one
warning naming the PLC and the peer. A client that does not read its answers is not read either
until it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct

from sim_plc.pdu import DEVICE_FAILURE, refusal, serve_pdu
from sim_plc.plant import SimPlc
from sim_plc.writelog import WriteLog

log = logging.getLogger(__name__)

MBAP = struct.Struct(">HHHB")  # transaction id, protocol id (0), length (unit + PDU), unit
MBAP_LENGTHS = range(2, 255)  # the MBAP length field: the unit id and a PDU of 1..253 bytes
MIN_FRAME = MBAP.size + 1  # a header and a function code


def not_modbus_tcp(stream: bytes | bytearray) -> str | None:
    """Why the head of a TCP byte stream cannot be a Modbus TCP frame, or None if it can be."""
    if len(stream) >= 4 and (protocol_id := int.from_bytes(stream[2:4], "big")) != 0:
        return f"protocol id {protocol_id}"
    if len(stream) >= 6 and (length := int.from_bytes(stream[4:6], "big")) not in MBAP_LENGTHS:
        return f"MBAP length {length}"
    return None


class PlcConnection(asyncio.Protocol):
    """One client's connection to one PLC."""

    def __init__(self, plc: SimPlc, write_log: WriteLog, connections: set[PlcConnection]) -> None:
        self.plc = plc
        self.write_log = write_log
        self.connections = connections
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.connections.add(self)
        log.debug("PLC %s: client %s connected", self.plc.name, transport.get_extra_info("peername"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.connections.discard(self)
        log.debug("PLC %s: client disconnected%s", self.plc.name, f": {exc}" if exc else "")

    def pause_writing(self) -> None:  # the client does not read its answers: stop reading its requests
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if not self.buffer and len(data) >= MIN_FRAME:  # the usual case: one whole request, nothing left over
            tid, protocol, length, unit = MBAP.unpack_from(data)
            if protocol == 0 and len(data) == 6 + length and length in MBAP_LENGTHS:
                self._send([self._answer(tid, unit, data[MBAP.size:])])
                return
        buffer = self.buffer
        buffer += data
        answers = []
        while (fault := not_modbus_tcp(buffer)) is None and len(buffer) >= MIN_FRAME:
            tid, _, length, unit = MBAP.unpack_from(buffer)
            end = 6 + length
            if len(buffer) < end:
                break
            answers.append(self._answer(tid, unit, bytes(buffer[MBAP.size:end])))
            del buffer[:end]
        self._send(answers)
        if fault is not None:
            self._refuse(fault)

    def _answer(self, tid: int, unit: int, pdu: bytes) -> bytes:
        plc = self.plc
        reply = serve_pdu(plc, self.write_log, pdu) if unit == plc.unit else refusal(pdu[0], DEVICE_FAILURE)
        return MBAP.pack(tid, 0, 1 + len(reply), unit) + reply

    def _send(self, answers: list[bytes]) -> None:
        self.write_log.flush()  # before the answers: a client that has its answer finds its write in the file
        if answers and self.transport is not None and not self.plc.comms_silent:
            self.transport.write(answers[0] if len(answers) == 1 else b"".join(answers))

    def _refuse(self, fault: str) -> None:
        self.buffer.clear()
        if self.transport is None:
            return
        peer = self.transport.get_extra_info("peername")
        log.warning("PLC %s: closed the connection from %s: not Modbus TCP (%s)", self.plc.name, peer, fault)
        self.transport.close()  # answers already written still leave first
        self.transport = None


class TcpEndpoint:
    """One SimPlc served on host:port (0 = an ephemeral port, known after start())."""

    def __init__(self, plc: SimPlc, host: str, port: int, write_log: WriteLog) -> None:
        self.plc = plc
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self._write_log = write_log
        self._server: asyncio.Server | None = None
        self._connections: set[PlcConnection] = set()

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: PlcConnection(self.plc, self._write_log, self._connections), self.host, self.requested_port
            )
        except OSError as exc:
            raise OSError(f"PLC {self.plc.name}: cannot listen on {self.host}:{self.requested_port}: {exc}") from exc
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("PLC %s listening on %s:%d (unit %d)", self.plc.name, self.host, self.port, self.plc.unit)
        return self.port

    async def stop(self) -> None:
        """Stop listening and close every client connection."""
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            if connection.transport is not None:
                connection.transport.abort()
        self._connections.clear()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
