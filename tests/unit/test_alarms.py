"""The alarm board: one alarm per (code, subject), condition alarms follow their condition, latched ones wait
for an acknowledgement, and the list survives a restart of barrierd (same SQLite file)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from controller.alarm_codes import CODES, Severity
from controller.alarms import AlarmBoard
from controller.storage import Storage

LISTING_KEYS = {"id", "code", "subject", "severity", "message", "raised_at", "cleared_at", "acked_by", "acked_at",
                "active"}


def connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(path), isolation_level=None)  # as the event store opens it


def storage(path: Path) -> Storage:
    return Storage(path, "")  # the event store's file, without its tables


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "events.sqlite"


@pytest.fixture
def board(db_path: Path) -> AlarmBoard:
    return AlarmBoard(storage(db_path))


def listed(board: AlarmBoard) -> list[tuple[str, str, bool]]:
    return [(a["code"], a["subject"], a["active"]) for a in board.listing()]


def rows(db_path: Path) -> list[tuple]:
    with connect(db_path) as db:
        return db.execute("SELECT id, code, subject, cleared_at IS NULL, acked_by FROM alarms ORDER BY id").fetchall()


def test_the_codes_the_supervisor_relies_on_are_latched_or_not_as_designed():
    latched = {code for code, spec in CODES.items() if spec.latched}
    assert latched == {"COMMAND_NOT_ACKNOWLEDGED", "COMMAND_REJECTED", "TRAVEL_TIMEOUT", "LIMIT_LOST",
                       "UNCOMMANDED_MOVEMENT", "TRAVEL_SLOW", "EFO_SLOW"}  # the last two name one stored travel
    assert CODES["UNCOMMANDED_MOVEMENT"].severity is Severity.CRITICAL
    assert CODES["COMMS_LOST"].severity is Severity.FAULT


def test_an_alarm_is_raised_once_per_code_and_subject(board, db_path):
    first = board.raise_alarm("DRIVE_FAULT", "gate-1", "FAULT_CODE 1")
    again = board.raise_alarm("DRIVE_FAULT", "gate-1", "FAULT_CODE 1 (still)")
    other_subject = board.raise_alarm("DRIVE_FAULT", "gate-2", "FAULT_CODE 1")
    other_code = board.raise_alarm("SENSOR_FAULT", "gate-1", "STATUS SENSOR_FAULT")
    assert again.id == first.id
    assert len({first.id, other_subject.id, other_code.id}) == 3
    assert listed(board) == [("DRIVE_FAULT", "gate-1", True), ("DRIVE_FAULT", "gate-2", True),
                             ("SENSOR_FAULT", "gate-1", True)]
    assert len(rows(db_path)) == 3


def test_a_raised_alarm_carries_its_severity_message_and_time(board):
    alarm = board.raise_alarm("ESTOP", "plc-lane-1", "PLC_STATUS ESTOP")
    (entry,) = board.listing()
    assert set(entry) == LISTING_KEYS
    assert entry["id"] == alarm.id
    assert entry["severity"] == "critical"
    assert entry["message"] == "PLC_STATUS ESTOP"
    assert entry["raised_at"] > 0 and entry["cleared_at"] is None and entry["acked_at"] is None


def test_sync_raises_the_conditions_and_clears_the_ones_gone(board):
    board.sync("blocker-1", {"LOW_PRESSURE": "STATUS LOW_PRESSURE", "OIL_TEMP": "STATUS OIL_TEMP"})
    assert {a.code for a in board.active_on({"blocker-1"}, Severity.INFO)} == {"LOW_PRESSURE", "OIL_TEMP"}
    board.sync("blocker-1", {"OIL_TEMP": "STATUS OIL_TEMP"})
    assert {a.code for a in board.active_on({"blocker-1"}, Severity.INFO)} == {"OIL_TEMP"}
    # cleared but not yet acknowledged: still on the list, not active
    assert ("LOW_PRESSURE", "blocker-1", False) in listed(board)


def test_sync_touches_only_its_own_subject(board):
    board.sync("gate-1", {"DRIVE_FAULT": "x"})
    board.sync("gate-2", {})
    assert listed(board) == [("DRIVE_FAULT", "gate-1", True)]


def test_sync_does_not_clear_a_latched_alarm(board):
    board.raise_alarm("UNCOMMANDED_MOVEMENT", "gate-1", "position 1000 → 900")
    board.sync("gate-1", {})
    assert listed(board) == [("UNCOMMANDED_MOVEMENT", "gate-1", True)]
    board.sync("gate-1", {"LOCAL_CONTROL": "STATUS LOCAL"})
    board.sync("gate-1", {})
    assert ("UNCOMMANDED_MOVEMENT", "gate-1", True) in listed(board)


def test_ack_clears_a_latched_alarm_and_takes_it_off_the_list(board, db_path):
    alarm = board.raise_alarm("TRAVEL_TIMEOUT", "gate-1", "no limit within 4.5 s")
    acked = board.ack(alarm.id, "tech")
    assert acked is not None and not acked.active and acked.acked_by == "tech"
    assert board.listing() == []
    assert board.active_on({"gate-1"}, Severity.INFO) == []
    assert rows(db_path) == [(alarm.id, "TRAVEL_TIMEOUT", "gate-1", 0, "tech")]
    # the same fault again is a new alarm
    assert board.raise_alarm("TRAVEL_TIMEOUT", "gate-1", "again").id != alarm.id


def test_ack_does_not_clear_a_condition_alarm_whose_condition_is_present(board):
    alarm = board.raise_alarm("DRIVE_FAULT", "gate-1", "FAULT_CODE 1")
    board.ack(alarm.id, "guard")
    assert listed(board) == [("DRIVE_FAULT", "gate-1", True)]
    (entry,) = board.listing()
    assert entry["acked_by"] == "guard" and entry["acked_at"] is not None
    board.sync("gate-1", {"DRIVE_FAULT": "FAULT_CODE 1"})
    assert len(board.listing()) == 1, "acknowledged and still present: one alarm, not a new one"
    board.sync("gate-1", {})
    assert board.listing() == [], "acknowledged, then cleared: off the list"


def test_a_cleared_alarm_stays_listed_until_acknowledged(board):
    board.sync("plc-bay", {"CABINET_TAMPER": "PLC_STATUS CABINET_TAMPER"})
    board.sync("plc-bay", {})
    (entry,) = board.listing()
    assert entry["code"] == "CABINET_TAMPER" and not entry["active"] and entry["cleared_at"] is not None
    assert board.ack(entry["id"], "guard") is not None
    assert board.listing() == []


def test_ack_of_an_alarm_not_on_the_list_is_none(board):
    assert board.ack(999, "guard") is None
    alarm = board.raise_alarm("LIMIT_LOST", "gate-1", "AT_CLOSED dropped")
    board.ack(alarm.id, "guard")
    assert board.ack(alarm.id, "guard") is None, "off the list once acknowledged and cleared"


def test_active_on_filters_by_subject_and_least_severity(board):
    board.raise_alarm("MAINS_FAIL", "plc-lane-1", "UPS")  # warning
    board.raise_alarm("COMMS_LOST", "plc-lane-1", "timeout")  # fault
    board.raise_alarm("ESTOP", "plc-lane-2", "chain open")  # critical
    assert {a.code for a in board.active_on({"plc-lane-1"}, Severity.WARNING)} == {"MAINS_FAIL", "COMMS_LOST"}
    assert {a.code for a in board.active_on({"plc-lane-1"}, Severity.FAULT)} == {"COMMS_LOST"}
    assert {a.code for a in board.active_on({"plc-lane-1", "plc-lane-2"}, Severity.FAULT)} == {"COMMS_LOST", "ESTOP"}


def test_events_are_recorded_for_raise_clear_and_ack(db_path):
    seen: list[tuple[str, str]] = []
    board = AlarmBoard(storage(db_path), lambda kind, subject, summary, **data: seen.append((kind, subject)))
    alarm = board.raise_alarm("LIMIT_LOST", "gate-1", "AT_CLOSED dropped")
    board.raise_alarm("LIMIT_LOST", "gate-1", "AT_CLOSED dropped")  # already raised: no second event
    board.sync("gate-1", {"OIL_TEMP": "x"})
    board.sync("gate-1", {})
    board.ack(alarm.id, "guard")
    assert seen == [("alarm_raised", "gate-1"), ("alarm_raised", "gate-1"), ("alarm_cleared", "gate-1"),
                    ("alarm_acked", "gate-1")]


def test_a_restart_keeps_latched_alarms_and_clears_condition_ones(db_path):
    before = AlarmBoard(storage(db_path))
    latched = before.raise_alarm("UNCOMMANDED_MOVEMENT", "gate-1", "forced")
    condition = before.raise_alarm("COMMS_LOST", "plc-lane-1", "timeout")
    done = before.raise_alarm("COMMAND_REJECTED", "gate-2", "REJECTED_INTERLOCK")
    before.ack(done.id, "guard")

    after = AlarmBoard(storage(db_path))  # barrierd restarted on the same event store
    by_id = {a["id"]: a for a in after.listing()}
    assert set(by_id) == {latched.id, condition.id}
    assert by_id[latched.id]["active"], "a latched alarm waits for its acknowledgement over a restart"
    assert not by_id[condition.id]["active"], "a condition alarm is re-derived from fresh reads"
    assert by_id[condition.id]["acked_at"] is None, "cleared but unacknowledged: still listed"
    assert after.raise_alarm("UNCOMMANDED_MOVEMENT", "gate-1", "forced").id == latched.id
    assert after.raise_alarm("COMMS_LOST", "plc-lane-1", "timeout").id != condition.id
    after.ack(latched.id, "guard")
    assert rows(db_path)[0] == (latched.id, "UNCOMMANDED_MOVEMENT", "gate-1", 0, "guard")
    third = AlarmBoard(storage(db_path))
    assert latched.id not in {a["id"] for a in third.listing()}
