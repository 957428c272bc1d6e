"""sim_plc.pdu: each request PDU's answer from a SimPlc, what the profile refuses and with which code, the write log."""

from __future__ import annotations

import struct

import pytest

from hal.profile import PROFILE_MAGIC, PROFILE_VERSION, WATCHDOG_POWER_UP_MS, Command, HeaderHolding, slot_base
from sim_plc.pdu import serve_pdu
from sim_plc.testing import lane_rig
from sim_plc.writelog import WriteLog


@pytest.fixture
def served() -> tuple:
    rig = lane_rig()
    rig.plc.scan()
    return rig.plc, WriteLog()


def answer(served: tuple, pdu: bytes) -> bytes:
    plc, write_log = served
    return serve_pdu(plc, write_log, pdu)


def test_reads_answer_the_registers_with_their_byte_count(served: tuple) -> None:
    assert answer(served, struct.pack(">BHH", 4, 0, 2)) == struct.pack(">BBHH", 4, 4, PROFILE_MAGIC, PROFILE_VERSION)
    assert answer(served, struct.pack(">BHH", 3, 0, 2)) == struct.pack(">BBHH", 3, 4, 0, WATCHDOG_POWER_UP_MS)
    assert answer(served, struct.pack(">BHH", 4, 0, 2) + b"\x01\x02") == answer(served, struct.pack(">BHH", 4, 0, 2))


def test_writes_are_applied_echoed_and_logged(served: tuple) -> None:
    plc, write_log = served
    base = slot_base(0)
    assert answer(served, struct.pack(">BHHBHH", 16, base, 2, 4, Command.OPEN, 9)) == struct.pack(">BHH", 16, base, 2)
    assert answer(served, struct.pack(">BHH", 6, HeaderHolding.WATCHDOG_TIMEOUT_MS, 0)) == struct.pack(">BHH", 6, 1, 0)
    assert plc.read_holding(base, 2) == [Command.OPEN, 9] and plc.watchdog_timeout_ms == 0
    assert [(e["fc"], e["address"], e["values"], e["result"]) for e in write_log.entries] == [
        (16, base, [Command.OPEN, 9], "ok"), (6, 1, [0], "ok")]


def test_fc6_echoes_the_register_as_read_back(served: tuple) -> None:
    plc, write_log = served
    plc.inject("watchdog_ignored")
    assert answer(served, struct.pack(">BHH", 6, HeaderHolding.WATCHDOG_TIMEOUT_MS, 500)) == struct.pack(
        ">BHH", 6, HeaderHolding.WATCHDOG_TIMEOUT_MS, WATCHDOG_POWER_UP_MS)
    assert write_log.entries[-1]["result"] == "ok"


@pytest.mark.parametrize(
    ("pdu", "expected"),
    [
        (bytes.fromhex("0800001234"), (0x88, 1)),  # diagnostics: not in the profile
        (bytes.fromhex("2b0e0100"), (0xAB, 1)),  # device identification
        (bytes.fromhex("1700000001000000010200"), (0x97, 1)),  # read/write multiple
        (bytes.fromhex("41"), (0xC1, 1)),  # no such function code
        (bytes.fromhex("00"), (0x80, 1)),
        (bytes.fromhex("8302"), (0x83, 1)),  # an exception reply sent as a request
        (bytes.fromhex("ff"), (0xFF, 1)),
        (struct.pack(">BHH", 1, 0, 1), (0x81, 2)),  # coils and discrete inputs: the profile has none
        (struct.pack(">BHH", 2, 0, 8), (0x82, 2)),
        (struct.pack(">BHH", 5, 0, 0xFF00), (0x85, 2)),
        (bytes.fromhex("0f"), (0x8F, 2)),
        (struct.pack(">BHH", 3, 0, 0), (0x83, 3)),  # count 0
        (struct.pack(">BHH", 4, 0, 126), (0x84, 3)),  # count above 125
        (bytes.fromhex("040000"), (0x84, 3)),  # a body too short
        (bytes.fromhex("0600"), (0x86, 3)),
        (bytes.fromhex("10"), (0x90, 3)),
        (struct.pack(">BHHB", 16, 16, 0, 0), (0x90, 3)),  # FC16 count 0
        (struct.pack(">BHHB", 16, 16, 124, 248) + bytes(248), (0x90, 3)),  # count above 123
        (struct.pack(">BHHBH", 16, 16, 1, 4, 1), (0x90, 3)),  # a byte count that is not twice the count
        (struct.pack(">BHHBHH", 16, 16, 1, 2, 1, 1), (0x90, 3)),  # more bytes than the byte count
        (struct.pack(">BHHBB", 16, 16, 1, 2, 1), (0x90, 3)),  # fewer
        (struct.pack(">BHH", 4, 0xFFFF, 2), (0x84, 2)),  # past the address space
        (struct.pack(">BHH", 4, 52, 1), (0x84, 2)),  # past the input block
        (struct.pack(">BHH", 3, slot_base(0) + 2, 1), (0x83, 2)),  # a holding register not in the map
        (struct.pack(">BHH", 6, 1, 50), (0x86, 3)),  # WATCHDOG_TIMEOUT_MS out of range
    ],
)
def test_what_the_profile_does_not_serve_is_refused(served: tuple, pdu: bytes, expected: tuple[int, int]) -> None:
    assert tuple(answer(served, pdu)) == expected


def test_only_writes_that_reach_the_plc_are_logged(served: tuple) -> None:
    _, write_log = served
    answer(served, struct.pack(">BHHBH", 16, 16, 1, 4, 1))  # malformed
    answer(served, struct.pack(">BHHBHH", 16, 0xFFFF, 2, 4, 1, 1))  # past the address space
    answer(served, struct.pack(">BHHBH", 16, slot_base(3), 1, 2, 1))  # a missing slot
    answer(served, struct.pack(">BHH", 6, 1, 50))
    assert [(e["address"], e["result"]) for e in write_log.entries] == [(slot_base(3), "exception 2"), (1, "exception 3")]


def test_comms_silence_keeps_writes_from_the_plc_and_logs_them_silenced(served: tuple) -> None:
    plc, write_log = served
    plc.inject("comms_silence")
    assert answer(served, struct.pack(">BHHBHH", 16, slot_base(0), 2, 4, Command.OPEN, 3)) == bytes([0x90, 4])
    assert plc.read_holding(slot_base(0), 2) == [0, 0]
    assert write_log.entries[-1]["result"] == "silenced"


def test_the_write_log_keeps_the_recent_entries_in_memory_on_a_long_run(monkeypatch):
    monkeypatch.setattr("sim_plc.writelog.KEPT_IN_MEMORY", 10)
    log = WriteLog()
    for i in range(25):
        log.record("plc-1", 1, 6, 0, [i], "ok")
    assert 10 <= len(log.entries) <= 20
    kept = [entry["values"][0] for entry in log.entries]
    assert kept == list(range(25 - len(kept), 25)), "the most recent, in order"
