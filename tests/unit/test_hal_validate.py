"""hal.validate: every FC3/FC4/FC6/FC16 reply is checked by the HAL itself, never trusted from pymodbus.

Replies are real pymodbus PDU objects (what the client hands back), built or decoded from bytes.
"""

from __future__ import annotations

import struct

import pytest
from pymodbus.pdu import ExceptionResponse
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
    WriteMultipleRegistersResponse,
    WriteSingleRegisterResponse,
)

from hal.errors import BadReplyError, CommsError, ExceptionReplyError
from hal.validate import check_read_reply, check_write_reply

WHAT = "read IR 0+3 unit 1"


def fc4(registers: list[int], unit: int = 1) -> ReadInputRegistersResponse:
    return ReadInputRegistersResponse(registers=registers, dev_id=unit)


def fc3(registers: list[int], unit: int = 1) -> ReadHoldingRegistersResponse:
    return ReadHoldingRegistersResponse(registers=registers, dev_id=unit)


def read(reply, *, function_code: int = 4, count: int = 3, unit: int = 1) -> list[int]:
    return check_read_reply(reply, function_code=function_code, count=count, unit=unit, what=WHAT)


# ----- reads ------------------------------------------------------------------------------------


def test_valid_fc4_reply_returns_its_registers():
    assert read(fc4([0x4250, 1, 0xFFFF])) == [0x4250, 1, 0xFFFF]


def test_valid_fc3_reply_returns_its_registers():
    assert read(fc3([3000]), function_code=3, count=1) == [3000]


def test_read_reply_returns_a_plain_list_not_the_pdu_sequence():
    reply = fc4([1, 2, 3])
    words = read(reply)
    assert type(words) is list
    words[0] = 99
    assert list(reply.registers) == [1, 2, 3]


@pytest.mark.parametrize(
    ("reply", "expected_fc"),
    [
        (fc3([1, 2, 3]), 4),  # FC3 answered to FC4
        (fc4([1, 2, 3]), 3),  # FC4 answered to FC3
    ],
    ids=["fc3-for-fc4", "fc4-for-fc3"],
)
def test_read_reply_with_wrong_function_code_is_rejected(reply, expected_fc):
    with pytest.raises(BadReplyError, match=f"function code {reply.function_code}, expected {expected_fc}"):
        read(reply, function_code=expected_fc)


@pytest.mark.parametrize("registers", [[], [1, 2], [1, 2, 3, 4]], ids=["none", "fewer", "more"])
def test_read_reply_with_wrong_register_count_is_rejected(registers):
    with pytest.raises(BadReplyError, match=f"{len(registers)} registers, expected 3"):
        read(fc4(registers))


@pytest.mark.parametrize("byte_count", [5, 7, 8, 0])
def test_read_reply_whose_byte_count_disagrees_with_the_count_is_rejected(byte_count):
    """The transport keeps the byte count pymodbus drops (an odd trailing byte is lost silently)."""
    reply = fc4([1, 2, 3])
    reply.byte_count = byte_count
    with pytest.raises(BadReplyError, match=f"byte count {byte_count}, expected 6"):
        read(reply)


def test_read_reply_with_consistent_byte_count_passes():
    reply = fc4([1, 2, 3])
    reply.byte_count = 6
    assert read(reply) == [1, 2, 3]


def test_read_reply_decoded_from_odd_byte_count_loses_a_byte_in_pymodbus():
    """Why the byte count check exists: pymodbus decodes 2n+1 bytes as n registers, no error."""
    pdu = ReadInputRegistersResponse()
    data = struct.pack(">HHH", 1, 2, 3) + b"\x07"
    pdu.decode(bytes([len(data)]) + data)
    assert list(pdu.registers) == [1, 2, 3]


@pytest.mark.parametrize("code", [0x01, 0x02, 0x03, 0x04, 0x06, 0x0B])
@pytest.mark.parametrize("function_code", [3, 4])
def test_exception_reply_to_a_read_raises_exception_reply_error_with_the_code(function_code, code):
    reply = ExceptionResponse(function_code, code, device_id=1)
    with pytest.raises(ExceptionReplyError) as info:
        read(reply, function_code=function_code)
    assert info.value.exception_code == code
    assert info.value.function_code == function_code
    assert f"exception 0x{code:02X}" in str(info.value)
    assert isinstance(info.value, CommsError)


