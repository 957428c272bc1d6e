"""Simulated PLC faults for the supervisor's plausibility checks: an ignored watchdog write, a lost limit switch."""

from __future__ import annotations

import pytest

from hal.profile import (
    POSITION_CLOSED,
    POSITION_OPEN,
    WATCHDOG_POWER_UP_MS,
    AckResult,
    Command,
    HeaderHolding,
    Kind,
    SlotInput,
    Status,
)
from sim_plc.errors import FaultError, ModbusError
from sim_plc.faults import FAULTS
from sim_plc.testing import BLOCKER, GATE, SIGNAL, PlcRig, lane_rig

LIMITS = Status.AT_OPEN | Status.AT_CLOSED
MOVING = Status.MOVING_OPEN | Status.MOVING_CLOSE


lane = lane_rig


def watchdog_readback(rig: PlcRig) -> int:
    return rig.plc.read_holding(HeaderHolding.WATCHDOG_TIMEOUT_MS, 1)[0]


# ---- watchdog_ignored ---------------------------------------------------------------------------


def test_watchdog_ignored_acknowledges_the_write_but_keeps_the_power_up_value() -> None:
    rig = lane()
    rig.plc.inject("watchdog_ignored")
    rig.plc.write_holding(HeaderHolding.WATCHDOG_TIMEOUT_MS, [2000])  # no exception: the write "succeeds"
    rig.run(0.1)
    assert watchdog_readback(rig) == WATCHDOG_POWER_UP_MS == 3000
    assert {"plc": "test-plc", "fault": "watchdog_ignored", "slot": None, "code": None} in rig.plc.active_faults()


def test_watchdog_ignored_keeps_a_value_written_before_it() -> None:
    rig = lane()
    rig.plc.write_holding(HeaderHolding.WATCHDOG_TIMEOUT_MS, [5000])
    rig.plc.inject("watchdog_ignored")
    rig.plc.write_holding(HeaderHolding.WATCHDOG_TIMEOUT_MS, [0])
    assert watchdog_readback(rig) == 5000


def test_the_ignored_watchdog_still_runs_on_the_value_it_kept() -> None:
    rig = lane()
    rig.plc.inject("watchdog_ignored")
    rig.plc.write_holding(HeaderHolding.WATCHDOG_TIMEOUT_MS, [0])  # the supervisor tries to switch it off
    rig.feed_heartbeat = False
    rig.run(WATCHDOG_POWER_UP_MS / 1000 + 0.05)
    assert rig.plc.watchdog_expired


def test_watchdog_ignored_still_refuses_an_out_of_range_value_and_clears() -> None:
    rig = lane()
    rig.plc.inject("watchdog_ignored")
    with pytest.raises(ModbusError):
        rig.plc.write_holding(HeaderHolding.WATCHDOG_TIMEOUT_MS, [50])
    rig.plc.inject("watchdog_ignored", active=False)
    rig.plc.write_holding(HeaderHolding.WATCHDOG_TIMEOUT_MS, [2000])
    assert watchdog_readback(rig) == 2000
    assert rig.plc.active_faults() == []


def test_watchdog_ignored_leaves_the_heartbeat_and_commands_alone() -> None:
    rig = lane()
    rig.plc.inject("watchdog_ignored")
    rig.run(0.05)
    assert rig.plc.supervisor_heartbeat > 0, "heartbeat writes still apply"
    assert rig.command(GATE, Command.OPEN) == AckResult.ACCEPTED


def test_watchdog_ignored_is_plc_wide() -> None:
    assert FAULTS["watchdog_ignored"].plc_wide
    with pytest.raises(FaultError, match="PLC-wide"):
        lane().plc.inject("watchdog_ignored", GATE)


# ---- limit_lost ---------------------------------------------------------------------------------


def test_limit_lost_on_a_closed_gate_drops_the_closed_limit_without_motion() -> None:
    rig = lane()
    rig.run(0.5)
    assert rig.has(GATE, Status.AT_CLOSED | Status.LOCKED)
    rig.plc.inject("limit_lost", GATE)
    rig.run(1.0)
    status = rig.status(GATE)
    assert not status & LIMITS
    assert not status & (MOVING | Status.DRIVE_FAULT)
    assert rig.position(GATE) == POSITION_CLOSED
    assert rig.reg(GATE, SlotInput.FAULT_CODE) == 0
    assert rig.cycle_count(GATE) == 0

    rig.plc.inject("limit_lost", GATE, active=False)
    rig.step()
    assert rig.has(GATE, Status.AT_CLOSED)
    assert rig.position(GATE) == POSITION_CLOSED


def test_limit_lost_on_a_lowered_blocker_drops_the_open_limit() -> None:
    rig = lane(blocker=POSITION_OPEN)
    rig.step()
    assert rig.has(BLOCKER, Status.AT_OPEN)
    rig.plc.inject("limit_lost", BLOCKER)
    rig.step()
    assert not rig.status(BLOCKER) & (LIMITS | MOVING)
    assert rig.position(BLOCKER) == POSITION_OPEN
    assert rig.has(GATE, Status.AT_CLOSED), "the other slot keeps its limit"


def test_limit_lost_is_that_switch_only_the_other_limit_still_makes() -> None:
    rig = lane()
    rig.plc.inject("limit_lost", GATE)
    assert rig.command(GATE, Command.OPEN) == AckResult.ACCEPTED
    rig.run(3.0 + 0.05)
    assert rig.has(GATE, Status.AT_OPEN)
    assert rig.command(GATE, Command.CLOSE) == AckResult.ACCEPTED
    rig.run(3.0 + 0.05)
    assert rig.position(GATE) == POSITION_CLOSED
    assert not rig.status(GATE) & (LIMITS | MOVING | Status.DRIVE_FAULT), "the broken closed switch stays unmade"


def test_limit_lost_between_limits_takes_the_nearer_limit() -> None:
    rig = lane(gate=300)
    rig.plc.inject("limit_lost", GATE)
    assert rig.command(GATE, Command.OPEN) == AckResult.ACCEPTED
    rig.run(1.0)
    assert rig.position(GATE) == POSITION_OPEN
    assert not rig.status(GATE) & LIMITS


def test_limit_lost_applies_to_leaves_only() -> None:
    rig = lane()
    with pytest.raises(FaultError, match="slot 2 is a traffic_signal"):
        rig.plc.inject("limit_lost", SIGNAL)
    with pytest.raises(FaultError, match="needs a slot"):
        rig.plc.inject("limit_lost")
