"""Fault detection on hand-made readings: PLC conditions, device conditions, movement nobody commanded and
lost limits. Readings are fed as Site._on_reading feeds them: the device observes, then its watch updates."""

from __future__ import annotations

import asyncio

import pytest

from config.schema import DeviceSection, PlcSection
from controller.alarm_codes import CODES
from controller.alarms import AlarmBoard
from controller.storage import Storage
from controller.devices import DEVICE_CLASSES
from controller.supervision import POSITION_NOISE, DeviceWatch, PlcConditions
from hal.profile import PROFILE_MAGIC, PROFILE_VERSION, FaultCode, Kind, PlcStatus, SignalStatus, Status
from hal.snapshot import PlcSnapshot, SlotSnapshot
from hal.unit import PlcReading, Problem, Quality

CLOSED = Status.AT_CLOSED | Status.LOCKED


def slot(kind: Kind, status: int, position: int | None, fault: int = 0) -> SlotSnapshot:
    return SlotSnapshot(kind, int(status), position, 0, 0, fault, 0, 0, 0, 0)


def gate(status: int, position: int | None, fault: int = 0) -> SlotSnapshot:
    return slot(Kind.FOLDING_GATE, status, position, fault)


class Watched:
    """One device and its DeviceWatch, fed like the site feeds them."""

    def __init__(self, kind: str = "folding_gate", travel_s: float = 3.0):
        cfg = DeviceSection(name="dev", kind=kind, plc="plc", slot=0, travel_s=travel_s)
        self.device = DEVICE_CLASSES[kind](cfg)
        self.watch = DeviceWatch(self.device)

    async def read(self, snap: SlotSnapshot | None, now: float | None = None) -> dict[str, str]:
        now = asyncio.get_running_loop().time() if now is None else now
        if snap is None:
            await self.device.observe(Quality.INVALID, None, "timeout")
        else:
            await self.device.observe(Quality.GOOD, snap, None)
        return self.watch.update(snap, now)

    @property
    def events(self) -> list[str]:
        return [code for code, _ in self.watch.events]


# ---- movement nobody commanded ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_position_change_with_no_command_in_force_is_uncommanded_movement():
    w = Watched()
    await w.read(gate(CLOSED, 1000))
    assert w.events == []
    await w.read(gate(0, 950))
    assert w.events == ["UNCOMMANDED_MOVEMENT"]
    assert "1000 → 950" in w.watch.events[0][1]


@pytest.mark.asyncio
async def test_a_moving_bit_with_no_command_in_force_is_uncommanded_movement():
    w = Watched()
    await w.read(gate(CLOSED, 1000))
    await w.read(gate(Status.AT_CLOSED | Status.MOVING_OPEN, 1000))
    assert w.events == ["UNCOMMANDED_MOVEMENT"]


@pytest.mark.asyncio
async def test_encoder_noise_is_not_movement():
    w = Watched()
    await w.read(gate(CLOSED, 1000))
    for position in (1000 - POSITION_NOISE, 1000, 1000 - POSITION_NOISE):
        await w.read(gate(CLOSED, position))
        assert w.events == []


@pytest.mark.asyncio
async def test_no_movement_alarm_during_a_travel_that_was_commanded():
    w = Watched()
    now = asyncio.get_running_loop().time()
    await w.read(gate(CLOSED, 1000), now)
    w.device.expect_motion(now)
    for i, (status, position) in enumerate([(Status.MOVING_OPEN, 995), (Status.MOVING_OPEN, 700),
                                            (Status.MOVING_OPEN, 300), (Status.MOVING_OPEN, 20)]):
        await w.read(gate(status, position), now + 0.1 * (i + 1))
        assert w.events == [], f"reading {i}: {w.watch.events}"


