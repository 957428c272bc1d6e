"""RTU wire timing: character time from baud, parity and stop bits; t3.5; the theoretical poll cycle."""

from __future__ import annotations

import time

import pytest

from hal.rtu import (
    PREPARE_MAX_S,
    REQUEST_BYTES_READ,
    SILENCE_ABOVE_19200_S,
    LineTiming,
    RtuTransport,
    read_reply_bytes,
    write_multiple_request_bytes,
)
from sim_plc.serial_server import silence_s as sim_silence_s


@pytest.mark.parametrize(
    ("baud", "cycle_ms"),
    [(9600, 54.2), (19200, 27.1), (115200, 7.41)],  # 16 registers: 8-byte request, 37-byte reply
)
def test_cycle_for_sixteen_registers_matches_the_hand_arithmetic(baud: int, cycle_ms: float) -> None:
    timing = LineTiming(baud)
    assert read_reply_bytes(16) == 37
    assert timing.cycle_s(REQUEST_BYTES_READ, read_reply_bytes(16)) * 1000 == pytest.approx(cycle_ms, abs=0.05)


def test_character_time_counts_start_data_parity_and_stop_bits() -> None:
    assert LineTiming(9600).bits_per_char == 10
    assert LineTiming(9600, "E").bits_per_char == 11
    assert LineTiming(9600, "N", 2).bits_per_char == 11
    assert LineTiming(9600, "O", 2).bits_per_char == 12
    assert LineTiming(19200, "E").char_s == pytest.approx(11 / 19200)


def test_silence_is_three_and_a_half_characters_up_to_19200_then_fixed() -> None:
    assert LineTiming(9600).silence_s == pytest.approx(3.5 * 10 / 9600)
    assert LineTiming(19200, "E").silence_s == pytest.approx(3.5 * 11 / 19200)
    assert LineTiming(38400).silence_s == SILENCE_ABOVE_19200_S == 0.00175
    assert LineTiming(115200).silence_s == 0.00175


@pytest.mark.parametrize("line", [(9600, "N", 1), (19200, "E", 1), (19200, "N", 2), (57600, "O", 1)])
def test_the_simulated_slave_keeps_the_same_silence_as_the_master(line: tuple[int, str, int]) -> None:
    assert sim_silence_s(*line) == pytest.approx(LineTiming(*line).silence_s)


def test_frame_sizes() -> None:
    assert read_reply_bytes(28) == 61  # header + one slot
    assert write_multiple_request_bytes(2) == 13  # COMMAND + COMMAND_SEQ


# ----- the silence before a request, kept in the send hook ----------------------------------------


@pytest.mark.asyncio
@pytest.mark.real_time("the silence is kept on the real monotonic clock, by a sleep of under a millisecond")
async def test_the_send_hook_waits_out_what_is_left_of_the_silence() -> None:
    transport = RtuTransport("line", "/dev/null-not-opened", baudrate=115200, timeout_s=0.1)
    silence = transport.timing.silence_s
    for _ in range(5):
        line_busy_at = time.monotonic() - silence + 0.0004  # the wait ended 0.4 ms early to prepare the request
        transport._last_activity = line_busy_at
        frame = b"\x01\x04\x00\x00\x00\x1c\x00\x00"
        assert transport._trace_packet(True, frame) == frame
        sent_at = time.monotonic()
        assert sent_at - line_busy_at >= silence
        assert transport._last_activity >= line_busy_at + silence + transport.timing.wire_s(len(frame))


@pytest.mark.asyncio
async def test_the_silence_wait_ends_early_by_at_most_the_preparation_bound() -> None:
    transport = RtuTransport("line", "/dev/null-not-opened", baudrate=115200, timeout_s=0.1)
    transport._last_activity = time.monotonic() - 1.0  # the line has long been quiet: nothing left to wait
    transport._woke_at = time.monotonic() - 0.5  # as if pymodbus took half a second to send
    transport._trace_packet(True, b"\x01")
    assert 0 < transport._prepare_s <= PREPARE_MAX_S
    assert transport._woke_at is None  # measured once per wait
