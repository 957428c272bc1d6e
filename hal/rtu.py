"""Modbus RTU on one RS-485 line: wire timing, the 3.5-character silence, and a flush after every failed exchange.

One RtuTransport (one pymodbus serial client) serves every unit on its line. RTU has no transaction
id, so a reply that comes after the master gave up looks exactly like the answer to the next
request. pymodbus takes it as such; this transport does not let it:
- before every request the line is kept silent for t3.5 and input nobody asked for is discarded;
  the wait ends a little early by the time pymodbus takes to build and send a request, and the
  last fraction is waited exactly in the send hook, so the silence is kept to the microsecond
  and not overshot by the event loop's wake-up;
- after a timeout or a reply that failed validation it waits one reply frame (and until the line
  is quiet), then discards whatever arrived;
- and it sends nothing more to that unit for one more timeout. A late answer can then only arrive
  while another unit is addressed, whose request rejects it by unit id (pymodbus skips the frame,
  hal.validate checks the unit), and it costs the other units on the line no time.
A reply more than one timeout late to the same unit is indistinguishable in RTU from a real answer
(no transaction id): the timeout must exceed the slave's worst response time.
"""

from __future__ import annotations

import asyncio
import contextlib
import termios
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.framer import FramerType

from hal.errors import CommsError, ExceptionReplyError, NotConnectedError
from hal.pymodbus_client import PymodbusTransport

log = structlog.get_logger("hal.rtu")

SILENCE_ABOVE_19200_S = 0.00175  # Modbus over serial line, 2.5.1.1: a fixed t3.5 above 19200 baud
REQUEST_BYTES_READ = 8  # unit, FC, address (2), count (2), CRC (2)
REPLY_BYTES_WRITE = 8  # FC6 and FC16 replies echo unit, FC, address (2), value/count (2), CRC (2)
DRAIN_MAX_FRAMES = 10  # a line that never goes quiet is given up on after this many frame times
PREPARE_MAX_S = 0.0005  # most the silence wait ends early for pymodbus to prepare a request
PREPARE_SMOOTHING = 0.1  # weight of the newest measurement in the running estimate
SILENCE_ROUNDS = 3  # a line still babbling after this many restarted silences gets the request anyway


def read_reply_bytes(count: int) -> int:
    """Bytes of an FC3/FC4 reply frame with `count` registers: unit, FC, byte count, data, CRC."""
    return 5 + 2 * count


def write_multiple_request_bytes(count: int) -> int:
    """Bytes of an FC16 request frame writing `count` registers."""
    return 9 + 2 * count


@dataclass(frozen=True)
class LineTiming:
    """Character and silence times of a serial line: 1 start + 8 data + parity + stop bits per character."""

    baudrate: int
    parity: str = "N"
    stopbits: int = 1

    @property
    def bits_per_char(self) -> int:
        return 1 + 8 + (0 if self.parity == "N" else 1) + self.stopbits

    @property
    def char_s(self) -> float:
        return self.bits_per_char / self.baudrate

    @property
    def silence_s(self) -> float:
        """t3.5: the silence that ends a frame and must precede the next one."""
        return 3.5 * self.char_s if self.baudrate <= 19200 else SILENCE_ABOVE_19200_S

    def wire_s(self, frame_bytes: int) -> float:
        return frame_bytes * self.char_s

    def cycle_s(self, request_bytes: int, reply_bytes: int) -> float:
        """The shortest possible request/reply exchange: both frames on the wire and two t3.5 silences."""
        return self.wire_s(request_bytes + reply_bytes) + 2 * self.silence_s


