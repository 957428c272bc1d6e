"""sim_plc.tcp_server's framing, read by read: split frames, several in one read, foreign units, lengths, non-Modbus streams."""

from __future__ import annotations

import logging
import struct

import pytest

from hal.profile import PROFILE_MAGIC, PROFILE_VERSION, Command, slot_base
from sim_plc.tcp_server import PlcConnection, not_modbus_tcp
from sim_plc.testing import lane_rig
from sim_plc.writelog import WriteLog

UNIT = 1
HEADER = struct.pack(">BBHH", 4, 4, PROFILE_MAGIC, PROFILE_VERSION)  # the answer to FC4 0+2


class FakeTransport:
    """What the protocol writes and whether it closed the connection."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False
        self.reading = True

    def write(self, data: bytes) -> None:
        assert not self.closed, "a write after close"
        self.written.append(data)

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else None


def frame(tid: int, pdu: bytes, unit: int = UNIT, protocol: int = 0, length: int | None = None) -> bytes:
    return struct.pack(">HHHB", tid, protocol, 1 + len(pdu) if length is None else length, unit) + pdu


def answers(transport: FakeTransport) -> list[tuple[int, int, bytes]]:
    """(transaction id, unit, PDU) of every answer written, in order, whatever writes carried them."""
    stream, found = b"".join(transport.written), []
    while stream:
        tid, protocol, length, unit = struct.unpack_from(">HHHB", stream)
        assert protocol == 0
        found.append((tid, unit, stream[7 : 6 + length]))
        stream = stream[6 + length :]
    return found


@pytest.fixture
def rig():
    rig = lane_rig()
    rig.plc.scan()
    return rig


@pytest.fixture
def link(rig) -> tuple[PlcConnection, FakeTransport]:
    connection = PlcConnection(rig.plc, WriteLog(), set())
    transport = FakeTransport()
    connection.connection_made(transport)
    return connection, transport


READ_HEADER = struct.pack(">BHH", 4, 0, 2)


def test_one_request_one_answer(link) -> None:
    connection, transport = link
    connection.data_received(frame(7, READ_HEADER))
    assert answers(transport) == [(7, UNIT, HEADER)]


@pytest.mark.parametrize("cut", [1, 3, 6, 7, 9, 11])
def test_a_frame_split_across_reads_is_answered_once_whole(link, cut: int) -> None:
    connection, transport = link
    whole = frame(8, READ_HEADER)
    connection.data_received(whole[:cut])
    assert transport.written == []
    connection.data_received(whole[cut:])
    assert answers(transport) == [(8, UNIT, HEADER)] and not transport.closed


def test_a_frame_trickled_byte_by_byte_is_answered(link) -> None:
    connection, transport = link
    for byte in frame(9, READ_HEADER):
        connection.data_received(bytes([byte]))
    assert answers(transport) == [(9, UNIT, HEADER)]


def test_several_frames_in_one_read_are_all_answered_in_order(link, rig) -> None:
    connection, transport = link
    write = struct.pack(">BHHBHH", 16, slot_base(0), 2, 4, Command.OPEN, 1)
    connection.data_received(frame(1, READ_HEADER) + frame(2, write) + frame(3, struct.pack(">BHH", 3, slot_base(0), 2))
                             + frame(4, READ_HEADER)[:5])
    assert answers(transport) == [
        (1, UNIT, HEADER),
        (2, UNIT, struct.pack(">BHH", 16, slot_base(0), 2)),
        (3, UNIT, struct.pack(">BBHH", 3, 4, Command.OPEN, 1)),
    ]
    assert len(transport.written) == 1  # one write for the read
    connection.data_received(frame(4, READ_HEADER)[5:])
    assert answers(transport)[-1] == (4, UNIT, HEADER)


def test_another_unit_id_is_answered_0x04_whatever_it_asks(link, rig) -> None:
    connection, transport = link
    connection.data_received(frame(5, READ_HEADER, unit=2) + frame(6, bytes.fromhex("0800001234"), unit=0)
                             + frame(7, struct.pack(">BHHBHH", 16, slot_base(0), 2, 4, Command.OPEN, 1), unit=247))
    assert answers(transport) == [(5, 2, bytes([0x84, 4])), (6, 0, bytes([0x88, 4])), (7, 247, bytes([0x90, 4]))]
    assert rig.plc.read_holding(slot_base(0), 2) == [0, 0], "a write for another unit never reaches this PLC"


def test_a_frame_whose_pdu_is_only_a_function_code_is_refused_0x03(link) -> None:
    connection, transport = link
    connection.data_received(frame(3, b"\x04"))
    assert answers(transport) == [(3, UNIT, bytes([0x84, 3]))]


@pytest.mark.parametrize(
    ("stream", "reason"),
    [
        (frame(1, READ_HEADER, protocol=0x4242), "protocol id 16962"),
        (frame(1, READ_HEADER, length=0), "MBAP length 0"),
        (frame(1, READ_HEADER, length=1), "MBAP length 1"),
        (frame(1, READ_HEADER, length=255), "MBAP length 255"),
        (b"GET / HTTP/1.1\r\n", "protocol id 21536"),
    ],
)
def test_a_stream_that_cannot_be_modbus_tcp_is_closed_with_one_warning(link, caplog, stream: bytes, reason: str) -> None:
    connection, transport = link
    with caplog.at_level(logging.WARNING, logger="sim_plc.tcp_server"):
        connection.data_received(stream)
        connection.data_received(frame(2, READ_HEADER))  # a late read of a closed connection
    assert transport.closed and transport.written == []
    assert [r.getMessage() for r in caplog.records] == [
        f"PLC test-plc: closed the connection from ('127.0.0.1', 40000): not Modbus TCP ({reason})"]


def test_a_bad_header_after_good_frames_answers_those_then_closes(link) -> None:
    connection, transport = link
    connection.data_received(frame(1, READ_HEADER) + frame(2, READ_HEADER, protocol=1))
    assert answers(transport) == [(1, UNIT, HEADER)] and transport.closed


def test_a_bad_header_split_across_reads_is_seen_as_soon_as_its_bytes_come(link) -> None:
    connection, transport = link
    bad = frame(1, READ_HEADER, length=300)
    connection.data_received(bad[:5])
    assert not transport.closed
    connection.data_received(bad[5:6])
    assert transport.closed


def test_comms_silence_drops_every_answer_and_the_writes_are_logged_silenced(link, rig) -> None:
    connection, transport = link
    rig.plc.inject("comms_silence")
    connection.data_received(frame(1, READ_HEADER) + frame(2, READ_HEADER, unit=9))
    connection.data_received(frame(3, struct.pack(">BHHBHH", 16, slot_base(0), 2, 4, Command.OPEN, 1)))
    assert transport.written == [] and not transport.closed
    assert connection.write_log.entries[-1]["result"] == "silenced"
    rig.plc.inject("comms_silence", active=False)
    connection.data_received(frame(4, READ_HEADER))
    assert answers(transport) == [(4, UNIT, HEADER)]


def test_a_client_that_does_not_read_its_answers_is_not_read(link) -> None:
    connection, transport = link
    connection.pause_writing()
    assert not transport.reading
    connection.resume_writing()
    assert transport.reading


def test_the_write_log_is_in_the_file_before_the_answer_is_written(rig, tmp_path) -> None:
    path = tmp_path / "writes.jsonl"
    write_log = WriteLog(path)
    seen: list[int] = []

    class Watching(FakeTransport):
        def write(self, data: bytes) -> None:
            seen.append(len(path.read_text().splitlines()))
            super().write(data)

    connection = PlcConnection(rig.plc, write_log, set())
    connection.connection_made(Watching())
    write = struct.pack(">BHHBHH", 16, slot_base(0), 2, 4, Command.OPEN, 1)
    connection.data_received(frame(1, write))
    connection.data_received(frame(2, write) + frame(3, write))
    assert seen == [1, 3]
    write_log.close()


@pytest.mark.parametrize(
    ("stream", "fault"),
    [
        (bytes.fromhex("0001000000060104000000"), None),
        (bytes.fromhex("0001"), None),  # too short to tell yet
        (bytes.fromhex("000100000006"), None),
        (bytes.fromhex("00014242000601"), "protocol id 16962"),
        (bytes.fromhex("000100000000"), "MBAP length 0"),
        (bytes.fromhex("000100000002"), None),
        (bytes.fromhex("0001000000fe"), None),  # 254: the unit id and a PDU of 253 bytes
        (bytes.fromhex("0001000000ff"), "MBAP length 255"),
    ],
)
def test_a_stream_that_cannot_be_modbus_tcp_is_named(stream: bytes, fault: str | None) -> None:
    assert not_modbus_tcp(stream) == fault
