"""Modbus TCP to one PLC on a lean asyncio protocol: struct framing, one request at a time, every reply validated.

The poll path is one FC4 read per PLC per period; on pymodbus its request objects, framer and
transaction manager cost more CPU than everything barrierd does with the reading. Here a request is
one struct.pack and a reply one struct.unpack; what is checked is unchanged: the reply is handed to
hal/validate.py as pymodbus's would be (function code, unit, register and byte counts, exceptions,
write echoes). A byte stream that is no Modbus TCP frame, or a reply that cannot be decoded, drops
the link (the bus reconnects), as pymodbus does; a reply to another transaction (one that came
after its timeout) is discarded. After MAX_TIMEOUTS timeouts in a row the link is dropped too: a
peer that vanished without a reset is reconnected rather than waited on forever.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from hal.errors import CommsError, NotConnectedError
from hal.ticker import Ticker
from hal.transport import FC_READ_HOLDING, FC_READ_INPUT, FC_WRITE_MULTIPLE, FC_WRITE_SINGLE
from hal.validate import check_read_reply, check_write_reply, read_registers, u16_block, write_echoed

MBAP = struct.Struct(">HHHB")  # transaction id, protocol id (0), length (unit + PDU), unit
READ = struct.Struct(">BHH")  # function code, address, count (FC3, FC4) or value (FC6)
ECHO = struct.Struct(">HH")  # the address and count / value a write reply echoes
MAX_PDU = 253
MAX_TIMEOUTS = 3
TIMER_SLACK_S = 0.001  # a timer may run this much before its time (the loop's clock resolution)


@dataclass
class Reply:
    """One decoded reply PDU, with the attributes hal/validate.py checks (those of a pymodbus reply)."""

    function_code: int
    dev_id: int
    registers: list[int] = field(default_factory=list)
    byte_count: int | None = None
    address: int | None = None
    count: int | None = None
    exception_code: int = 0

    def isError(self) -> bool:  # noqa: N802 - the name validate.py reads on every reply
        return self.function_code & 0x80 != 0


class Undecodable(Exception):
    """A frame whose PDU is no reply this client can read."""


def decode_reply(unit: int, pdu: bytes) -> Reply:
    """The Reply in one frame's PDU; Undecodable for a function code or length no request of ours gets."""
    if not pdu:
        raise Undecodable("empty PDU")
    fc = pdu[0]
    if fc & 0x80:
        return Reply(fc, unit, exception_code=pdu[1] if len(pdu) > 1 else 0)
    if fc in (FC_READ_HOLDING, FC_READ_INPUT):
        if len(pdu) < 2 or len(pdu) - 2 < pdu[1]:
            raise Undecodable(f"byte count {pdu[1] if len(pdu) > 1 else None} beyond the {len(pdu) - 2} data bytes")
        byte_count = pdu[1]
        registers = list(struct.unpack_from(f">{byte_count // 2}H", pdu, 2))
        return Reply(fc, unit, registers=registers, byte_count=byte_count)
    if fc in (FC_WRITE_SINGLE, FC_WRITE_MULTIPLE):
        if len(pdu) != 1 + ECHO.size:
            raise Undecodable(f"write reply of {len(pdu)} bytes")
        address, count = ECHO.unpack_from(pdu, 1)
        return Reply(fc, unit, address=address, count=count)
    raise Undecodable(f"function code 0x{fc:02X}")