def test_exception_reply_decoded_from_the_wire_keeps_its_code():
    from pymodbus.pdu import DecodePDU

    reply = DecodePDU(is_server=False).decode(bytes([0x84, 0x02]))
    with pytest.raises(ExceptionReplyError) as info:
        read(reply)
    assert info.value.exception_code == 0x02


def test_read_reply_from_another_unit_is_rejected():
    with pytest.raises(BadReplyError, match="unit 2, expected 1"):
        read(fc4([1, 2, 3], unit=2))


def test_no_reply_object_is_rejected():
    with pytest.raises(BadReplyError, match="no reply"):
        read(None)


def test_register_value_outside_16_bits_is_rejected():
    reply = fc4([1, 2, 3])
    reply.registers = [1, 0x10000, 3]
    with pytest.raises(BadReplyError, match="outside 16 bits"):
        read(reply)
    reply.registers = [1, -1, 3]
    with pytest.raises(BadReplyError, match="outside 16 bits"):
        read(reply)


def test_bad_reply_and_exception_reply_are_comms_errors():
    assert issubclass(BadReplyError, CommsError)
    assert issubclass(ExceptionReplyError, CommsError)


# ----- writes -----------------------------------------------------------------------------------


def fc6(address: int, value: int, unit: int = 1) -> WriteSingleRegisterResponse:
    return WriteSingleRegisterResponse(address=address, registers=[value], dev_id=unit)


def fc16(address: int, count: int, unit: int = 1) -> WriteMultipleRegistersResponse:
    return WriteMultipleRegistersResponse(address=address, count=count, dev_id=unit)


def write(reply, *, function_code: int, address: int, count: int, unit: int = 1) -> None:
    check_write_reply(reply, function_code=function_code, address=address, count=count, unit=unit, what="write")


def test_valid_write_replies_pass():
    write(fc6(1, 3000), function_code=6, address=1, count=1)
    write(fc16(16, 2), function_code=16, address=16, count=2)


@pytest.mark.parametrize(
    ("reply", "function_code"),
    [(fc16(1, 1), 6), (fc6(16, 2), 16)],
    ids=["fc16-for-fc6", "fc6-for-fc16"],
)
def test_write_reply_with_wrong_function_code_is_rejected(reply, function_code):
    with pytest.raises(BadReplyError, match="function code"):
        write(reply, function_code=function_code, address=reply.address, count=1 if function_code == 6 else 2)


@pytest.mark.parametrize("count", [1, 3, 0])
def test_fc16_reply_echoing_another_count_is_rejected(count):
    with pytest.raises(BadReplyError, match=f"echoes count {count}, expected 2"):
        write(fc16(16, count), function_code=16, address=16, count=2)


@pytest.mark.parametrize(("function_code", "reply"), [(6, fc6(0, 5)), (16, fc16(28, 2))])
def test_write_reply_echoing_another_address_is_rejected(function_code, reply):
    address = 1 if function_code == 6 else 16
    with pytest.raises(BadReplyError, match="echoes address"):
        write(reply, function_code=function_code, address=address, count=2)


@pytest.mark.parametrize("code", [0x02, 0x03, 0x04])
@pytest.mark.parametrize("function_code", [6, 16])
def test_exception_reply_to_a_write_raises_with_the_code(function_code, code):
    with pytest.raises(ExceptionReplyError) as info:
        write(ExceptionResponse(function_code, code), function_code=function_code, address=1, count=1)
    assert (info.value.function_code, info.value.exception_code) == (function_code, code)


@pytest.mark.parametrize(("function_code", "reply"), [(6, fc6(1, 5, unit=7)), (16, fc16(16, 2, unit=7))])
def test_write_reply_from_another_unit_is_rejected(function_code, reply):
    with pytest.raises(BadReplyError, match="unit 7, expected 1"):
        write(reply, function_code=function_code, address=reply.address, count=2)
