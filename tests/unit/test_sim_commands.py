"""Simulated PLC command handling on a fake clock: handshake, precedence, watchdog, ESTOP, RESET, faults."""

from __future__ import annotations

import pytest

from hal.profile import (
    POSITION_CLOSED,
    POSITION_OPEN,
    AckResult,
    Command,
    FaultCode,
    HeaderHolding,
    HeaderInput,
    Kind,
    PlcStatus,
    SignalCommand,
    SignalStatus,
    SlotInput,
    Status,
    slot_base,
)
from sim_plc.errors import FaultError
from sim_plc.testing import BLOCKER, GATE, SIGNAL, lane_rig

MOVING = Status.MOVING_OPEN | Status.MOVING_CLOSE


lane = lane_rig


# ---- handshake ----------------------------------------------------------------------------------
def test_a_command_is_acted_on_once_per_new_sequence_number() -> None:
    rig = lane()
    seq = rig.send(GATE, Command.OPEN)
    assert rig.reg(GATE, SlotInput.ACK_SEQ) == 0  # nothing before the scan
    rig.plc.scan()
    assert rig.reg(GATE, SlotInput.ACK_SEQ) == seq
    assert rig.reg(GATE, SlotInput.ACK_RESULT) == AckResult.ACCEPTED
    rig.command(GATE, Command.STOP)
    stopped_at = rig.position(GATE)
    # rewriting OPEN with the old sequence number must not restart travel
    rig.plc.write_holding(slot_base(GATE), [Command.OPEN, rig.seq])
    rig.run(1.0)
    assert rig.position(GATE) == stopped_at
    assert not rig.status(GATE) & MOVING


def test_command_none_with_a_new_sequence_is_acknowledged_and_does_nothing() -> None:
    rig = lane()
    before = rig.status(GATE)
    assert rig.command(GATE, Command.NONE) == AckResult.ACCEPTED
    rig.run(0.5)
    assert rig.status(GATE) == before
    assert rig.position(GATE) == POSITION_CLOSED


@pytest.mark.parametrize(
    ("slot", "command"),
    [(GATE, Command.EFO), (GATE, 6), (GATE, 0xFFFF), (BLOCKER, 9), (SIGNAL, Command.STOP), (SIGNAL, Command.EFO)],
)
def test_invalid_commands_get_result_4_and_change_nothing(slot: int, command: int) -> None:
    rig = lane()
    rig.run(0.1)
    before = rig.plc.read_input(slot_base(slot), 3)
    assert rig.command(slot, command) == AckResult.REJECTED_INVALID
    rig.run(0.5)
    assert rig.plc.read_input(slot_base(slot), 3) == before


# ---- power-up and watchdog ------------------------------------------------------------------------
def test_power_up_state() -> None:
    rig = lane()
    assert rig.header(HeaderInput.PLC_HEARTBEAT) == 0
    assert rig.plc.read_holding(HeaderHolding.SUPERVISOR_HEARTBEAT, 2) == [0, 3000]
    for slot in (GATE, BLOCKER, SIGNAL):
        assert rig.plc.read_holding(slot_base(slot), 2) == [0, 0]
        assert rig.reg(slot, SlotInput.ACK_SEQ) == 0
        assert rig.reg(slot, SlotInput.FAULT_CODE) == 0
        assert rig.reg(slot, SlotInput.LAST_TRAVEL_MS) == 0
        assert rig.cycle_count(slot) == 0
    assert rig.status(GATE) == Status.AT_CLOSED | Status.LOCKED
    assert rig.status(BLOCKER) == Status.AT_CLOSED
    assert rig.status(SIGNAL) == SignalStatus.RED
    assert rig.position(GATE) == rig.position(BLOCKER) == POSITION_CLOSED
    rig.run(1.0)
    assert rig.position(GATE) == rig.position(BLOCKER) == POSITION_CLOSED
    assert rig.header(HeaderInput.PLC_HEARTBEAT) == 100


def test_power_up_at_a_given_position() -> None:
    rig = lane(gate=POSITION_OPEN, blocker=400)
    assert rig.status(GATE) == Status.AT_OPEN
    assert rig.status(BLOCKER) == 0
    assert rig.position(BLOCKER) == 400