class _Link(asyncio.Protocol):
    """The socket's side: frames the byte stream and hands the awaited frame, as it came, to its future."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiting: tuple[int, asyncio.Future[bytes] | _Callback] | None = None  # (transaction id, its reply)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(CommsError(f"{self.name}: connection lost{f': {exc}' if exc else ''}"))

    def drop(self, error: CommsError) -> None:
        if self.transport is not None:
            self.transport.abort()
            self.transport = None
        self._fail(error)

    def _fail(self, error: CommsError) -> None:
        waiting, self.waiting = self.waiting, None
        if waiting is not None and not waiting[1].done():
            waiting[1].set_exception(error)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        if not buffer and len(data) >= MBAP.size and self._whole(data):
            return  # the usual case: one whole reply in one segment, taken without copying into the buffer
        buffer += data
        while len(buffer) >= MBAP.size:
            tid, protocol, length, _ = MBAP.unpack_from(buffer)
            if protocol != 0 or not 2 <= length <= MAX_PDU + 1:
                self.drop(CommsError(f"{self.name}: not a Modbus TCP frame (protocol {protocol}, length {length})"))
                buffer.clear()
                return
            end = 6 + length
            if len(buffer) < end:
                return
            frame = bytes(buffer[:end])
            del buffer[:end]
            self._take(tid, frame)

    def _whole(self, data: bytes) -> bool:
        """Take `data` if it is exactly one well-formed frame; False leaves it to the buffer."""
        tid, protocol, length, _ = MBAP.unpack_from(data)
        if protocol != 0 or len(data) != 6 + length or not 2 <= length <= MAX_PDU + 1:
            return False
        self._take(tid, data)
        return True

    def _take(self, tid: int, frame: bytes) -> None:
        waiting = self.waiting
        if waiting is None or waiting[0] != tid or waiting[1].done():
            return  # the answer to a request that timed out, or to none: never taken as data
        self.waiting = None  # before the reply is handed on: a callback runs at once (see _Callback)
        waiting[1].set_result(frame)


class TcpTransport:
    """Modbus TCP to one PLC: no retries or reconnects of its own; the bus decides when to retry."""

    def __init__(self, name: str, host: str, port: int, timeout_s: float, ticker: Ticker | None = None):
        self.name = name
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._link: _Link | None = None
        self._tid = 0
        self._timeouts = 0
        self._deadline = 0.0  # when the exchange awaited now times out
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop of the connection
        self._poll: tuple[int, int, int, Callable[[bytes | CommsError], None]] | None = None  # see poll_at
        self._ticker = ticker or Ticker()  # a site's one Ticker sends the polls of all its PLCs due at one time
        self._poll_batch: list[Callable[[], None]] | None = None  # a poll_at not sent yet: the batch it is in

    @property
    def connected(self) -> bool:
        return self._link is not None and self._link.transport is not None

    async def connect(self) -> None:
        self.close()
        loop = asyncio.get_running_loop()
        try:
            _, link = await loop.create_connection(lambda: _Link(self.name), self.host, self.port)
        except OSError as exc:
            raise CommsError(f"{self.name}: connect failed: {exc}") from exc
        self._link, self._timeouts, self._loop = link, 0, loop

    def close(self) -> None:
        if self._poll_batch is not None:  # a poll_at not yet sent is dropped with the link
            self._ticker.cancel(self._poll_batch, self._send_poll)
            self._poll_batch = self._poll = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._link is not None:
            self._link.drop(NotConnectedError(f"{self.name}: closed"))
            self._link = None

    async def _exchange(self, unit: int, pdu: bytes) -> bytes:
        """Send one request and await its reply frame; _Failed (the text without the request) if none comes."""
        link = self._link
        if link is None or link.transport is None:
            raise NotConnectedError(f"{self.name}: not connected")
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._send(link, unit, pdu, future)
        try:
            frame = await future
        except TimeoutError:
            self._timeouts += 1
            if self._timeouts >= MAX_TIMEOUTS:
                link.drop(CommsError(f"{self.name}: {MAX_TIMEOUTS} timeouts in a row"))
            raise _Failed(f"no reply within {self.timeout_s:g} s") from None
        except CommsError as exc:
            raise _Failed(str(exc)) from exc
        finally:
            if link.waiting is not None and link.waiting[1] is future:
                link.waiting = None
        self._timeouts = 0
        return frame

    def _send(self, link: _Link, unit: int, pdu: bytes, waiter: asyncio.Future[bytes] | _Callback) -> None:
        loop = self._loop
        self._tid = tid = (self._tid + 1) & 0xFFFF
        link.waiting = (tid, waiter)
        assert link.transport is not None
        link.transport.write(MBAP.pack(tid, 0, 1 + len(pdu), unit) + pdu)
        self._deadline = loop.time() + self.timeout_s
        if self._timer is None:  # one timer at a time, left running across replies (see _on_timer)
            self._timer = loop.call_at(self._deadline, self._on_timer)

    def _on_timer(self) -> None:
        """The exchange awaited now times out once past its deadline; the timer is set again for a later one
        (an exchange that began after this timer was set), or left unset while none is awaited."""
        self._timer = None
        link = self._link
        if link is None or link.waiting is None or link.waiting[1].done():
            return
        loop = asyncio.get_running_loop()
        if loop.time() >= self._deadline - TIMER_SLACK_S:
            waiting, link.waiting = link.waiting, None
            waiting[1].set_exception(TimeoutError())
        else:
            self._timer = loop.call_at(self._deadline, self._on_timer)

    def _failed(self, what: str, exc: _Failed) -> CommsError:
        return CommsError(f"{self.name}: {what}: {exc}")

    def _decoded(self, frame: bytes, what: str) -> Reply:
        """The reply in `frame`; one no request of ours gets drops the link (the bus reconnects)."""
        try:
            return decode_reply(frame[MBAP.size - 1], frame[MBAP.size:])
        except Undecodable as exc:
            error = CommsError(f"{self.name}: {what}: undecodable reply: {exc}")
            if self._link is not None:
                self._link.drop(error)
            raise error from None

    async def _read(self, function_code: int, unit: int, address: int, count: int) -> list[int]:
        try:
            frame = await self._exchange(unit, READ.pack(function_code, address, count))
        except _Failed as exc:
            raise self._failed(_read_what(function_code, address, count, unit), exc) from exc.__cause__
        return self._registers(frame, function_code, address, count, unit)

    def _registers(self, frame: bytes, function_code: int, address: int, count: int, unit: int) -> list[int]:
        """The registers of a FC3/FC4 reply frame that passes hal/validate.py's checks, or its error."""
        reply = self._decoded(frame, _read_what(function_code, address, count, unit))
        if (registers := read_registers(reply, function_code, count, unit)) is not None:
            return registers
        return check_read_reply(reply, function_code=function_code, count=count, unit=unit,
                                what=_read_what(function_code, address, count, unit))

    async def read_input(self, unit: int, address: int, count: int) -> list[int]:
        return await self._read(FC_READ_INPUT, unit, address, count)

    async def read_input_block(self, unit: int, address: int, count: int) -> bytes:
        """The poll read: the registers as the reply carries them (2 bytes each, big-endian), after the same checks
        as read_input. A reply that is exactly what was asked (its unit, FC4, the byte count, nothing more: every
        value 16 bits by its framing) is taken as it came; any other is decoded and checked step by step."""
        try:
            frame = await self._exchange(unit, READ.pack(FC_READ_INPUT, address, count))
        except _Failed as exc:
            raise self._failed(_read_what(FC_READ_INPUT, address, count, unit), exc) from exc.__cause__
        return self._block(frame, unit, address, count)

    def _block(self, frame: bytes, unit: int, address: int, count: int) -> bytes:
        if len(frame) == 9 + 2 * count and frame[8] == 2 * count and frame[7] == FC_READ_INPUT and frame[6] == unit:
            return frame[9:]
        return u16_block(count).pack(*self._registers(frame, FC_READ_INPUT, address, count, unit))

    def poll_at(self, when: float, unit: int, address: int, count: int,
                on_block: Callable[[bytes | CommsError], None]) -> None:
        """read_input_block sent by a timer at loop time `when`, its block (or the CommsError it ends in) handed to
        `on_block`: no task wakes and no future is made for it. One at a time; cancel_poll() withdraws it. The
        polls of every transport sharing a Ticker due at the same time go out from one timer."""
        self._poll = (unit, address, count, on_block)
        self._poll_batch = self._ticker.at(when, self._send_poll)

    def cancel_poll(self) -> bool:
        """Withdraw a poll_at whose request is not out yet; False while one's reply is awaited (on_block will come)."""
        if self._poll_batch is not None:
            self._ticker.cancel(self._poll_batch, self._send_poll)
            self._poll_batch = self._poll = None
        return self._poll is None

    def _send_poll(self) -> None:
        self._poll_batch = None
        assert self._poll is not None
        unit, address, count, _ = self._poll
        link = self._link
        if link is None or link.transport is None:
            self._polled(NotConnectedError(f"{self.name}: not connected"))
        else:
            self._send(link, unit, READ.pack(FC_READ_INPUT, address, count), _Callback(self._polled))

    def _polled(self, outcome: bytes | BaseException) -> None:
        """A poll_at's reply frame, or why none came, as read_input_block would return or raise it."""
        assert self._poll is not None
        (unit, address, count, on_block), self._poll = self._poll, None
        if outcome.__class__ is bytes:
            self._timeouts = 0
            try:
                block: bytes | CommsError = self._block(outcome, unit, address, count)  # type: ignore[arg-type]
            except CommsError as exc:
                block = exc
            on_block(block)
        elif isinstance(outcome, NotConnectedError):
            on_block(outcome)
        else:
            reason = f"no reply within {self.timeout_s:g} s" if isinstance(outcome, TimeoutError) else str(outcome)
            if isinstance(outcome, TimeoutError):
                self._timeouts += 1
                if self._timeouts >= MAX_TIMEOUTS and self._link is not None:
                    self._link.drop(CommsError(f"{self.name}: {MAX_TIMEOUTS} timeouts in a row"))
            on_block(CommsError(f"{self.name}: {_read_what(FC_READ_INPUT, address, count, unit)}: {reason}"))

    async def read_holding(self, unit: int, address: int, count: int) -> list[int]:
        return await self._read(FC_READ_HOLDING, unit, address, count)

    async def write_register(self, unit: int, address: int, value: int) -> None:
        try:
            frame = await self._exchange(unit, READ.pack(FC_WRITE_SINGLE, address, value))
        except _Failed as exc:
            raise self._failed(f"write HR {address}={value} unit {unit}", exc) from exc.__cause__
        reply = self._decoded(frame, f"write HR {address}={value} unit {unit}")
        if not write_echoed(reply, FC_WRITE_SINGLE, address, 1, unit):
            check_write_reply(reply, function_code=FC_WRITE_SINGLE, address=address, count=1, unit=unit,
                              what=f"write HR {address}={value} unit {unit}")

    async def write_registers(self, unit: int, address: int, values: list[int]) -> None:
        what = f"write HR {address}={values} unit {unit}"
        pdu = struct.pack(f">BHHB{len(values)}H", FC_WRITE_MULTIPLE, address, len(values), 2 * len(values), *values)
        try:
            frame = await self._exchange(unit, pdu)
        except _Failed as exc:
            raise self._failed(what, exc) from exc.__cause__
        check_write_reply(
            self._decoded(frame, what), function_code=FC_WRITE_MULTIPLE, address=address, count=len(values),
            unit=unit, what=what
        )


def _read_what(function_code: int, address: int, count: int, unit: int) -> str:
    return f"read {'IR' if function_code == FC_READ_INPUT else 'HR'} {address}+{count} unit {unit}"


class _Callback:
    """In place of an exchange's future where no coroutine awaits the reply: its outcome goes to `callback` at once."""

    __slots__ = ("callback", "_done")

    def __init__(self, callback: Callable[[bytes | BaseException], None]) -> None:
        self.callback, self._done = callback, False

    def done(self) -> bool:
        return self._done

    def set_result(self, frame: bytes) -> None:
        self._done = True
        self.callback(frame)

    def set_exception(self, error: BaseException) -> None:
        self._done = True
        self.callback(error)


class _Failed(Exception):
    """An exchange that got no reply, before the request it was is named (only then is that text built)."""
