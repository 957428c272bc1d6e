"""What a PLC is sent that the profile refuses: foreign unit ids, unserved function codes, undecodable frames, non-Modbus streams.

pymodbus would otherwise turn each of these into a logged traceback or an error with a frame dump:
a foreign unit id raises KeyError in its simulator, an exception-style function code (0x80 and up)
has no handler, a frame it cannot decode is answered with function code 0x80, and a TCP stream that
is not Modbus TCP is logged on every read while the connection hangs. Here every request frame
decodes to a PDU, and what the profile refuses decodes (or is screened) to a RefusedRequest, which
pymodbus serves like any request: its answer is one exception reply with the request's function
code. A TCP connection whose bytes cannot be Modbus TCP is closed with one log line.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Collection
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler

from sim_plc.device import FC_BITS, FC_READ_HOLDING, FC_READ_INPUT, FC_WRITE_MULTIPLE, FC_WRITE_SINGLE

# Function codes handed to the datastore, which decides (sim_plc.device): registers by the profile,
# bits always 0x02 (the profile has none). Every other function code is answered 0x01.
SERVED_FUNCTION_CODES = frozenset({FC_READ_HOLDING, FC_READ_INPUT, FC_WRITE_SINGLE, FC_WRITE_MULTIPLE, *FC_BITS})
MBAP_LENGTHS = range(2, 255)  # MBAP length field: the unit id and a PDU of 1..253 bytes

log = logging.getLogger(__name__)


class RefusedRequest(ModbusPDU):
    """A request answered with one Modbus exception code and nothing else."""

    def __init__(self, function_code: int, code: ExcCodes, dev_id: int = 0, transaction_id: int = 0) -> None:
        super().__init__(dev_id=dev_id, transaction_id=transaction_id)
        self.function_code = function_code & 0x7F
        self.code = code

    async def datastore_update(self, context: ModbusServerContext, device_id: int) -> ModbusPDU:
        _ = context
        return ExceptionResponse(self.function_code, self.code, device_id=device_id, transaction=self.transaction_id)

    def __str__(self) -> str:
        return f"RefusedRequest(dev_id={self.dev_id}, function_code={self.function_code}, code={int(self.code)})"


class ScreeningDecoder(DecodePDU):
    """A server decoder under which every request frame becomes a PDU, so pymodbus never answers with
    function code 0x80 or logs a decoding failure: unserved function codes → 0x01, a served one whose
    body does not decode (a count of 0 or above the maximum, a short body) → 0x03."""

    def __init__(self) -> None:
        super().__init__(is_server=True)

    def decode(self, frame: bytes) -> ModbusPDU | None:
        if not frame:
            return None
        function_code = frame[0]
        request_class = self.pdu_table.get(function_code, (None, None))[0]
        if function_code not in SERVED_FUNCTION_CODES or request_class is None:
            return RefusedRequest(function_code, ExcCodes.ILLEGAL_FUNCTION)
        request = request_class()
        try:
            request.decode(frame[1:])
        except (ValueError, IndexError, struct.error):
            return RefusedRequest(function_code, ExcCodes.ILLEGAL_VALUE)
        return request


def screen_unit(request: ModbusPDU, units: Collection[int], *, answer_foreign: bool) -> ModbusPDU | None:
    """The request itself if its unit id is served here. Otherwise, over TCP (answer_foreign) a
    refusal with 0x04, as a PLC without that unit answers; over a serial line None (silence)."""
    if request.dev_id in units:
        return request
    if not answer_foreign:
        return None
    return RefusedRequest(request.function_code, ExcCodes.DEVICE_FAILURE, request.dev_id, request.transaction_id)


def not_modbus_tcp(stream: bytes) -> str | None:
    """Why the head of a TCP byte stream cannot be a Modbus TCP frame, or None if it can be."""
    if len(stream) >= 4 and (protocol_id := int.from_bytes(stream[2:4], "big")) != 0:
        return f"protocol id {protocol_id}"
    if len(stream) >= 6 and (length := int.from_bytes(stream[4:6], "big")) not in MBAP_LENGTHS:
        return f"MBAP length {length}"
    return None


class TcpStreamHandler(ServerRequestHandler):
    """One client connection: closed, with one warning naming the PLC and the peer, as soon as its
    bytes cannot be Modbus TCP (pymodbus would keep them and log an error on every read). An answer
    whose client has gone is not sent (pymodbus would log that as an error)."""

    plc_name = ""

    def callback_data(self, data: bytes, addr: tuple | None = None) -> int:
        if (fault := not_modbus_tcp(data)) is None:
            return super().callback_data(data, addr)
        peer = self.transport.get_extra_info("peername") if self.transport else None
        log.warning("PLC %s: closed the connection from %s: not Modbus TCP (%s)", self.plc_name, peer, fault)
        self.close()
        return len(data)

    def server_send(self, pdu: ModbusPDU | None, addr: tuple | None) -> None:
        if self.transport is not None:
            super().server_send(pdu, addr)


class ScreenedTcpServer(ModbusTcpServer):
    """A ModbusTcpServer for PLC `plc_name` whose requests decode with ScreeningDecoder and whose
    connections are TcpStreamHandlers."""

    def __init__(self, *args: Any, plc_name: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.decoder = ScreeningDecoder()  # read by each connection's framer when it is made
        self.plc_name = plc_name

    def callback_new_connection(self) -> ServerRequestHandler:
        handler = TcpStreamHandler(self, self.trace_packet, self.trace_pdu, self.trace_connect)
        handler.plc_name = self.plc_name
        return handler