def test_watchdog_expires_after_3_s_at_power_up_without_a_supervisor() -> None:
    rig = lane()
    rig.feed_heartbeat = False
    rig.run(2.98)
    assert not rig.plc_status() & PlcStatus.WATCHDOG_EXPIRED
    rig.run(0.03)
    assert rig.plc_status() & PlcStatus.WATCHDOG_EXPIRED


def test_watchdog_fails_secure_and_clears_on_a_new_heartbeat() -> None:
    rig = lane(blocker=POSITION_OPEN)
    rig.plc.write_holding(HeaderHolding.WATCHDOG_TIMEOUT_MS, [500])
    rig.command(SIGNAL, SignalCommand.GREEN)
    rig.command(GATE, Command.OPEN)
    rig.command(BLOCKER, Command.CLOSE)
    rig.feed_heartbeat = False
    rig.run(0.48)
    assert not rig.plc_status() & PlcStatus.WATCHDOG_EXPIRED
    assert rig.has(SIGNAL, SignalStatus.GREEN)
    rig.run(0.03)
    assert rig.plc_status() & PlcStatus.WATCHDOG_EXPIRED
    assert not rig.status(GATE) & MOVING  # opening stops and holds
    gate_at = rig.position(GATE)
    assert 800 < gate_at < 900
    assert rig.has(BLOCKER, Status.MOVING_CLOSE)  # closing continues
    assert rig.status(SIGNAL) & (SignalStatus.GREEN | SignalStatus.RED) == SignalStatus.RED
    for slot, command in ((GATE, Command.OPEN), (GATE, Command.STOP), (BLOCKER, Command.RESET), (SIGNAL, 1)):
        assert rig.command(slot, command) == AckResult.REJECTED_WATCHDOG
    rig.run_until(lambda: rig.has(BLOCKER, Status.AT_CLOSED), timeout=6.0)
    assert rig.position(GATE) == gate_at
    rig.beat()  # the supervisor is back
    rig.step()
    assert not rig.plc_status() & PlcStatus.WATCHDOG_EXPIRED
    assert rig.has(SIGNAL, SignalStatus.RED)  # stays RED until commanded
    assert rig.command(GATE, Command.OPEN) == AckResult.ACCEPTED


def test_rewriting_the_same_heartbeat_does_not_feed_the_watchdog() -> None:
    rig = lane()
    rig.plc.write_holding(HeaderHolding.WATCHDOG_TIMEOUT_MS, [200])
    rig.feed_heartbeat = False
    for _ in range(25):
        rig.plc.write_holding(HeaderHolding.SUPERVISOR_HEARTBEAT, [42])
        rig.step()
    assert rig.plc_status() & PlcStatus.WATCHDOG_EXPIRED


def test_watchdog_zero_is_off() -> None:
    rig = lane()
    rig.plc.write_holding(HeaderHolding.WATCHDOG_TIMEOUT_MS, [0])
    rig.feed_heartbeat = False
    rig.run(70.0)
    assert not rig.plc_status() & PlcStatus.WATCHDOG_EXPIRED
    assert rig.command(GATE, Command.OPEN) == AckResult.ACCEPTED


def test_efo_is_accepted_even_while_the_watchdog_has_expired() -> None:
    rig = lane(blocker=POSITION_OPEN)
    rig.feed_heartbeat = False
    rig.run(3.01)
    assert rig.plc_status() & PlcStatus.WATCHDOG_EXPIRED
    assert rig.command(BLOCKER, Command.EFO) == AckResult.ACCEPTED
    rig.run(1.51)
    assert rig.has(BLOCKER, Status.AT_CLOSED | Status.EFO_ACTIVE)


# ---- emergency stop, local control --------------------------------------------------------------
def test_estop_stops_all_travel_and_rejects_every_command() -> None:
    rig = lane(blocker=POSITION_OPEN)
    rig.command(GATE, Command.OPEN)
    rig.command(BLOCKER, Command.CLOSE)
    rig.run(1.0)
    rig.plc.inject("estop")
    rig.step()
    assert rig.plc_status() & PlcStatus.ESTOP
    assert not rig.status(GATE) & MOVING
    assert not rig.status(BLOCKER) & MOVING
    positions = rig.position(GATE), rig.position(BLOCKER)
    for slot, command in ((GATE, Command.OPEN), (GATE, Command.RESET), (BLOCKER, Command.EFO), (SIGNAL, 1)):
        assert rig.command(slot, command) == AckResult.REJECTED_ESTOP
    rig.run(1.0)
    assert (rig.position(GATE), rig.position(BLOCKER)) == positions
    rig.plc.inject("estop", active=False)
    rig.run(1.0)
    assert (rig.position(GATE), rig.position(BLOCKER)) == positions  # nothing resumes by itself
    assert not rig.plc_status() & PlcStatus.ESTOP
    assert rig.command(GATE, Command.OPEN) == AckResult.ACCEPTED


