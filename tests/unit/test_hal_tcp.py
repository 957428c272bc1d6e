"""hal.tcp: replies decoded from their bytes for hal/validate.py, frames found in any split of the stream,
a reply to another transaction never taken, a stream that is no Modbus TCP dropped (fake socket, looptime)."""

from __future__ import annotations

import asyncio
import random
import struct

import pytest

from hal import tcp, validate
from hal.errors import BadReplyError, CommsError, ExceptionReplyError, NotConnectedError
from hal.tcp import MBAP, TcpTransport, Undecodable, decode_reply

pytestmark = pytest.mark.timeout(30)


def frame(tid: int, unit: int, pdu: bytes) -> bytes:
    return MBAP.pack(tid, 0, 1 + len(pdu), unit) + pdu


def fc4_pdu(registers: list[int], byte_count: int | None = None) -> bytes:
    data = struct.pack(f">{len(registers)}H", *registers)
    return bytes([4, len(data) if byte_count is None else byte_count]) + data


# ----- decoding one PDU -------------------------------------------------------------------------


def test_a_read_reply_keeps_its_registers_and_byte_count() -> None:
    reply = decode_reply(1, fc4_pdu([0x4250, 1, 65535]))
    assert (reply.function_code, reply.dev_id, reply.registers, reply.byte_count) == (4, 1, [0x4250, 1, 65535], 6)
    assert not reply.isError()


def test_an_odd_byte_count_leaves_a_register_count_validation_refuses() -> None:
    reply = decode_reply(1, fc4_pdu([1, 2], byte_count=3))
    assert reply.registers == [1] and reply.byte_count == 3


@pytest.mark.parametrize("pdu", [b"", b"\x04", fc4_pdu([1, 2], byte_count=6), b"\x63\x00", b"\x06\x00\x01"],
                         ids=["empty", "no byte count", "byte count overrun", "unknown function", "short echo"])
def test_a_pdu_no_request_gets_is_undecodable(pdu: bytes) -> None:
    with pytest.raises(Undecodable):
        decode_reply(1, pdu)


def test_exception_and_write_replies() -> None:
    exception = decode_reply(1, b"\x84\x02")
    assert exception.isError() and exception.exception_code == 2
    echo = decode_reply(1, b"\x10\x00\x10\x00\x02")
    assert (echo.function_code, echo.address, echo.count) == (16, 16, 2)


# ----- the link: framing and transactions -------------------------------------------------------


class FakeSocket:
    """What _Link sees of the asyncio transport: the frames written, and whether it was aborted."""

    def __init__(self, link: tcp._Link) -> None:
        self.link, self.sent, self.aborted = link, [], False

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def abort(self) -> None:
        self.aborted = True
        self.link.connection_lost(None)


def connected(timeout_s: float = 0.3) -> tuple[TcpTransport, FakeSocket]:
    transport = TcpTransport("plc-1", "127.0.0.1", 502, timeout_s)
    link = tcp._Link("plc-1")
    sock = FakeSocket(link)
    link.connection_made(sock)  # type: ignore[arg-type]
    transport._link, transport._loop = link, asyncio.get_running_loop()  # as connect() leaves them
    return transport, sock


def sent_tid(sock: FakeSocket) -> int:
    return MBAP.unpack_from(sock.sent[-1])[0]


async def answered(call, sock: FakeSocket, chunks_of) -> object:
    """Start `call`, then feed what `chunks_of(tid)` returns, one data_received per chunk."""
    task = asyncio.create_task(call)
    await asyncio.sleep(0)
    for chunk in chunks_of(sent_tid(sock)):
        sock.link.data_received(chunk)
    return await task


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_request_is_framed_and_a_reply_split_anyhow_is_found() -> None:
    transport, sock = connected()
    reply = frame(0, 1, fc4_pdu([7, 8, 9]))

    def split(tid: int) -> list[bytes]:
        whole = MBAP.pack(tid, 0, len(reply) - 6, 1) + reply[7:]
        return [whole[:3], whole[3:8], whole[8:]]

    assert await answered(transport.read_input(1, 0, 3), sock, split) == [7, 8, 9]
    assert sock.sent[-1][6:] == bytes([1, 4, 0, 0, 0, 3])  # unit 1, FC4, address 0, count 3


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_reply_to_another_transaction_is_never_taken() -> None:
    transport, sock = connected()

    def stale_then_right(tid: int) -> list[bytes]:
        return [frame(tid - 1, 1, fc4_pdu([666])) + frame(tid, 1, fc4_pdu([1]))]

    assert await answered(transport.read_input(1, 0, 1), sock, stale_then_right) == [1]
    with pytest.raises(CommsError, match="no reply within"):
        await answered(transport.read_input(1, 0, 1), sock, lambda tid: [frame(tid + 5, 1, fc4_pdu([666]))])
    assert transport.connected


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_replies_are_validated_as_before() -> None:
    transport, sock = connected()
    with pytest.raises(BadReplyError, match="unit 2"):
        await answered(transport.read_input(1, 0, 1), sock, lambda tid: [frame(tid, 2, fc4_pdu([1]))])
    with pytest.raises(BadReplyError, match="2 registers"):
        await answered(transport.read_input(1, 0, 1), sock, lambda tid: [frame(tid, 1, fc4_pdu([1, 2]))])
    with pytest.raises(ExceptionReplyError) as info:
        await answered(transport.write_register(1, 0, 5), sock, lambda tid: [frame(tid, 1, b"\x86\x03")])
    assert info.value.exception_code == 3
    with pytest.raises(BadReplyError, match="address"):
        await answered(transport.write_registers(1, 16, [2, 9]), sock, lambda tid: [frame(tid, 1, b"\x10\x00\x11\x00\x02")])


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize("stream", [b"HTTP/1.1 400 Bad Request\r\n\r\n", frame(0, 1, b"\x63\x00")],
                         ids=["not modbus", "undecodable"])