@pytest.mark.asyncio
async def test_no_movement_alarm_when_a_commanded_travel_arrives_at_its_limit():
    """The reading that reaches the goal moved the device (position and limit change) under the command."""
    w = Watched()
    now = asyncio.get_running_loop().time()
    await w.read(gate(CLOSED, 1000), now)
    w.device.record_intent("open", "guard")
    await w.read(gate(Status.MOVING_OPEN, 500), now + 1.5)
    await w.read(gate(Status.MOVING_OPEN, 20), now + 2.9)
    await w.read(gate(Status.AT_OPEN, 0), now + 3.0)
    assert w.events == [], w.watch.events
    await w.read(gate(Status.AT_OPEN, 0), now + 3.1)
    assert w.events == []


@pytest.mark.asyncio
async def test_no_movement_alarm_for_a_command_recorded_as_the_bus_reports_it():
    """record_intent (what a command accepted by the PLC calls) puts the command in force."""
    w = Watched()
    await w.read(gate(CLOSED, 1000))
    w.device.record_intent("open", "guard")
    await w.read(gate(Status.MOVING_OPEN, 990))
    await w.read(gate(Status.MOVING_OPEN, 500))
    assert w.events == []


@pytest.mark.asyncio
async def test_movement_once_the_commanded_goal_is_reached_is_uncommanded():
    w = Watched()
    now = asyncio.get_running_loop().time()
    await w.read(gate(Status.AT_CLOSED, 1000), now)
    w.device.record_intent("open", "guard")
    await w.read(gate(Status.MOVING_OPEN, 500), now + 1.5)
    await w.read(gate(Status.AT_OPEN, 0), now + 3.0)
    await w.read(gate(Status.AT_OPEN, 0), now + 3.1)
    assert w.events == []
    await w.read(gate(0, 60), now + 3.2)  # pushed back toward closed, inside the command's time window
    assert w.events == ["UNCOMMANDED_MOVEMENT"]


@pytest.mark.asyncio
async def test_a_command_to_the_state_the_device_is_in_ends_with_the_next_reading():
    """No transition comes of it (the goal is shown already): the next reading ends it; movement then is uncommanded."""
    w, now, closed = Watched(), asyncio.get_running_loop().time(), gate(Status.AT_CLOSED, 1000)
    await w.read(closed, now)
    w.device.record_intent("close", "guard")
    await w.read(closed, now + 0.1)  # the very slot again, as an unchanged block hands it over
    await w.read(closed, now + 0.2)
    assert not w.device.command_in_force(now + 0.2)
    await w.read(gate(0, 900), now + 0.3)  # pushed open, well inside travel time × factor
    assert w.events == ["UNCOMMANDED_MOVEMENT"]


@pytest.mark.asyncio
async def test_movement_after_the_command_window_is_uncommanded():
    w = Watched(travel_s=3.0)  # window: 3.0 s × 1.5 + 1 s
    await w.read(gate(Status.AT_CLOSED, 1000), 100.0)
    w.device.expect_motion(100.0)
    await w.read(gate(Status.AT_CLOSED, 1000), 105.4)
    await w.read(gate(0, 900), 105.6)
    assert w.events == ["UNCOMMANDED_MOVEMENT"]


@pytest.mark.asyncio
async def test_movement_while_the_data_were_missing_is_seen_when_they_return():
    w = Watched()
    await w.read(gate(CLOSED, 1000))
    assert await w.read(None) == {}
    assert w.events == []
    await w.read(gate(Status.AT_OPEN, 0))
    assert w.events == ["UNCOMMANDED_MOVEMENT"]


@pytest.mark.parametrize("person", [Status.LOCAL, Status.MANUAL_RELEASE])
@pytest.mark.asyncio
async def test_no_movement_alarm_while_a_person_has_the_device(person):
    w = Watched()
    await w.read(gate(CLOSED | person, 1000))
    conditions = await w.read(gate(person, 700))
    assert w.events == []
    code = "LOCAL_CONTROL" if person is Status.LOCAL else "MANUAL_RELEASE"
    assert conditions == {code: CODES[code].text}
    await w.read(gate(person | Status.AT_OPEN, 0))
    assert w.events == []


