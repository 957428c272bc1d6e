"""Seeded mutated Modbus requests, framed for TCP (MBAP) or RTU (CRC), for fuzzing sim-plc."""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

from pymodbus.framer.rtu import FramerRTU

from hal.profile import (
    MAX_READ_REGISTERS,
    WATCHDOG_MIN_MS,
    HeaderHolding,
    HeaderInput,
    input_block_size,
    slot_base,
)


@dataclass(frozen=True)
class Request:
    unit: int
    pdu: bytes  # function code and body


def mbap(transaction: int, request: Request, length: int | None = None, protocol: int = 0) -> bytes:
    """A Modbus TCP frame; `length` overrides the MBAP length field (a lie), `protocol` its protocol id."""
    declared = len(request.pdu) + 1 if length is None else length
    return struct.pack(">HHHB", transaction & 0xFFFF, protocol, declared, request.unit) + request.pdu


def rtu(request: Request) -> bytes:
    """A Modbus RTU frame: unit, PDU, CRC."""
    body = bytes([request.unit]) + request.pdu
    return body + FramerRTU.compute_CRC(body).to_bytes(2, "big")


def read(fc: int, address: int, count: int) -> bytes:
    return struct.pack(">BHH", fc, address, count)


def write_single(address: int, value: int) -> bytes:
    return struct.pack(">BHH", 6, address, value)


def write_multiple(address: int, values: list[int]) -> bytes:
    return struct.pack(f">BHHB{len(values)}H", 16, address, len(values), 2 * len(values), *values)


class Mutator:
    """Valid requests (FC3/FC4/FC6/FC16 at valid and invalid addresses, several unit ids) and their
    mutations: bit flips, truncation, extra bytes, wrong unit ids, random function codes, random
    bodies, reply-style function codes, random bytes, and (TCP) MBAP length and protocol-id lies."""

    def __init__(self, seed: int, unit: int, slots: int) -> None:
        self.rng = random.Random(seed)
        self.unit = unit
        self.slots = slots

    def valid(self) -> Request:
        rng = self.rng
        unit = rng.choice([self.unit] * 4 + [0, self.unit + 1, 247, 255])
        block = input_block_size(self.slots)
        fc = rng.choice([3, 4, 6, 16])
        if fc == 4:
            address = rng.choice([0, HeaderInput.PLC_HEARTBEAT, block - 1, block, rng.randrange(0x10000)])
            pdu = read(4, address, rng.choice([1, 2, 16, MAX_READ_REGISTERS, MAX_READ_REGISTERS + 1, 0]))
        elif fc == 3:
            address = rng.choice([0, slot_base(0), slot_base(0) + 2, rng.randrange(0x10000)])
            pdu = read(3, address, rng.choice([1, 2, 3, 0]))
        elif fc == 6:
            address = rng.choice([HeaderHolding.SUPERVISOR_HEARTBEAT, HeaderHolding.WATCHDOG_TIMEOUT_MS, 2, 0xFFFF])
            value = rng.choice([0, WATCHDOG_MIN_MS - 1, WATCHDOG_MIN_MS, 3000, 60001, rng.randrange(0x10000)])
            pdu = write_single(address, value)
        else:
            address = rng.choice([0, slot_base(0), slot_base(self.slots), rng.randrange(0x10000)])
            pdu = write_multiple(address, [self.rng.randrange(0x10000) for _ in range(rng.choice([1, 2, 3]))])
        return Request(unit, pdu)

    def mutated_request(self) -> Request:
        """A request whose framing will be sound but whose content may not be."""
        rng = self.rng
        request = self.valid()
        choice = rng.randrange(7)
        pdu = bytearray(request.pdu)
        if choice == 1:  # a bit flipped in the PDU
            index = rng.randrange(len(pdu))
            pdu[index] ^= 1 << rng.randrange(8)
        elif choice == 2:  # a truncated body
            pdu = pdu[: rng.randrange(1, len(pdu))]
        elif choice == 3:  # trailing bytes
            pdu += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 6)))
        elif choice == 4:  # a random function code, body kept
            pdu[0] = rng.randrange(256)
        elif choice == 5:  # a reply-style (exception) function code with one byte
            pdu = bytearray([pdu[0] | 0x80, rng.randrange(256)])
        elif choice == 6:  # any unit id
            return Request(rng.randrange(256), bytes(pdu))
        return Request(request.unit, bytes(pdu))

    def tcp_frame(self, transaction: int) -> tuple[bytes, bool]:
        """(frame, well_framed): well_framed when the MBAP header is true to the bytes that follow."""
        rng = self.rng
        request = self.mutated_request()
        choice = rng.randrange(10)
        if choice == 0:  # a truncated frame
            frame = mbap(transaction, request)
            return frame[: rng.randrange(1, len(frame))], False
        if choice == 1:  # an MBAP length lie
            return mbap(transaction, request, length=rng.choice([0, 1, len(request.pdu), rng.randrange(300)])), False
        if choice == 2:  # not Modbus TCP: a protocol id, or random bytes
            if rng.random() < 0.5:
                return mbap(transaction, request, protocol=rng.randrange(1, 0x10000)), False
            return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 24))), False
        if choice == 3:  # a bit flipped anywhere in the frame
            frame = bytearray(mbap(transaction, request))
            index = rng.randrange(len(frame))
            frame[index] ^= 1 << rng.randrange(8)
            return bytes(frame), index >= 6
        return mbap(transaction, request), True

    def rtu_frame(self) -> bytes:
        rng = self.rng
        request = self.mutated_request()
        frame = bytearray(rtu(request))
        choice = rng.randrange(8)
        if choice == 0:  # a truncated frame
            return bytes(frame[: rng.randrange(1, len(frame))])
        if choice == 1:  # a bit flipped anywhere (the CRC then fails, or the CRC itself was hit)
            index = rng.randrange(len(frame))
            frame[index] ^= 1 << rng.randrange(8)
        elif choice == 2:  # random bytes
            return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 24)))
        return bytes(frame)
