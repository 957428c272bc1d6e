"""Simulated PLC motion on a fake clock: travel times, limits, reversal, EFO, interlocks, max run, lock."""

from __future__ import annotations

import pytest

from hal.profile import (
    POSITION_CLOSED,
    POSITION_OPEN,
    AckResult,
    Command,
    FaultCode,
    Kind,
    SlotInput,
    Status,
    slot_base,
)
from sim_plc.errors import FaultError
from sim_plc.testing import PlcRig

GATE, BLOCKER, SIGNAL = 0, 1, 2  # slots of the lane PLC
MOVING = Status.MOVING_OPEN | Status.MOVING_CLOSE


def lane(**positions: int) -> PlcRig:
    slots = {"gate": GATE, "blocker": BLOCKER}
    return PlcRig(
        [Kind.FOLDING_GATE, Kind.ROAD_BLOCKER, Kind.TRAFFIC_SIGNAL],
        positions={slots[name]: pos for name, pos in positions.items()},
    )


@pytest.mark.parametrize(
    ("kind", "travel_s"),
    [(Kind.FOLDING_GATE, 3.0), (Kind.BOOM_BARRIER, 2.0), (Kind.ROAD_BLOCKER, 6.0)],
)
def test_opening_takes_the_nominal_travel_time(kind: Kind, travel_s: float) -> None:
    rig = PlcRig([kind])
    assert rig.command(0, Command.OPEN) == AckResult.ACCEPTED
    rig.run(travel_s - 0.1)
    assert not rig.has(0, Status.AT_OPEN)
    assert rig.has(0, Status.MOVING_OPEN)
    assert rig.position(0) == pytest.approx(1000 * 0.1 / travel_s, abs=2)
    rig.run(0.1 + rig.scan_s)
    assert rig.has(0, Status.AT_OPEN)
    assert not rig.status(0) & (MOVING | Status.AT_CLOSED)
    assert rig.position(0) == POSITION_OPEN
    assert rig.reg(0, SlotInput.LAST_TRAVEL_MS) == pytest.approx(travel_s * 1000, abs=1)
    assert rig.cycle_count(0) == 1


@pytest.mark.parametrize(
    ("kind", "travel_s"),
    [(Kind.FOLDING_GATE, 3.0), (Kind.BOOM_BARRIER, 2.0), (Kind.ROAD_BLOCKER, 6.0)],
)
def test_closing_is_linear_and_ends_at_the_closed_limit(kind: Kind, travel_s: float) -> None:
    rig = PlcRig([kind], positions={0: POSITION_OPEN})
    assert rig.command(0, Command.CLOSE) == AckResult.ACCEPTED
    rig.run(travel_s / 2)
    assert rig.position(0) == pytest.approx(500, abs=3)
    assert rig.has(0, Status.MOVING_CLOSE)
    assert not rig.status(0) & (Status.AT_OPEN | Status.AT_CLOSED)
    rig.run(travel_s / 2 - 0.05)
    assert not rig.has(0, Status.AT_CLOSED)
    rig.run(0.05 + rig.scan_s)
    assert rig.has(0, Status.AT_CLOSED)
    assert rig.position(0) == POSITION_CLOSED
    assert rig.reg(0, SlotInput.LAST_TRAVEL_MS) == pytest.approx(travel_s * 1000, abs=1)


def test_command_toward_other_limit_reverses_and_stop_halts() -> None:
    rig = lane(gate=POSITION_OPEN)
    rig.command(GATE, Command.CLOSE)
    rig.run(1.5)
    assert rig.position(GATE) == pytest.approx(500, abs=3)
    assert rig.command(GATE, Command.OPEN) == AckResult.ACCEPTED
    assert rig.has(GATE, Status.MOVING_OPEN)
    rig.run(1.0)
    assert rig.position(GATE) == pytest.approx(167, abs=3)
    assert rig.command(GATE, Command.STOP) == AckResult.ACCEPTED
    stopped_at = rig.position(GATE)
    rig.run(2.0)
    assert rig.position(GATE) == stopped_at
    assert not rig.status(GATE) & (MOVING | Status.AT_OPEN | Status.AT_CLOSED)


def test_command_toward_the_current_limit_is_accepted_and_moves_nothing() -> None:
    rig = lane()
    assert rig.command(BLOCKER, Command.CLOSE) == AckResult.ACCEPTED
    rig.run(0.5)
    assert rig.position(BLOCKER) == POSITION_CLOSED
    assert not rig.status(BLOCKER) & MOVING
    assert rig.cycle_count(BLOCKER) == 0