# ---- lost limits --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_limit_dropping_without_motion_is_limit_lost():
    w = Watched()
    await w.read(gate(CLOSED, 1000))
    await w.read(gate(Status.LOCKED, 1000))
    assert w.events == ["LIMIT_LOST"]
    assert "closed limit switch" in w.watch.events[0][1]
    await w.read(gate(Status.LOCKED, 1000))
    assert w.events == [], "reported once, when it drops"


@pytest.mark.asyncio
async def test_a_limit_dropping_without_encoder_change_on_a_blocker_is_limit_lost():
    w = Watched("road_blocker", travel_s=6.0)
    await w.read(slot(Kind.ROAD_BLOCKER, Status.AT_OPEN, 0))
    await w.read(slot(Kind.ROAD_BLOCKER, 0, 0))
    assert w.events == ["LIMIT_LOST"]


@pytest.mark.asyncio
async def test_a_limit_dropping_with_motion_is_movement_not_limit_lost():
    w = Watched()
    await w.read(gate(CLOSED, 1000))
    await w.read(gate(0, 900))
    assert w.events == ["UNCOMMANDED_MOVEMENT"]


@pytest.mark.asyncio
async def test_a_limit_dropping_under_a_command_is_the_travel_starting():
    w = Watched()
    now = asyncio.get_running_loop().time()
    await w.read(gate(CLOSED, 1000), now)
    w.device.expect_motion(now)
    await w.read(gate(0, 1000), now + 0.1)
    assert w.events == []


# ---- condition alarms from one reading ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "fault", "expected"),
    [
        ("folding_gate", CLOSED, 0, {}),
        ("folding_gate", Status.DRIVE_FAULT | Status.AT_CLOSED, FaultCode.DRIVE_OVERLOAD, {"DRIVE_FAULT"}),
        ("folding_gate", Status.AT_CLOSED, FaultCode.MAX_RUN_EXCEEDED, {"DRIVE_FAULT"}),
        ("folding_gate", Status.AT_OPEN | Status.AT_CLOSED | Status.DRIVE_FAULT, FaultCode.LIMIT_SWITCH_FAULT,
         {"DRIVE_FAULT", "BOTH_LIMITS"}),
        ("folding_gate", Status.AT_CLOSED | Status.SENSOR_FAULT, FaultCode.SAFETY_SENSOR_FAULT,
         {"SENSOR_FAULT", "DRIVE_FAULT"}),
        ("road_blocker", Status.AT_CLOSED | Status.LOW_PRESSURE, FaultCode.LOW_PRESSURE,
         {"LOW_PRESSURE", "DRIVE_FAULT"}),
        ("road_blocker", Status.AT_CLOSED | Status.OIL_TEMP, 0, {"OIL_TEMP"}),
        ("road_blocker", Status.AT_CLOSED | Status.EFO_ACTIVE, 0, {"EFO_ACTIVE"}),
        ("boom_barrier", Status.AT_CLOSED | Status.LOCAL, 0, {"LOCAL_CONTROL"}),
        ("boom_barrier", Status.AT_CLOSED | Status.MANUAL_RELEASE, 0, {"MANUAL_RELEASE"}),
    ],
)
@pytest.mark.asyncio
async def test_leaf_conditions_from_status_and_fault_code(kind, status, fault, expected):
    w = Watched(kind)
    conditions = await w.read(slot(w.device.KIND, status, 1000, fault))
    assert set(conditions) == set(expected)


@pytest.mark.asyncio
async def test_drive_fault_names_the_fault_code():
    w = Watched()
    conditions = await w.read(gate(Status.DRIVE_FAULT, 1000, FaultCode.MAX_RUN_EXCEEDED))
    assert conditions["DRIVE_FAULT"].startswith("PLC max-run time exceeded (fault code 6)")


