"""hal.unit: the read plan of a PLC, the identity check of its program, command outcomes and sequences."""

from __future__ import annotations


import pytest

from hal.profile import (
    MAX_READ_REGISTERS,
    PROFILE_MAGIC,
    AckResult,
    Kind,
    config_crc32,
    input_block_size,
)
from hal.snapshot import PlcSnapshot, SlotSnapshot
from hal.unit import CommandOutcome, UnitSpec, UnitState


def spec(n: int, watchdog_ms: int = 3000) -> UnitSpec:
    return UnitSpec(name="plc", unit=1, slot_kinds=tuple(Kind(i % 4 + 1) for i in range(n)), watchdog_ms=watchdog_ms)


# ----- read plan --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slots", "plan"),
    [
        (1, [(0, 28)]),
        (3, [(0, 52)]),
        (9, [(0, 124)]),
        (10, [(0, 124), (124, 12)]),
        (16, [(0, 124), (124, 84)]),
    ],
)
def test_read_plan(slots, plan):
    assert spec(slots).read_plan() == plan


@pytest.mark.parametrize("slots", range(1, 17))
def test_read_plan_covers_the_block_contiguously_within_the_modbus_limit(slots):
    plan = spec(slots).read_plan()
    assert len(plan) == (1 if slots <= 9 else 2)
    expected_start = 0
    for address, count in plan:
        assert address == expected_start
        assert 1 <= count <= MAX_READ_REGISTERS
        expected_start = address + count
    assert expected_start == input_block_size(slots)


@pytest.mark.parametrize("slots", range(10, 17))
def test_second_read_starts_at_a_slot_boundary(slots):
    (_, first), (second_address, second_count) = spec(slots).read_plan()
    assert second_address == first == 16 + 12 * 9
    assert second_count % 12 == 0


# ----- identity ---------------------------------------------------------------------------------


def slot(kind: Kind) -> SlotSnapshot:
    return SlotSnapshot(kind, 0, 1000, 0, 0, 0, 0, 0, 0, 0)


def snapshot_for(s: UnitSpec, **changes) -> PlcSnapshot:
    snap = PlcSnapshot(
        magic=PROFILE_MAGIC,
        version=1,
        heartbeat=1,
        plc_status=0,
        slot_count=len(s.slot_kinds),
        scan_time_ms=10,
        config_crc32=config_crc32(list(s.slot_kinds)),
        slots=tuple(slot(k) for k in s.slot_kinds),
        read_at=0.0,
    )
    return snap._replace(**changes)


def test_matching_program_has_no_identity_problem():
    s = spec(3)
    assert s.identity_problem(snapshot_for(s)) is None


@pytest.mark.parametrize("magic", [0, 0x5042, 0xFFFF])
def test_wrong_magic(magic):
    s = spec(1)
    problem = s.identity_problem(snapshot_for(s, magic=magic))
    assert problem is not None and "PROFILE_MAGIC" in problem and f"0x{magic:04X}" in problem


@pytest.mark.parametrize("version", [0, 2])
def test_wrong_version(version):
    s = spec(1)
    problem = s.identity_problem(snapshot_for(s, version=version))
    assert problem is not None and f"PROFILE_VERSION is {version}" in problem


def test_wrong_slot_count():
    s = spec(2)
    problem = s.identity_problem(snapshot_for(s, slot_count=3))
    assert problem == "SLOT_COUNT is 3, configured 2"


def test_wrong_kinds():
    s = spec(2)  # folding gate, road blocker
    wrong = (slot(Kind.FOLDING_GATE), slot(Kind.BOOM_BARRIER))
    problem = s.identity_problem(snapshot_for(s, slots=wrong))
    assert problem == "slot kinds are [1, 3], configured [1, 2]"


def test_kinds_in_another_order_are_wrong():
    s = spec(2)
    swapped = (slot(Kind.ROAD_BLOCKER), slot(Kind.FOLDING_GATE))
    assert "slot kinds are [2, 1]" in s.identity_problem(snapshot_for(s, slots=swapped))


def test_wrong_crc():
    s = spec(2)
    problem = s.identity_problem(snapshot_for(s, config_crc32=config_crc32([1, 3])))
    assert problem is not None and "CONFIG_CRC32" in problem
    assert f"expected 0x{config_crc32([1, 2]):08X}" in problem


def test_magic_is_checked_before_anything_else():
    s = spec(1)
    problem = s.identity_problem(snapshot_for(s, magic=0, version=9, config_crc32=0))
    assert problem.startswith("PROFILE_MAGIC")


# ----- outcomes and sequence numbers -------------------------------------------------------------


def test_command_outcome_accepted_only_when_acknowledged_with_accepted():
    assert CommandOutcome(acknowledged=True, result=AckResult.ACCEPTED, seq=1).accepted
    assert not CommandOutcome(acknowledged=True, result=AckResult.REJECTED_INTERLOCK, seq=1).accepted
    assert not CommandOutcome(acknowledged=False, result=None, seq=1).accepted


def test_command_outcome_descriptions():
    assert "REJECTED_INTERLOCK" in CommandOutcome(True, AckResult.REJECTED_INTERLOCK, 3).describe()
    assert "interlock" in CommandOutcome(True, AckResult.REJECTED_INTERLOCK, 3).describe()
    assert "not acknowledged" in CommandOutcome(False, None, 7).describe()
    assert "7" in CommandOutcome(False, None, 7).describe()


def test_command_seq_never_becomes_zero():
    state = UnitState(spec(1))
    state.seq[0] = 0xFFFE
    assert [state.next_seq(0) for _ in range(3)] == [0xFFFF, 1, 2]
    state.seq[0] = 0
    assert state.next_seq(0) == 1