def test_efo_raises_a_blocker_in_1_5_s_even_with_a_vehicle_present() -> None:
    rig = lane(blocker=POSITION_OPEN)
    rig.plc.inject("vehicle_present", BLOCKER)
    assert rig.command(BLOCKER, Command.EFO) == AckResult.ACCEPTED
    assert rig.has(BLOCKER, Status.EFO_ACTIVE | Status.MOVING_CLOSE | Status.VEHICLE_PRESENT)
    rig.run(1.4)
    assert not rig.has(BLOCKER, Status.AT_CLOSED)
    rig.run(0.1 + rig.scan_s)
    assert rig.has(BLOCKER, Status.AT_CLOSED | Status.EFO_ACTIVE)
    assert rig.reg(BLOCKER, SlotInput.LAST_TRAVEL_MS) == pytest.approx(1500, abs=1)
    rig.plc.inject("vehicle_present", BLOCKER, active=False)
    assert rig.command(BLOCKER, Command.RESET) == AckResult.ACCEPTED
    assert not rig.has(BLOCKER, Status.EFO_ACTIVE)
    assert rig.has(BLOCKER, Status.AT_CLOSED)


def test_efo_during_a_normal_raise_speeds_it_up() -> None:
    rig = lane(blocker=POSITION_OPEN)
    rig.command(BLOCKER, Command.CLOSE)
    rig.run(3.0)  # half way at normal speed
    rig.command(BLOCKER, Command.EFO)
    rig.run(0.74)
    assert not rig.has(BLOCKER, Status.AT_CLOSED)
    rig.run(0.02)
    assert rig.has(BLOCKER, Status.AT_CLOSED)


def test_blocker_refuses_close_while_a_vehicle_is_present() -> None:
    rig = lane(blocker=POSITION_OPEN)
    rig.plc.inject("vehicle_present", BLOCKER)
    rig.step()
    assert rig.command(BLOCKER, Command.CLOSE) == AckResult.REJECTED_INTERLOCK
    rig.run(1.0)
    assert rig.position(BLOCKER) == POSITION_OPEN
    assert not rig.status(BLOCKER) & MOVING
    rig.plc.inject("vehicle_present", BLOCKER, active=False)
    assert rig.command(BLOCKER, Command.CLOSE) == AckResult.ACCEPTED


@pytest.mark.parametrize("kind", [Kind.FOLDING_GATE, Kind.BOOM_BARRIER])
def test_gate_or_boom_refuses_close_while_obstructed(kind: Kind) -> None:
    rig = PlcRig([kind], positions={0: POSITION_OPEN})
    rig.plc.inject("obstruction", 0)
    rig.step()
    assert rig.has(0, Status.OBSTRUCTED)
    assert rig.command(0, Command.CLOSE) == AckResult.REJECTED_INTERLOCK
    rig.run(0.5)
    assert rig.position(0) == POSITION_OPEN


def test_a_blocker_has_no_obstruction_input() -> None:
    rig = lane()
    with pytest.raises(FaultError, match="road_blocker"):
        rig.plc.inject("obstruction", BLOCKER)


@pytest.mark.parametrize("kind", [Kind.FOLDING_GATE, Kind.BOOM_BARRIER])
def test_obstruction_while_closing_reverses_to_fully_open(kind: Kind) -> None:
    rig = PlcRig([kind], positions={0: POSITION_OPEN})
    rig.command(0, Command.CLOSE)
    rig.run(1.0)
    assert rig.position(0) > 300
    rig.plc.inject("obstruction", 0)
    rig.step()
    assert rig.has(0, Status.MOVING_OPEN | Status.OBSTRUCTED)
    rig.run_until(lambda: rig.has(0, Status.AT_OPEN), timeout=3.0)
    assert rig.position(0) == POSITION_OPEN
    assert not rig.status(0) & MOVING
    rig.run(1.0)
    assert rig.position(0) == POSITION_OPEN


def test_stuck_motion_ends_in_a_max_run_fault_after_twice_the_travel_time() -> None:
    rig = lane()
    rig.plc.inject("stuck_motion", GATE)
    assert rig.command(GATE, Command.OPEN) == AckResult.ACCEPTED
    rig.run(5.9)
    assert rig.has(GATE, Status.MOVING_OPEN)
    assert rig.position(GATE) == POSITION_CLOSED
    assert rig.reg(GATE, SlotInput.ANALOG_1) > 0  # the stalled motor draws current
    assert rig.reg(GATE, SlotInput.FAULT_CODE) == FaultCode.NONE
    rig.run(0.1 + rig.scan_s)
    assert rig.has(GATE, Status.DRIVE_FAULT)
    assert not rig.status(GATE) & MOVING
    assert rig.reg(GATE, SlotInput.FAULT_CODE) == FaultCode.MAX_RUN_EXCEEDED
    assert rig.command(GATE, Command.OPEN) == AckResult.REJECTED_FAULT
    rig.plc.inject("stuck_motion", GATE, active=False)
    assert rig.command(GATE, Command.RESET) == AckResult.ACCEPTED
    assert not rig.has(GATE, Status.DRIVE_FAULT)
    assert rig.reg(GATE, SlotInput.FAULT_CODE) == FaultCode.NONE
    assert rig.command(GATE, Command.OPEN) == AckResult.ACCEPTED
    rig.run(3.01)
    assert rig.has(GATE, Status.AT_OPEN)