def test_local_key_switch_rejects_commands_with_result_1() -> None:
    rig = lane(blocker=POSITION_OPEN)
    rig.plc.inject("local", BLOCKER)
    rig.step()
    assert rig.has(BLOCKER, Status.LOCAL)
    assert rig.command(BLOCKER, Command.CLOSE) == AckResult.REJECTED_LOCAL
    assert rig.command(BLOCKER, Command.EFO) == AckResult.REJECTED_LOCAL
    assert rig.command(GATE, Command.OPEN) == AckResult.ACCEPTED


def test_local_panel_puts_every_slot_under_local_control() -> None:
    rig = lane()
    rig.plc.inject("local_panel")
    rig.step()
    assert rig.plc_status() & PlcStatus.LOCAL_PANEL
    assert rig.has(GATE, Status.LOCAL) and rig.has(BLOCKER, Status.LOCAL)
    assert rig.has(SIGNAL, SignalStatus.LOCAL)
    assert rig.command(SIGNAL, SignalCommand.GREEN) == AckResult.REJECTED_LOCAL
    assert rig.command(GATE, Command.OPEN) == AckResult.REJECTED_LOCAL


def test_plc_status_bits_for_mains_and_tamper() -> None:
    rig = lane()
    rig.plc.inject("mains_fail")
    rig.plc.inject("cabinet_tamper")
    rig.step()
    assert rig.plc_status() == PlcStatus.MAINS_FAIL | PlcStatus.CABINET_TAMPER
    rig.plc.inject("mains_fail", active=False)
    rig.step()
    assert rig.plc_status() == PlcStatus.CABINET_TAMPER


# ---- faults and RESET ---------------------------------------------------------------------------
def test_drive_fault_latches_and_reset_clears_it_only_once_the_cause_is_gone() -> None:
    rig = lane()
    rig.command(GATE, Command.OPEN)
    rig.run(0.5)
    rig.plc.inject("drive_fault", GATE, code=FaultCode.DRIVE_OVER_TEMPERATURE)
    rig.step()
    assert rig.has(GATE, Status.DRIVE_FAULT)
    assert not rig.status(GATE) & MOVING
    assert rig.reg(GATE, SlotInput.FAULT_CODE) == FaultCode.DRIVE_OVER_TEMPERATURE
    assert rig.command(GATE, Command.OPEN) == AckResult.REJECTED_FAULT
    assert rig.command(GATE, Command.STOP) == AckResult.REJECTED_FAULT
    assert rig.command(GATE, Command.RESET) == AckResult.ACCEPTED
    assert rig.has(GATE, Status.DRIVE_FAULT)  # cause still present
    rig.plc.inject("drive_fault", GATE, active=False)
    rig.run(0.5)
    assert rig.has(GATE, Status.DRIVE_FAULT)  # latched
    position = rig.position(GATE)
    assert rig.command(GATE, Command.RESET) == AckResult.ACCEPTED
    assert not rig.has(GATE, Status.DRIVE_FAULT)
    assert rig.reg(GATE, SlotInput.FAULT_CODE) == FaultCode.NONE
    rig.run(0.5)
    assert rig.position(GATE) == position  # RESET moves nothing
    assert not rig.status(GATE) & MOVING


def test_fault_code_is_first_out() -> None:
    rig = lane()
    rig.plc.inject("drive_fault", BLOCKER)
    rig.step()
    rig.plc.inject("sensor_fault", BLOCKER)
    rig.step()
    assert rig.has(BLOCKER, Status.DRIVE_FAULT | Status.SENSOR_FAULT)
    assert rig.reg(BLOCKER, SlotInput.FAULT_CODE) == FaultCode.DRIVE_OVERLOAD
    rig.plc.inject("drive_fault", BLOCKER, active=False)
    rig.command(BLOCKER, Command.RESET)
    rig.step()
    assert not rig.has(BLOCKER, Status.DRIVE_FAULT)
    assert rig.reg(BLOCKER, SlotInput.FAULT_CODE) == FaultCode.SAFETY_SENSOR_FAULT