class RtuTransport(PymodbusTransport):
    """Every unit of one RS-485 line over one pymodbus serial client; no library retries or reconnects.

    timeout_s is the slave's allowance to answer; the time the request and the reply need on the
    wire is added per request, so one timeout means the same at every baud rate and frame size.
    """

    def __init__(
        self, name: str, port: str, *, baudrate: int, parity: str = "N", stopbits: int = 1, timeout_s: float
    ):
        self.port = port
        self.timing = LineTiming(baudrate, parity, stopbits)
        self.timeout_s = timeout_s
        client = AsyncModbusSerialClient(
            port,
            framer=FramerType.RTU,
            baudrate=baudrate,
            bytesize=8,
            parity=parity,
            stopbits=stopbits,
            timeout=timeout_s,
            retries=0,
            reconnect_delay=0,
            reconnect_delay_max=0,
            name=name,
            trace_packet=self._trace_packet,
        )
        super().__init__(name, client)
        self._last_activity = 0.0  # loop time of the last byte sent or received on the line
        self._late_until: dict[int, float] = {}  # unit → until when a late reply from it may still come
        self._awaiting_reply = False
        self._woke_at: float | None = None  # when the last silence wait ended, until its request is sent
        self._prepare_s = 0.0  # running estimate of the time from the end of that wait to the send hook
        self.discarded_bytes = 0  # bytes thrown away before pymodbus read them
        self.stray_receptions = 0  # data received while no reply was awaited: late replies, noise

    # ----- connection ---------------------------------------------------------------------------

    async def connect(self) -> None:
        try:
            await super().connect()
        except (termios.error, ValueError) as exc:  # a pty refuses even/odd parity with a raw termios.error
            self.close()
            raise CommsError(f"{self.name}: cannot open {self.port}: {exc}") from exc
        self._last_activity = asyncio.get_running_loop().time()
        self._late_until.clear()

    # ----- requests -----------------------------------------------------------------------------

    async def read_input(self, unit: int, address: int, count: int) -> list[int]:
        async with self._exchange(unit, REQUEST_BYTES_READ, read_reply_bytes(count)):
            return await super().read_input(unit, address, count)

    async def read_holding(self, unit: int, address: int, count: int) -> list[int]:
        async with self._exchange(unit, REQUEST_BYTES_READ, read_reply_bytes(count)):
            return await super().read_holding(unit, address, count)

    async def write_register(self, unit: int, address: int, value: int) -> None:
        async with self._exchange(unit, REQUEST_BYTES_READ, REPLY_BYTES_WRITE):
            await super().write_register(unit, address, value)

    async def write_registers(self, unit: int, address: int, values: list[int]) -> None:
        async with self._exchange(unit, write_multiple_request_bytes(len(values)), REPLY_BYTES_WRITE):
            await super().write_registers(unit, address, values)

    @contextlib.asynccontextmanager
    async def _exchange(self, unit: int, request_bytes: int, reply_bytes: int) -> AsyncIterator[None]:
        """Silence before the request, a timeout that covers both frames, and a drain after a failure."""
        if self.connected:
            not_before = self._late_until.pop(unit, 0.0)
            for _ in range(SILENCE_ROUNDS):
                await self._keep_silence(not_before)
                if not self._discard_input("unsolicited"):
                    break
                # bytes arrived during the silence: the line was busy, so the silence starts again
                self._last_activity = max(self._last_activity, asyncio.get_running_loop().time())
            # pymodbus reads its response timeout from here at every request
            self._client.ctx.comm_params.timeout_connect = self.timeout_s + self.timing.wire_s(
                request_bytes + reply_bytes
            )
        self._awaiting_reply = True
        try:
            yield
        except (NotConnectedError, ExceptionReplyError):
            raise  # nothing sent, or a well-formed answer from the addressed unit: nothing late to come
        except CommsError:
            self._late_until[unit] = asyncio.get_running_loop().time() + self.timeout_s
            self._awaiting_reply = False
            await self._drain(reply_bytes)
            raise
        finally:
            self._awaiting_reply = False

    async def _keep_silence(self, not_before: float) -> None:
        """Wait until t3.5 after the line was last busy, less the time pymodbus needs to send.

        The send hook (_trace_packet) waits whatever is left of the silence, so ending this
        wait early never shortens the silence."""
        loop = asyncio.get_running_loop()
        wait = max(self._last_activity + self.timing.silence_s - self._prepare_s, not_before) - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._woke_at = loop.time()

    def _finish_silence(self) -> float:
        """Block for what is left of t3.5: at most the preparation estimate, because no loop turn runs
        between the end of the wait and this hook, so nothing new can have been received meanwhile."""
        now = time.monotonic()  # the clock of asyncio's loop.time()
        if self._woke_at is not None:
            took = now - self._woke_at
            self._prepare_s = min(PREPARE_MAX_S, self._prepare_s + PREPARE_SMOOTHING * (took - self._prepare_s))
            self._woke_at = None
        remaining = self._last_activity + self.timing.silence_s - now
        if remaining > 0:
            time.sleep(min(remaining, PREPARE_MAX_S))
            now = time.monotonic()
        return now

    async def _drain(self, reply_bytes: int) -> None:
        """Wait one reply frame and until the line has been quiet for t3.5, then discard what came."""
        loop = asyncio.get_running_loop()
        frame_s = self.timing.wire_s(reply_bytes) + self.timing.silence_s
        give_up = loop.time() + DRAIN_MAX_FRAMES * frame_s
        await asyncio.sleep(frame_s)
        while self.connected and loop.time() < give_up:
            quiet_for = loop.time() - self._last_activity
            if quiet_for >= self.timing.silence_s:
                break
            await asyncio.sleep(self.timing.silence_s - quiet_for)
        self._discard_input("after a failed exchange")

    def _discard_input(self, why: str) -> int:
        """Throw away whatever was received and not asked for; the number of bytes thrown away."""
        ctx = self._client.ctx
        pending = len(ctx.recv_buffer)
        ctx.recv_buffer = b""
        serial = getattr(ctx.transport, "sync_serial", None)
        if serial is not None:
            try:
                pending += serial.in_waiting
                serial.reset_input_buffer()
            except OSError:  # the adapter is gone: the next request reports it
                pass
        if pending:
            self.discarded_bytes += pending
            log.debug("rtu_input_discarded", bus=self.name, bytes=pending, why=why)
        return pending

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        """pymodbus hook on every frame sent and every chunk received: keep t3.5, note when the line was last busy."""
        if sending:
            now = self._finish_silence() + self.timing.wire_s(len(data))  # the request leaves the wire then
        else:
            now = time.monotonic()
        if not sending and not self._awaiting_reply:
            self.stray_receptions += 1
        self._last_activity = max(self._last_activity, now)
        return data