def test_gate_locks_0_3_s_after_the_closed_limit_and_unlocks_before_opening() -> None:
    rig = lane(gate=POSITION_OPEN)
    rig.command(GATE, Command.CLOSE)
    rig.run_until(lambda: rig.has(GATE, Status.AT_CLOSED), timeout=3.1)
    assert not rig.has(GATE, Status.LOCKED)
    rig.run(0.27)
    assert not rig.has(GATE, Status.LOCKED)
    rig.run(0.04)
    assert rig.has(GATE, Status.LOCKED)
    assert rig.command(GATE, Command.OPEN) == AckResult.ACCEPTED
    assert rig.has(GATE, Status.MOVING_OPEN)
    assert not rig.has(GATE, Status.LOCKED)
    for _ in range(50):
        rig.step()
        assert not rig.has(GATE, Status.LOCKED)


def test_only_the_gate_reports_locked() -> None:
    rig = PlcRig([Kind.BOOM_BARRIER, Kind.ROAD_BLOCKER])
    rig.run(1.0)
    assert not rig.has(0, Status.LOCKED)
    assert not rig.has(1, Status.LOCKED)


def test_forced_movement_changes_position_without_a_moving_bit() -> None:
    rig = lane()
    rig.plc.inject("forced_movement", GATE)
    rig.run(1.5)
    assert rig.position(GATE) == pytest.approx(500, abs=3)
    assert not rig.status(GATE) & (MOVING | Status.LOCKED | Status.AT_CLOSED)
    rig.run(2.0)
    assert rig.has(GATE, Status.AT_OPEN)
    rig.plc.inject("forced_movement", GATE, active=False)
    rig.run(1.0)
    assert rig.position(GATE) == POSITION_OPEN


def test_stuck_limit_reads_made_and_both_limits_latch_fault_5() -> None:
    rig = lane(gate=POSITION_OPEN)
    rig.plc.inject("stuck_limit_closed", GATE)
    rig.step()
    assert rig.has(GATE, Status.AT_OPEN | Status.AT_CLOSED | Status.DRIVE_FAULT)
    assert rig.reg(GATE, SlotInput.FAULT_CODE) == FaultCode.LIMIT_SWITCH_FAULT
    assert rig.command(GATE, Command.RESET) == AckResult.ACCEPTED
    assert rig.has(GATE, Status.DRIVE_FAULT)  # cause still there
    rig.plc.inject("stuck_limit_closed", GATE, active=False)
    rig.command(GATE, Command.RESET)
    assert not rig.has(GATE, Status.DRIVE_FAULT)


def test_stuck_open_limit_stops_an_opening_travel_early() -> None:
    rig = lane()
    rig.command(GATE, Command.OPEN)
    rig.run(1.0)
    rig.plc.inject("stuck_limit_open", GATE)
    rig.step()
    assert rig.has(GATE, Status.AT_OPEN)
    assert not rig.status(GATE) & MOVING
    assert rig.position(GATE) == pytest.approx(663, abs=5)


def test_manual_release_stops_the_drive_and_refuses_commands() -> None:
    rig = lane()
    rig.command(GATE, Command.OPEN)
    rig.run(0.5)
    rig.plc.inject("manual_release", GATE)
    rig.step()
    assert rig.has(GATE, Status.MANUAL_RELEASE)
    assert not rig.status(GATE) & MOVING
    assert rig.command(GATE, Command.OPEN) == AckResult.REJECTED_LOCAL
    assert rig.command(BLOCKER, Command.OPEN) == AckResult.ACCEPTED


def test_analog_readings() -> None:
    rig = lane(blocker=POSITION_OPEN)
    assert rig.reg(GATE, SlotInput.ANALOG_1) == 0
    assert 1000 <= rig.reg(BLOCKER, SlotInput.ANALOG_1) <= 2000  # 100..200 bar
    assert 200 <= rig.reg(BLOCKER, SlotInput.ANALOG_2) <= 600  # 20..60 °C
    rig.command(GATE, Command.OPEN)
    rig.step()
    assert 10 <= rig.reg(GATE, SlotInput.ANALOG_1) <= 100  # 1..10 A while running
    rig.plc.inject("oil_temp", BLOCKER, code=-250)
    rig.plc.inject("low_pressure", BLOCKER)
    rig.step()
    assert rig.has(BLOCKER, Status.OIL_TEMP | Status.LOW_PRESSURE)
    assert rig.reg(BLOCKER, SlotInput.ANALOG_2) == 0x10000 - 250
    assert rig.reg(BLOCKER, SlotInput.ANALOG_1) < 1000
    assert rig.reg(BLOCKER, SlotInput.FAULT_CODE) == FaultCode.LOW_PRESSURE
    assert rig.reg(SIGNAL, SlotInput.ANALOG_1) == rig.reg(SIGNAL, SlotInput.ANALOG_2) == 0


def test_cycle_count_is_32_bit() -> None:
    rig = lane()
    rig.plc.slots[GATE].cycle_count = 0xFFFF
    rig.command(GATE, Command.OPEN)
    rig.run(3.01)
    assert rig.plc.read_input(slot_base(GATE) + SlotInput.CYCLE_COUNT, 2) == [1, 0]
    assert rig.cycle_count(GATE) == 0x10000