async def test_a_stream_that_is_no_modbus_tcp_drops_the_link(stream: bytes) -> None:
    transport, sock = connected()

    def bad(tid: int) -> list[bytes]:
        return [stream if stream[:2] != b"\x00\x00" else MBAP.pack(tid, 0, 3, 1) + stream[7:]]

    with pytest.raises(CommsError):
        await answered(transport.read_input(1, 0, 1), sock, bad)
    assert sock.aborted and not transport.connected
    with pytest.raises(NotConnectedError):
        await transport.read_input(1, 0, 1)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_timeouts_in_a_row_drop_the_link_and_an_answer_in_between_resets_the_count() -> None:
    transport, sock = connected(timeout_s=0.3)
    for _ in range(tcp.MAX_TIMEOUTS - 1):
        with pytest.raises(CommsError, match="no reply within 0.3 s"):
            await transport.read_input(1, 0, 1)
    assert await answered(transport.read_input(1, 0, 1), sock, lambda tid: [frame(tid, 1, fc4_pdu([4]))]) == [4]
    for _ in range(tcp.MAX_TIMEOUTS - 1):
        with pytest.raises(CommsError):
            await transport.read_input(1, 0, 1)
    assert transport.connected
    with pytest.raises(CommsError):
        await transport.read_input(1, 0, 1)
    assert not transport.connected and sock.aborted


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_one_timer_serves_exchanges_in_a_row_and_each_times_out_at_its_own_deadline(
        monkeypatch: pytest.MonkeyPatch) -> None:
    transport, sock = connected(timeout_s=0.3)
    loop = asyncio.get_running_loop()
    timers = []
    call_at = loop.call_at

    def counted(when, callback, *args, **kwargs):
        if getattr(callback, "__self__", None) is transport:
            timers.append(when)
        return call_at(when, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_at", counted)
    start = loop.time()
    for n in range(5):  # five exchanges answered within 0.2 s: the first one's timer serves them all
        assert await answered(transport.read_input(1, 0, 1), sock, lambda tid: [frame(tid, 1, fc4_pdu([n]))]) == [n]
        await asyncio.sleep(0.04)
    assert len(timers) == 1
    began = loop.time()  # the sixth gets no reply: it times out 0.3 s after it began, not at the first timer
    with pytest.raises(CommsError, match=r"plc-1: read IR 0\+1 unit 1: no reply within 0.3 s"):
        await transport.read_input(1, 0, 1)
    assert loop.time() - began == pytest.approx(0.3, abs=0.002)
    assert timers[0] == pytest.approx(start + 0.3) and len(timers) == 2  # set once more, for the sixth's deadline


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_request_text_is_built_only_for_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    transport, sock = connected()
    explained = []
    monkeypatch.setattr(tcp, "check_read_reply", lambda reply, **kw: explained.append(kw["what"]) or [])
    assert await answered(transport.read_input(1, 0, 1), sock, lambda tid: [frame(tid, 1, fc4_pdu([3]))]) == [3]
    assert explained == []  # a valid reply: accepted by hal.validate.read_registers, no text made
    await answered(transport.read_input(1, 0, 1), sock, lambda tid: [frame(tid, 1, fc4_pdu([3, 4]))])
    assert explained == ["read IR 0+1 unit 1"]


def test_the_one_step_check_accepts_exactly_what_the_step_by_step_check_accepts() -> None:
    rng = random.Random(7)
    accepted = 0
    for _ in range(3000):
        count = rng.choice((0, 1, 3, 64))
        n = count if rng.random() < 0.7 else rng.randint(0, 65)
        registers = [rng.choice((0, 1, 0xFFFF, 0x10000, -1, 2.0)) if rng.random() < 0.02 else rng.randint(0, 0xFFFF)
                     for _ in range(n)]
        reply = tcp.Reply(rng.choice((4, 4, 4, 3, 0x84)), rng.choice((1, 1, 1, 2)), registers,
                          rng.choice((2 * count, 2 * count, None, 2 * count + 1)), exception_code=2)
        fc, unit = 4, 1
        quick = validate.read_registers(reply, fc, count, unit)
        try:
            whole = validate.check_read_reply(reply, function_code=fc, count=count, unit=unit, what="read")
        except CommsError:
            whole = None
        assert quick is None or quick == whole, reply
        if quick is None and whole is not None:  # only where the one-step check leaves it to the steps
            assert any(not isinstance(r, int) for r in registers), reply
        accepted += quick is not None
    assert accepted > 500


# ----- the block read and the poll sent from a timer ----------------------------------------------


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_block_is_the_reply_bytes_after_the_same_checks_as_read_input() -> None:
    transport, sock = connected()
    block = await answered(transport.read_input_block(1, 0, 3), sock, lambda tid: [frame(tid, 1, fc4_pdu([7, 8, 9]))])
    assert block == struct.pack(">3H", 7, 8, 9)
    odd = fc4_pdu([7, 8, 9]) + b"\x00"  # a byte past the registers: not taken as it came, checked step by step
    assert await answered(transport.read_input_block(1, 0, 3), sock, lambda tid: [frame(tid, 1, odd)]) == block
    for wrong, error in ((frame(0, 2, fc4_pdu([1, 2, 3])), "unit 2"), (frame(0, 1, fc4_pdu([1, 2])), "2 registers"),
                         (frame(0, 1, b"\x84\x02"), "exception")):
        with pytest.raises(CommsError, match=error):
            await answered(transport.read_input_block(1, 0, 3), sock, lambda tid: [MBAP.pack(tid, 0, *MBAP.unpack_from(
                wrong)[2:]) + wrong[MBAP.size:]])


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_poll_at_goes_out_at_its_time_and_hands_its_block_or_its_failure_over() -> None:
    transport, sock = connected(timeout_s=0.3)
    loop = asyncio.get_running_loop()
    outcomes: list[tuple[float, object]] = []

    def on_block(outcome: object) -> None:
        outcomes.append((loop.time(), outcome))

    start = loop.time()
    transport.poll_at(start + 0.5, 1, 0, 2, on_block)
    await asyncio.sleep(0.49)
    assert sock.sent == [] and transport.cancel_poll() is True  # withdrawn before it went out: nothing sent
    await asyncio.sleep(0.1)
    assert sock.sent == [] and outcomes == []

    transport.poll_at(loop.time() + 0.1, 1, 0, 2, on_block)
    await asyncio.sleep(0.11)
    assert len(sock.sent) == 1 and sock.sent[0][6:] == bytes([1, 4, 0, 0, 0, 2])
    assert transport.cancel_poll() is False  # out: its reply is still to come
    sock.link.data_received(frame(sent_tid(sock), 1, fc4_pdu([5, 6])))
    assert outcomes[-1][1] == struct.pack(">2H", 5, 6) and transport.cancel_poll() is True

    transport.poll_at(loop.time(), 1, 0, 2, on_block)
    await asyncio.sleep(0.01)
    sock.link.data_received(frame(sent_tid(sock), 1, fc4_pdu([5])))
    assert isinstance(outcomes[-1][1], BadReplyError)

    transport.poll_at(loop.time(), 1, 0, 2, on_block)
    sent_at = loop.time()
    await asyncio.sleep(0.5)
    at, error = outcomes[-1]
    assert isinstance(error, CommsError) and str(error) == "plc-1: read IR 0+2 unit 1: no reply within 0.3 s"
    assert at - sent_at == pytest.approx(0.3, abs=0.002) and transport.connected
    sock.link.data_received(frame(sent_tid(sock), 1, fc4_pdu([5, 6])))  # too late: never taken
    assert len(outcomes) == 3

    transport.poll_at(loop.time(), 1, 0, 2, on_block)
    await asyncio.sleep(0.01)
    sock.link.connection_lost(None)
    assert isinstance(outcomes[-1][1], CommsError) and "connection lost" in str(outcomes[-1][1])
