"""The alarm list: raised, cleared and acknowledged alarms with times and who acknowledged, kept in SQLite."""

from __future__ import annotations

import time
from dataclasses import asdict, astuple, dataclass

import structlog

from controller.alarm_codes import CODES, Severity
from controller.storage import Storage

log = structlog.get_logger("controller.alarms")

SCHEMA = """
CREATE TABLE IF NOT EXISTS alarms (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    code       TEXT NOT NULL,
    subject    TEXT NOT NULL,       -- device or PLC
    severity   TEXT NOT NULL,
    message    TEXT NOT NULL,
    raised_at  REAL NOT NULL,
    cleared_at REAL,
    acked_by   TEXT,
    acked_at   REAL
);
"""


@dataclass
class Alarm:
    id: int
    code: str
    subject: str
    severity: str
    message: str
    raised_at: float
    cleared_at: float | None = None
    acked_by: str | None = None
    acked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.cleared_at is None

    @property
    def shown(self) -> bool:
        """On the list while active or not yet acknowledged."""
        return self.active or self.acked_at is None


class AlarmBoard:
    """Alarms keyed by (code, subject): a condition alarm clears when its condition goes, a latched one on ack."""

    def __init__(self, storage: Storage, on_event=None):
        self._storage = storage
        storage.add_schema(SCHEMA)
        self._on_event = on_event
        self._next_id = 1  # ids are given here, not by SQLite: an alarm raised while the disk is full has one
        self._alarms: dict[int, Alarm] = {}  # every alarm on the list (active or not yet acknowledged)
        self._active: dict[str, dict[str, Alarm]] = {}  # subject → code → its active alarm
        self._restore()

    def _restore(self) -> None:
        """Keep latched alarms over a restart; condition alarms are re-derived from fresh reads."""
        now = time.time()
        used = self._storage.read("SELECT max(id) FROM alarms")
        self._next_id = (used[0][0] or 0) + 1 if used else 1
        rows = self._storage.read(
            "SELECT id, code, subject, severity, message, raised_at, cleared_at, acked_by, acked_at FROM alarms"
            " WHERE cleared_at IS NULL OR acked_at IS NULL"
        )
        for row in rows:
            alarm = Alarm(*row)
            self._alarms[alarm.id] = alarm
            if alarm.active:
                self._active.setdefault(alarm.subject, {})[alarm.code] = alarm
            if alarm.active and not CODES[alarm.code].latched:
                alarm.cleared_at = now
                self._save(alarm)

    def _save(self, alarm: Alarm) -> None:
        values = (alarm.message, alarm.cleared_at, alarm.acked_by, alarm.acked_at, alarm.id)
        self._storage.write(
            lambda db: db.execute(
                "UPDATE alarms SET message = ?, cleared_at = ?, acked_by = ?, acked_at = ? WHERE id = ?", values),
            {"table": "alarms", "alarm": asdict(alarm)}, essential=CODES[alarm.code].latched,
        )
        if not alarm.active:
            on_subject = self._active.get(alarm.subject, {})
            if on_subject.get(alarm.code) is alarm:
                del on_subject[alarm.code]
        if not alarm.shown:
            self._alarms.pop(alarm.id, None)

    def _active_alarm(self, code: str, subject: str) -> Alarm | None:
        return self._active.get(subject, {}).get(code)

    def raise_alarm(self, code: str, subject: str, message: str) -> Alarm:
        """Raise (or keep) the alarm `code` on `subject`."""
        if (existing := self._active_alarm(code, subject)) is not None:
            return existing
        spec = CODES[code]
        alarm = Alarm(self._next_id, code, subject, spec.severity.name.lower(), message, time.time())
        self._next_id += 1
        row = astuple(alarm)
        self._storage.write(
            lambda db: db.execute(
                "INSERT INTO alarms (id, code, subject, severity, message, raised_at, cleared_at, acked_by, acked_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row),
            {"table": "alarms", "alarm": asdict(alarm)}, essential=spec.latched,
        )
        self._alarms[alarm.id] = alarm
        self._active.setdefault(subject, {})[code] = alarm
        log.warning("alarm_raised", alarm_id=alarm.id, code=code, subject=subject, severity=alarm.severity, reason=message)
        if self._on_event:
            self._on_event("alarm_raised", subject, f"{code} {subject}: {message}", alarm_id=alarm.id)
        return alarm

    def clear(self, code: str, subject: str) -> None:
        alarm = self._active_alarm(code, subject)
        if alarm is None:
            return
        alarm.cleared_at = time.time()
        self._save(alarm)
        log.info("alarm_cleared", alarm_id=alarm.id, code=code, subject=subject)
        if self._on_event:
            self._on_event("alarm_cleared", subject, f"{code} {subject} cleared", alarm_id=alarm.id)

    def sync(self, subject: str, conditions: dict[str, str]) -> None:
        """Make the condition (non-latched) alarms of `subject` exactly `conditions` (code -> reason)."""
        for code, message in conditions.items():
            self.raise_alarm(code, subject, message)
        for code in [c for c in self._active.get(subject, {}) if c not in conditions and not CODES[c].latched]:
            self.clear(code, subject)

    def ack(self, alarm_id: int, by: str) -> Alarm | None:
        """Acknowledge; a latched alarm is cleared by its acknowledgement."""
        alarm = self._alarms.get(alarm_id)
        if alarm is None:
            return None
        now = time.time()
        if alarm.acked_at is None:
            alarm.acked_by, alarm.acked_at = by, now
        if alarm.active and CODES[alarm.code].latched:
            alarm.cleared_at = now
        self._save(alarm)
        if self._on_event:
            self._on_event("alarm_acked", alarm.subject, f"{alarm.code} {alarm.subject} acknowledged by {by}",
                           alarm_id=alarm.id)
        return alarm

    def active_on(self, subjects: set[str], at_least: Severity) -> list[Alarm]:
        found = [a for subject in subjects for a in self._active.get(subject, {}).values()
                 if Severity[a.severity.upper()] >= at_least]
        return sorted(found, key=lambda a: a.id)

    def listing(self) -> list[dict]:
        return [asdict(a) | {"active": a.active} for a in sorted(self._alarms.values(), key=lambda a: a.id)]
