"""The panel benchmarks' arithmetic: matching changes to what a page showed, Modbus requests in captured frames,
the capture's BPF jumps, and the poll-interval figures."""

from __future__ import annotations

import struct

import pytest

from bench.panel_push import first_shown
from bench.poll_capture import JEQ_K, RET_K, interval_figures, intervals_ms, port_filter, read_requests


def test_each_change_is_matched_to_the_first_showing_of_its_value_before_the_next_change():
    changes = [(10.0, "local"), (11.0, "closed"), (12.0, "local")]
    shown = [(9.5, "local"),  # before the change: not its showing
             (10.004, "local"), (10.2, "local"),
             (11.5, "open"),  # another value; "closed" never shown before the next change
             (12.0, "local")]
    delays = first_shown(changes, shown)
    assert delays[0] == pytest.approx(0.004) and delays[1] is None and delays[2] == 0.0


def test_a_showing_after_the_next_change_does_not_count_for_the_earlier_one():
    assert first_shown([(1.0, "a"), (2.0, "b")], [(2.5, "a"), (2.1, "b")]) == [None, pytest.approx(0.1)]


def modbus(*pdus: bytes) -> bytes:
    """Modbus TCP requests (MBAP header + PDU) for unit 1, one after the other."""
    return b"".join(struct.pack(">HHHB", 7, 0, len(pdu) + 1, 1) + pdu for pdu in pdus)


def frame(dst_port: int, payload: bytes, ip_options: bytes = b"") -> bytes:
    """An Ethernet + IPv4 + TCP frame (no TCP options) carrying `payload`."""
    ip = bytes([0x45 + len(ip_options) // 4]) + bytes(8) + bytes([6]) + bytes(10) + ip_options
    tcp = struct.pack(">HH", 50000, dst_port) + bytes(8) + bytes([0x50]) + bytes(7)
    return bytes(12) + struct.pack(">H", 0x0800) + ip + tcp + payload


def test_modbus_requests_are_read_from_a_captured_frame():
    read_header = struct.pack(">BHH", 4, 0, 64)
    heartbeat = struct.pack(">BHH", 6, 3, 17)
    assert list(read_requests(frame(15020, modbus(read_header, heartbeat)))) == [(15020, 4, 0), (15020, 6, 3)]
    second_block = modbus(struct.pack(">BHH", 4, 64, 8))
    assert list(read_requests(frame(15021, second_block, ip_options=bytes(4)))) == [(15021, 4, 64)]


def test_frames_that_are_not_modbus_tcp_requests_give_nothing():
    poll = modbus(struct.pack(">BHH", 4, 0, 1))
    assert list(read_requests(frame(15020, b""))) == []  # a bare ACK
    not_ipv4 = bytearray(frame(15020, poll))
    not_ipv4[12:14] = b"\x86\xdd"
    assert list(read_requests(bytes(not_ipv4))) == []
    udp = bytearray(frame(15020, poll))
    udp[14 + 9] = 17
    assert list(read_requests(bytes(udp))) == []
    assert list(read_requests(frame(8080, b"GET /api/live HTTP/1.1\r\n"))) == []  # protocol id is not 0


def test_the_capture_filter_jumps_to_accept_on_each_port_and_to_reject_otherwise():
    ports = [15020, 15021, 15022]
    program = port_filter(ports)
    reject, accept = len(program) - 2, len(program) - 1
    assert program[reject] == (RET_K, 0, 0, 0) and program[accept][0] == RET_K and program[accept][3] > 0
    for i, (code, jt, jf, k) in enumerate(program):
        if code != JEQ_K:
            continue
        if k in ports:
            assert (i + 1 + jt, jf) == (accept, 0)
        else:  # the packet type, IPv4 and TCP checks
            assert (jt, i + 1 + jf) == (0, reject)
    assert [k for code, _, _, k in program if code == JEQ_K][-3:] == ports


def test_intervals_are_per_plc_within_the_window_and_figures_measure_from_the_period():
    times = {1: [0.95, 1.0, 1.1, 1.2, 1.5, 2.6], 2: [1.05, 1.15]}
    gaps = intervals_ms(times, since=1.0, until=2.0)
    assert sorted(round(g, 6) for g in gaps) == [100.0, 100.0, 100.0, 300.0]
    figures = interval_figures(gaps, 100)
    assert figures["intervals"] == 4 and figures["interval_p50_ms"] == 100.0 and figures["interval_max_ms"] == 300.0
    assert figures["deviation_p50_ms"] == 0.0 and figures["deviation_max_ms"] == 200.0
    assert figures["interval_p99_ms"] == pytest.approx(294.0)
