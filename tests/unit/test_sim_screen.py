"""sim_plc.screen: which requests the profile refuses, with which code, and which TCP streams are not Modbus."""

from __future__ import annotations

import asyncio
import struct

import pytest
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ExceptionResponse
from pymodbus.pdu.register_message import ReadInputRegistersRequest, WriteMultipleRegistersRequest

from sim_plc.screen import RefusedRequest, ScreeningDecoder, not_modbus_tcp, screen_unit


@pytest.fixture
def decoder() -> ScreeningDecoder:
    return ScreeningDecoder()


def refusal(pdu: object) -> tuple[int, int]:
    assert isinstance(pdu, RefusedRequest), pdu
    return pdu.function_code, int(pdu.code)


def test_profile_requests_decode_as_pymodbus_decodes_them(decoder: ScreeningDecoder) -> None:
    read = decoder.decode(struct.pack(">BHH", 4, 16, 12))
    assert isinstance(read, ReadInputRegistersRequest) and (read.address, read.count) == (16, 12)
    write = decoder.decode(struct.pack(">BHHBHH", 16, 16, 2, 4, 3, 9))
    assert isinstance(write, WriteMultipleRegistersRequest) and list(write.registers) == [3, 9]


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (bytes.fromhex("0800001234"), (8, ExcCodes.ILLEGAL_FUNCTION)),  # diagnostics: not in the profile
        (bytes.fromhex("2b0e0100"), (0x2B, ExcCodes.ILLEGAL_FUNCTION)),  # device identification
        (bytes.fromhex("1700000001000000010200"), (23, ExcCodes.ILLEGAL_FUNCTION)),  # read/write multiple
        (bytes.fromhex("41"), (0x41, ExcCodes.ILLEGAL_FUNCTION)),  # no such function code
        (bytes.fromhex("00"), (0, ExcCodes.ILLEGAL_FUNCTION)),
        (bytes.fromhex("8302"), (3, ExcCodes.ILLEGAL_FUNCTION)),  # an exception reply sent as a request
        (bytes.fromhex("ff"), (0x7F, ExcCodes.ILLEGAL_FUNCTION)),
        (struct.pack(">BHH", 3, 0, 0), (3, ExcCodes.ILLEGAL_VALUE)),  # count 0
        (struct.pack(">BHH", 4, 0, 126), (4, ExcCodes.ILLEGAL_VALUE)),  # count above 125
        (bytes.fromhex("0600"), (6, ExcCodes.ILLEGAL_VALUE)),  # a body too short
        (bytes.fromhex("10"), (16, ExcCodes.ILLEGAL_VALUE)),
    ],
)
def test_what_the_profile_does_not_serve_decodes_to_a_refusal(
    decoder: ScreeningDecoder, frame: bytes, expected: tuple[int, int]
) -> None:
    assert refusal(decoder.decode(frame)) == expected


def test_a_refusal_is_answered_with_its_function_code_and_exception_code() -> None:
    reply = asyncio.run(RefusedRequest(0x83, ExcCodes.ILLEGAL_FUNCTION, 1, 77).datastore_update(None, 1))
    assert isinstance(reply, ExceptionResponse)
    assert (reply.function_code, reply.exception_code, reply.dev_id, reply.transaction_id) == (0x83, 1, 1, 77)


def test_another_unit_id_is_refused_with_0x04_over_tcp_and_dropped_over_rtu(decoder: ScreeningDecoder) -> None:
    request = decoder.decode(struct.pack(">BHH", 4, 0, 1))
    request.dev_id, request.transaction_id = 2, 9
    assert screen_unit(request, {2, 3}, answer_foreign=True) is request
    foreign = screen_unit(request, {1}, answer_foreign=True)
    assert refusal(foreign) == (4, ExcCodes.DEVICE_FAILURE) and (foreign.dev_id, foreign.transaction_id) == (2, 9)
    assert screen_unit(request, {1}, answer_foreign=False) is None


@pytest.mark.parametrize(
    ("stream", "fault"),
    [
        (bytes.fromhex("0001000000060104000000"), None),
        (bytes.fromhex("0001"), None),  # too short to tell yet
        (bytes.fromhex("000100000006"), None),
        (bytes.fromhex("00014242000601"), "protocol id 16962"),
        (bytes.fromhex("000100000000"), "MBAP length 0"),
        (bytes.fromhex("000100000001"), "MBAP length 1"),
        (bytes.fromhex("000100000002"), None),
        (bytes.fromhex("0001000000fe"), None),  # 254: the unit id and a PDU of 253 bytes
        (bytes.fromhex("0001000000ff"), "MBAP length 255"),
        (b"GET / HTTP/1.1\r\n", "protocol id 21536"),
    ],
)
def test_a_stream_that_cannot_be_modbus_tcp_is_named(stream: bytes, fault: str | None) -> None:
    assert not_modbus_tcp(stream) == fault