@pytest.mark.asyncio
async def test_signal_conditions_and_no_movement_checks():
    w = Watched("traffic_signal", travel_s=0.5)
    assert await w.read(slot(Kind.TRAFFIC_SIGNAL, SignalStatus.RED, None)) == {}
    assert await w.read(slot(Kind.TRAFFIC_SIGNAL, SignalStatus.GREEN, None)) == {}
    assert w.events == [], "a signal changing aspect is not movement"
    conditions = await w.read(slot(Kind.TRAFFIC_SIGNAL, SignalStatus.LAMP_FAULT | SignalStatus.LOCAL, None, 7))
    assert set(conditions) == {"LAMP_FAULT", "LOCAL_CONTROL"}


@pytest.mark.asyncio
async def test_no_fresh_data_keeps_the_last_known_device_conditions():
    w = Watched("road_blocker", travel_s=6.0)
    await w.read(slot(Kind.ROAD_BLOCKER, Status.AT_CLOSED | Status.OIL_TEMP, 1000))
    assert set(await w.read(None)) == {"OIL_TEMP"}
    assert set(await w.read(slot(Kind.ROAD_BLOCKER, Status.AT_CLOSED, 1000))) == set()


@pytest.mark.looptime
@pytest.mark.asyncio
async def test_travel_timeout_is_reported_as_a_latched_event():
    w = Watched(travel_s=3.0)  # limit 4.5 s
    await w.read(gate(CLOSED, 1000))
    w.device.record_intent("open", "guard")
    await w.read(gate(Status.MOVING_OPEN, 1000))
    await asyncio.sleep(4.6)  # stuck: the drive runs, the leaf does not move
    assert w.device.state == "fault"
    await w.read(gate(Status.MOVING_OPEN, 1000))
    assert "TRAVEL_TIMEOUT" in w.events


@pytest.mark.looptime
@pytest.mark.asyncio
async def test_a_travel_timeout_acknowledged_does_not_come_back_while_the_device_awaits_its_reset(tmp_path):
    """As Site._on_reading does: every latched event is raised on the board; the operator acknowledges it."""
    board = AlarmBoard(Storage(tmp_path / "events.sqlite", ""))
    w = Watched(travel_s=3.0)

    async def read(snap):
        board.sync("dev", await w.read(snap))
        for code, message in w.watch.events:
            board.raise_alarm(code, "dev", message)

    await read(gate(CLOSED, 1000))
    w.device.record_intent("open", "guard")
    await read(gate(Status.MOVING_OPEN, 1000))
    await asyncio.sleep(4.6)
    await read(gate(Status.MOVING_OPEN, 1000))
    (alarm,) = board.listing()
    assert alarm["code"] == "TRAVEL_TIMEOUT"
    board.ack(alarm["id"], "tech")
    await read(gate(Status.AT_CLOSED, 1000))  # still latched in the supervisor until `reset`
    assert w.device.state == "fault"
    assert board.listing() == [], f"the same timeout raised again: {board.listing()}"


# ---- PLC conditions -----------------------------------------------------------------------------

PLC = PlcSection(name="plc-lane-1", host="127.0.0.1", port=15020, watchdog_ms=3000)


def reading(
    plc_status: int | None = 0,
    *,
    quality: Quality = Quality.GOOD,
    comms_lost: bool = False,
    failures: int = 0,
    readback: int | None = 3000,
    problem: Problem | None = None,
    reason: str | None = None,
) -> PlcReading:
    snap = None
    if plc_status is not None:
        snap = PlcSnapshot(PROFILE_MAGIC, PROFILE_VERSION, 1, plc_status, 1, 10, 0, (gate(CLOSED, 1000),), 0.0)
    return PlcReading("plc-lane-1", quality, snap, reason, comms_lost, failures, readback, problem)


def test_a_healthy_plc_has_no_condition():
    assert PlcConditions(PLC).update(reading()) == {}


