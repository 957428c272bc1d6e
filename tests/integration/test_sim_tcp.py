"""sim-plc's Modbus TCP server over real sockets: frames split across segments, several in one, foreign units, bad streams."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from config.loader import load_site
from hal.profile import PROFILE_MAGIC, PROFILE_VERSION, Command, slot_base
from sim_plc.server import SimSite

DEMO = Path(__file__).resolve().parents[2] / "config" / "sites" / "demo.toml"
LANE = "plc-lane-1"
UNIT = 1
READ_HEADER = struct.pack(">BHH", 4, 0, 2)
HEADER = struct.pack(">BBHH", 4, 4, PROFILE_MAGIC, PROFILE_VERSION)
ANSWER_WAIT_S = 5.0  # a bound for a loaded machine, not a timing


def frame(tid: int, pdu: bytes, unit: int = UNIT, protocol: int = 0) -> bytes:
    return struct.pack(">HHHB", tid, protocol, 1 + len(pdu), unit) + pdu


@pytest_asyncio.fixture
async def sim(tmp_path: Path) -> AsyncIterator[SimSite]:
    site = SimSite(load_site(DEMO), plc_names=[LANE], port_override=0, write_log=tmp_path / "writes.jsonl")
    await site.start()
    try:
        yield site
    finally:
        await site.stop()


@pytest_asyncio.fixture
async def stream(sim: SimSite) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port_of(LANE))
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        yield reader, writer
    finally:
        writer.close()


async def answer(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    head = await asyncio.wait_for(reader.readexactly(7), ANSWER_WAIT_S)
    tid, protocol, length, unit = struct.unpack(">HHHB", head)
    assert protocol == 0
    return tid, unit, await asyncio.wait_for(reader.readexactly(length - 1), ANSWER_WAIT_S)


@pytest.mark.asyncio
async def test_a_frame_sent_in_pieces_is_answered_once_complete(stream) -> None:
    reader, writer = stream
    split = frame(12, READ_HEADER)
    writer.write(frame(11, READ_HEADER) + split[:9])  # the answer to 11 shows the server has read this segment
    assert await answer(reader) == (11, UNIT, HEADER)
    writer.write(split[9:])
    assert await answer(reader) == (12, UNIT, HEADER)


@pytest.mark.asyncio
async def test_several_frames_in_one_segment_are_all_answered_in_order(sim: SimSite, stream) -> None:
    reader, writer = stream
    write = struct.pack(">BHHBHH", 16, slot_base(0), 2, 4, Command.CLOSE, 4)
    writer.write(frame(1, READ_HEADER) + frame(2, write) + frame(3, struct.pack(">BHH", 3, slot_base(0), 2))
                 + frame(4, READ_HEADER, unit=UNIT + 1))
    got = [await answer(reader) for _ in range(4)]
    assert got == [(1, UNIT, HEADER), (2, UNIT, struct.pack(">BHH", 16, slot_base(0), 2)),
                   (3, UNIT, struct.pack(">BBHH", 3, 4, Command.CLOSE, 4)), (4, UNIT + 1, bytes([0x84, 4]))]
    assert [(w["values"], w["result"]) for w in sim.writes] == [([Command.CLOSE, 4], "ok")]


@pytest.mark.asyncio
async def test_a_stream_that_is_not_modbus_tcp_is_closed_and_others_keep_being_served(sim: SimSite, stream) -> None:
    reader, writer = stream
    writer.write(b"GET / HTTP/1.1\r\nHost: plc\r\n\r\n")
    assert await asyncio.wait_for(reader.read(64), ANSWER_WAIT_S) == b""  # closed, nothing answered
    other_reader, other_writer = await asyncio.open_connection("127.0.0.1", sim.port_of(LANE))
    try:
        other_writer.write(frame(5, READ_HEADER))
        assert await answer(other_reader) == (5, UNIT, HEADER)
    finally:
        other_writer.close()


@pytest.mark.asyncio
async def test_stopping_the_site_closes_its_client_connections(sim: SimSite, stream) -> None:
    reader, writer = stream
    writer.write(frame(6, READ_HEADER))
    assert await answer(reader) == (6, UNIT, HEADER)
    await sim.stop()
    assert await asyncio.wait_for(reader.read(64), ANSWER_WAIT_S) == b""