def test_signal_lamp_fault_latches_until_reset() -> None:
    rig = lane()
    rig.plc.inject("lamp_fault", SIGNAL)
    rig.step()
    assert rig.status(SIGNAL) == SignalStatus.LAMP_FAULT
    assert rig.reg(SIGNAL, SlotInput.FAULT_CODE) == FaultCode.LAMP_FAULT
    rig.command(SIGNAL, SignalCommand.RESET)
    assert rig.has(SIGNAL, SignalStatus.LAMP_FAULT)
    rig.plc.inject("lamp_fault", SIGNAL, active=False)
    rig.step()
    assert rig.status(SIGNAL) == SignalStatus.RED | SignalStatus.LAMP_FAULT
    assert rig.command(SIGNAL, SignalCommand.RESET) == AckResult.ACCEPTED
    assert rig.status(SIGNAL) == SignalStatus.RED
    assert rig.reg(SIGNAL, SlotInput.FAULT_CODE) == FaultCode.NONE


def test_signal_shows_exactly_one_aspect() -> None:
    rig = lane()
    assert rig.command(SIGNAL, SignalCommand.GREEN) == AckResult.ACCEPTED
    assert rig.status(SIGNAL) == SignalStatus.GREEN
    assert rig.command(SIGNAL, SignalCommand.RED) == AckResult.ACCEPTED
    assert rig.status(SIGNAL) == SignalStatus.RED
    assert rig.position(SIGNAL) == 0xFFFF


def test_frozen_logic_freezes_heartbeat_and_status_until_cleared() -> None:
    rig = lane()
    rig.step()
    rig.plc.inject("frozen_logic")
    heartbeat = rig.header(HeaderInput.PLC_HEARTBEAT)
    seq = rig.send(GATE, Command.OPEN)
    rig.run(5.0)
    assert rig.header(HeaderInput.PLC_HEARTBEAT) == heartbeat
    assert rig.reg(GATE, SlotInput.ACK_SEQ) != seq
    assert rig.plc.read_holding(slot_base(GATE), 2) == [Command.OPEN, seq]  # writes still land
    rig.plc.inject("frozen_logic", active=False)
    rig.step()
    assert rig.header(HeaderInput.PLC_HEARTBEAT) == (heartbeat + 1) & 0xFFFF
    assert rig.reg(GATE, SlotInput.ACK_SEQ) == seq
    assert rig.has(GATE, Status.MOVING_OPEN)
    assert not rig.plc_status() & PlcStatus.WATCHDOG_EXPIRED


def test_heartbeat_wraps_from_65535_to_0() -> None:
    rig = lane()
    rig.plc.heartbeat = 65534
    rig.step()
    assert rig.header(HeaderInput.PLC_HEARTBEAT) == 65535
    rig.step()
    assert rig.header(HeaderInput.PLC_HEARTBEAT) == 0
    rig.step()
    assert rig.header(HeaderInput.PLC_HEARTBEAT) == 1


@pytest.mark.parametrize(
    ("fault", "slot", "code", "message"),
    [
        ("no_such_fault", GATE, None, "unknown fault"),
        ("estop", GATE, None, "PLC-wide"),
        ("obstruction", None, None, "needs a slot"),
        ("obstruction", 7, None, "no slot 7"),
        ("lamp_fault", GATE, None, "traffic_signal"),
        ("low_pressure", GATE, None, "road_blocker"),
        ("obstruction", GATE, 3, "takes no code"),
        ("drive_fault", GATE, 99, "outside"),
    ],
)
def test_bad_fault_injections_are_refused_with_a_clear_message(
    fault: str, slot: int | None, code: int | None, message: str
) -> None:
    rig = lane()
    with pytest.raises(FaultError, match=message):
        rig.plc.inject(fault, slot, code=code)
    assert rig.plc.active_faults() == []


def test_active_faults_lists_what_is_on() -> None:
    rig = lane()
    rig.plc.inject("estop")
    rig.plc.inject("drive_fault", GATE, code=3)
    assert rig.plc.active_faults() == [
        {"plc": "test-plc", "fault": "estop", "slot": None, "code": None},
        {"plc": "test-plc", "fault": "drive_fault", "slot": GATE, "code": 3},
    ]
    rig.plc.inject("estop", active=False)
    rig.plc.inject("drive_fault", GATE, active=False)
    assert rig.plc.active_faults() == []