@pytest.mark.parametrize(
    ("bit", "code"),
    [(PlcStatus.WATCHDOG_EXPIRED, "WATCHDOG_EXPIRED"), (PlcStatus.ESTOP, "ESTOP"), (PlcStatus.MAINS_FAIL, "MAINS_FAIL"),
     (PlcStatus.CABINET_TAMPER, "CABINET_TAMPER"), (PlcStatus.LOCAL_PANEL, "LOCAL_PANEL")],
)
def test_each_plc_status_bit_is_its_alarm(bit, code):
    conditions = PlcConditions(PLC)
    assert set(conditions.update(reading(bit))) == {code}
    assert conditions.update(reading(0)) == {}, "a good reading without the bit clears it"


def test_comms_lost_keeps_the_status_bit_conditions_seen_before():
    conditions = PlcConditions(PLC)
    conditions.update(reading(PlcStatus.ESTOP | PlcStatus.CABINET_TAMPER))
    stale = conditions.update(reading(None, quality=Quality.STALE, failures=1, reason="timeout"))
    assert set(stale) == {"ESTOP", "CABINET_TAMPER"}
    lost = conditions.update(reading(None, quality=Quality.INVALID, comms_lost=True, failures=3, reason="timeout"))
    assert set(lost) == {"COMMS_LOST", "ESTOP", "CABINET_TAMPER"}
    assert "3 polls" in lost["COMMS_LOST"] and "timeout" in lost["COMMS_LOST"]
    back = conditions.update(reading(PlcStatus.ESTOP))
    assert set(back) == {"ESTOP"}


@pytest.mark.parametrize(
    ("problem", "code"),
    [(Problem.FROZEN, "PLC_FROZEN"), (Problem.WRONG_PROGRAM, "WRONG_PROGRAM"), (Problem.BAD_REPLY, "BAD_REPLY")],
)
def test_a_problem_reading_is_its_alarm(problem, code):
    conditions = PlcConditions(PLC)
    found = conditions.update(reading(None, quality=Quality.INVALID, problem=problem, reason="why"))
    assert found == {code: "why"}


def test_a_problem_alarm_holds_through_an_unanswered_exchange_and_clears_on_good_data():
    """A failed heartbeat write between two frozen polls must not clear PLC_FROZEN and raise it anew."""
    conditions = PlcConditions(PLC)
    conditions.update(reading(None, quality=Quality.INVALID, problem=Problem.FROZEN, reason="heartbeat still"))
    held = conditions.update(reading(None, quality=Quality.STALE, failures=1, problem=Problem.COMMS, reason="timeout"))
    assert held == {"PLC_FROZEN": "heartbeat still"}
    assert conditions.update(reading(0)) == {}


def test_comms_lost_is_reported_rather_than_the_problem_of_the_last_reply():
    conditions = PlcConditions(PLC)
    found = conditions.update(reading(None, quality=Quality.INVALID, comms_lost=True, failures=3,
                                      problem=Problem.BAD_REPLY, reason="exception 4"))
    assert set(found) == {"COMMS_LOST"}


@pytest.mark.parametrize(("readback", "alarm"), [(3000, False), (2000, True), (0, True), (None, False)])
def test_watchdog_not_armed_when_the_read_back_differs(readback, alarm):
    found = PlcConditions(PLC).update(reading(readback=readback))
    assert ("WATCHDOG_NOT_ARMED" in found) is alarm
    if alarm:
        assert f"reads {readback}" in found["WATCHDOG_NOT_ARMED"] and "configured 3000" in found["WATCHDOG_NOT_ARMED"]


def test_fault_codes_are_named_for_the_kind_that_reports_them():
    from controller.devices.leaf import fault_text
    from hal.kinds import KINDS
    assert fault_text(3, KINDS["road_blocker"]) == "pump fault"
    assert "not a fault a folding gate reports" in fault_text(7, KINDS["folding_gate"])
    assert fault_text(7, KINDS["traffic_signal"]) == "lamp fault"
    assert "not in the PLC profile" in fault_text(99, KINDS["folding_gate"])
