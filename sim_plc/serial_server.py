"""The simulated PLCs of one RS-485 bus as Modbus RTU slaves on one serial port (pymodbus ModbusSerialServer).

Like real slaves on a line: each PLC answers only its own unit id (a request for any other unit is
dropped before pymodbus handles it, so nothing answers and nothing is applied), a reply starts no
sooner than 3.5 characters after the request ended, an unfinished frame is dropped once the line
has been idle for MIN_FRAME_GAP_S, and comms_silence drops a PLC's replies. Requests the profile
refuses get the answers of sim_plc/pdu.py, which serves every request (pymodbus frames the line and
hands each request PDU over as it came; its register tables are not used). If the port goes away
(the virtual line stopped, the adapter unplugged) it is reopened when it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import termios
from collections.abc import Callable, Sequence
from typing import Any

from pymodbus.framer import FramerType
from pymodbus.pdu import DecodePDU, ModbusPDU
from pymodbus.server import ModbusSerialServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import SimData, SimDevice

from sim_plc.pdu import serve_pdu
from sim_plc.plant import SimPlc
from sim_plc.writelog import WriteLog

log = logging.getLogger(__name__)

REOPEN_S = 0.5  # how often a lost port is tried again
SILENCE_ABOVE_19200_S = 0.00175  # the Modbus serial-line spec's fixed t3.5 above 19200 baud
# A line idle this long ends any frame. Not t3.5 itself: bytes are timed when the event loop reads them,
# and a loaded machine can stall a relay or the loop mid-frame for milliseconds; a master waits longer
# than this (its reply timeout) before it sends again after a frame that got no answer.
MIN_FRAME_GAP_S = 0.05


def silence_s(baudrate: int, parity: str = "N", stopbits: int = 1) -> float:
    """t3.5 of a line: 3.5 characters of 1 start + 8 data + parity + stop bits, fixed above 19200 baud."""
    if baudrate > 19200:
        return SILENCE_ABOVE_19200_S
    return 3.5 * (1 + 8 + (parity != "N") + stopbits) / baudrate


Serve = Callable[[int, bytes], bytes]  # (unit id, request PDU) → reply PDU


class ServedReply(ModbusPDU):
    """A reply PDU as sim_plc/pdu.py made it, for pymodbus to frame."""

    def __init__(self, pdu: bytes) -> None:
        super().__init__()
        self.function_code = pdu[0]
        self.body = pdu[1:]

    def encode(self) -> bytes:
        return self.body


class ServedRequest(ModbusPDU):
    """A request PDU as it came off the line, answered by `serve` for the unit pymodbus hands it to."""

    def __init__(self, pdu: bytes, serve: Serve) -> None:
        super().__init__()
        self.function_code = pdu[0]
        self.pdu = pdu
        self.serve = serve

    async def datastore_update(self, context: Any, device_id: int) -> ModbusPDU:
        _ = context
        return ServedReply(self.serve(device_id, self.pdu))


class ServingDecoder(DecodePDU):
    """A server decoder under which every request frame pymodbus's RTU framer delimits is a ServedRequest
    (the framer still finds frame lengths in pymodbus's tables), so pymodbus neither answers nor logs
    anything of its own."""

    def __init__(self, serve: Serve) -> None:
        super().__init__(is_server=True)
        self.serve = serve

    def decode(self, frame: bytes) -> ModbusPDU | None:
        return ServedRequest(frame, self.serve) if frame else None


class LineHandler(ServerRequestHandler):
    """The server side of the line: bytes that follow a silence of at least `frame_gap_s` start a new
    frame, so what is left of an unfinished or garbled one is dropped (pymodbus would instead wait
    for it to reach the length its header claims, swallowing the requests that follow)."""

    frame_gap_s = MIN_FRAME_GAP_S
    _last_rx_at = float("-inf")

    def data_received(self, data: bytes) -> None:
        now = self.loop.time()
        if self.recv_buffer and now - self._last_rx_at >= self.frame_gap_s:
            self.recv_buffer = b""
        self._last_rx_at = now
        super().data_received(data)


class LineServer(ModbusSerialServer):
    """A ModbusSerialServer whose requests decode to ServedRequests and whose line is a LineHandler."""

    def __init__(self, *args: Any, serve: Serve, frame_gap_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.decoder = ServingDecoder(serve)  # read by the line's framer when the port opens
        self.frame_gap_s = frame_gap_s

    def callback_new_connection(self) -> ServerRequestHandler:
        handler = LineHandler(self, self.trace_packet, self.trace_pdu, self.trace_connect)
        handler.frame_gap_s = self.frame_gap_s
        return handler


class SerialEndpoint:
    """Every SimPlc of one bus, served as RTU slaves on `path`."""

    def __init__(
        self,
        bus: str,
        plcs: Sequence[SimPlc],
        path: str,
        write_log: WriteLog,
        *,
        baudrate: int = 19200,
        parity: str = "N",
        stopbits: int = 1,
    ) -> None:
        self.bus = bus
        self.path = path
        self.plcs = {plc.unit: plc for plc in plcs}
        self.baudrate, self.parity, self.stopbits = baudrate, parity, stopbits
        self.silence_s = silence_s(baudrate, parity, stopbits)
        self._write_log = write_log
        # pymodbus wants a device per unit it serves; the requests never reach their registers
        self._devices = [SimDevice(id=plc.unit, simdata=SimData(0)) for plc in plcs]
        self._server: ModbusSerialServer | None = None
        self._reopen: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_rx_at = 0.0
        self.dropped_requests = 0  # requests for unit ids no PLC here owns

    async def start(self) -> None:
        """Open the port and serve; OSError if it cannot be opened."""
        self._stopping = False
        await self._open()
        units = ", ".join(f"{plc.name}={unit}" for unit, plc in self.plcs.items())
        log.info("bus %s: serving units %s on %s at %d baud", self.bus, units, self.path, self.baudrate)

    async def stop(self) -> None:
        self._stopping = True
        if self._reopen is not None:
            self._reopen.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reopen
            self._reopen = None
        await self._close()

    @property
    def open(self) -> bool:
        return self._server is not None

    async def _open(self) -> None:
        server = LineServer(
            self._devices,
            serve=self._serve,
            frame_gap_s=max(2 * self.silence_s, MIN_FRAME_GAP_S),
            framer=FramerType.RTU,
            port=self.path,
            baudrate=self.baudrate,
            bytesize=8,
            parity=self.parity,
            stopbits=self.stopbits,
            reconnect_delay=0,
            trace_packet=self._trace_packet,
            trace_pdu=self._trace_pdu,
            trace_connect=self._trace_connect,
        )
        try:
            await server.serve_forever(background=True)
        except (RuntimeError, termios.error) as exc:  # pymodbus reports a port it cannot open as RuntimeError
            with contextlib.suppress(Exception):
                await server.shutdown()
            raise OSError(f"bus {self.bus}: cannot open serial port {self.path}: {exc}") from exc
        self._server = server

    async def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(Exception):
                await server.shutdown()

    async def _reopen_when_back(self) -> None:
        await self._close()
        while not self._stopping:
            await asyncio.sleep(REOPEN_S)
            try:
                await self._open()
            except OSError:
                continue
            log.info("bus %s: serial port %s open again", self.bus, self.path)
            return

    # ---- pymodbus hooks -------------------------------------------------------------------------
    def _serve(self, unit: int, pdu: bytes) -> bytes:
        reply = serve_pdu(self.plcs[unit], self._write_log, pdu)
        self._write_log.flush()  # before the answer leaves
        return reply

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU | None:
        """A request for a unit id nobody here owns is dropped: pymodbus then neither handles nor answers it."""
        if sending or pdu.dev_id in self.plcs:
            return pdu
        self.dropped_requests += 1
        return None

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        if not sending:
            self._last_rx_at = loop.time()
            return data
        plc = self.plcs.get(data[0]) if data else None
        if plc is None or plc.comms_silent:
            return b""  # an empty write sends nothing: the master times out
        wait = self._last_rx_at + self.silence_s - loop.time()
        if wait <= 0:
            return data
        transport = self._server.transport if self._server is not None else None
        loop.call_later(wait, self._send_late, transport, data)
        return b""

    @staticmethod
    def _send_late(transport: asyncio.Transport | None, data: bytes) -> None:
        """Write the reply now: transport.write() would only queue it until the loop's next turn. Anything
        pymodbus still has queued goes first, and what the port cannot take now goes through the queue."""
        serial = getattr(transport, "sync_serial", None)
        if transport is None or serial is None:
            return
        written = 0
        if not getattr(transport, "intern_write_buffer", None):
            try:
                written = os.write(serial.fd, data)  # the port is non-blocking (pyserial would spin on EAGAIN)
            except BlockingIOError:
                written = 0
            except OSError:
                return  # the port is gone: the reopen logic takes over
        if written < len(data):
            transport.write(data[written:])

    def _trace_connect(self, connected: bool) -> None:
        if connected or self._stopping or self._server is None:
            return
        log.warning("bus %s: serial port %s lost; reopening every %.1f s", self.bus, self.path, REOPEN_S)
        if self._reopen is None or self._reopen.done():
            self._reopen = asyncio.get_running_loop().create_task(
                self._reopen_when_back(), name=f"reopen-{self.bus}"
            )
