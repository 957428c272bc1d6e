"""The travels table (every completed travel and EFO raise, bounded per device), baselines and technicians' marks."""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields, replace

from controller.storage import Storage

SCHEMA = """
CREATE TABLE IF NOT EXISTS travels (
    id              INTEGER PRIMARY KEY,  -- given by barrierd: an alarm names it even while the disk refuses
    device          TEXT NOT NULL,
    ts              REAL NOT NULL,        -- unix time barrierd saw the travel completed
    to_state        TEXT NOT NULL,        -- open / closed (a blocker: lowered / raised)
    efo             INTEGER NOT NULL,     -- 1: an emergency fast raise
    plc_ms          INTEGER NOT NULL,     -- LAST_TRAVEL_MS, the PLC's own timing
    command_ms      INTEGER,              -- barrierd's command to the limit it saw, when barrierd commanded it
    analog_1        INTEGER NOT NULL,     -- at arrival: motor current 0.1 A, or blocker pressure 0.1 bar
    analog_2        INTEGER NOT NULL,     -- at arrival: blocker oil temperature 0.1 °C
    travel_analog_1 REAL,                 -- median ANALOG_1 over the polls that saw the travel under way
    cycle_count     INTEGER NOT NULL,     -- CYCLE_COUNT at arrival
    cycles          INTEGER NOT NULL      -- travels completed since the reading before (above 1: polls missed)
);
CREATE INDEX IF NOT EXISTS travels_device ON travels(device, id);
CREATE TABLE IF NOT EXISTS baselines (   -- survive a restart, and the retention of the travels they came from
    device  TEXT NOT NULL,
    metric  TEXT NOT NULL,                -- travel_ms:closed, analog_1:open, ...
    value   REAL NOT NULL,
    PRIMARY KEY (device, metric)
);
CREATE TABLE IF NOT EXISTS condition_marks (  -- baseline resets and services, by a technician with a reason
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    device      TEXT NOT NULL,
    what        TEXT NOT NULL,            -- baseline_reset / service
    ts          REAL NOT NULL,
    by          TEXT NOT NULL,
    reason      TEXT NOT NULL,
    cycle_count INTEGER                   -- CYCLE_COUNT when it was recorded
);
"""


@dataclass(frozen=True)
class Travel:
    device: str
    ts: float
    to_state: str
    efo: bool
    plc_ms: int
    command_ms: int | None
    analog_1: int
    analog_2: int
    travel_analog_1: float | None
    cycle_count: int
    cycles: int
    id: int = 0

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Mark:
    device: str
    what: str
    ts: float
    by: str
    reason: str
    cycle_count: int | None

    def as_dict(self) -> dict:
        return {"ts": self.ts, "by": self.by, "reason": self.reason, "cycle_count": self.cycle_count}


_COLUMNS = ", ".join(f.name for f in fields(Travel))
_MARKS = "device, what, ts, by, reason, cycle_count"


class TravelLog:
    """The condition tables in the event store's file; writes through Storage (never raise, kept in order)."""

    def __init__(self, storage: Storage, keep_per_device: int):
        self._storage = storage
        self.keep_per_device = keep_per_device
        storage.add_schema(SCHEMA)
        used = storage.read("SELECT max(id) FROM travels")
        self._next_id = (used[0][0] or 0) + 1 if used else 1

    def append(self, travel: Travel) -> Travel:
        """Store one travel with the next id, and drop that device's oldest beyond the retention."""
        travel = replace(travel, id=self._next_id)
        self._next_id += 1
        row = astuple(travel)
        keep = (travel.device, travel.device, self.keep_per_device)

        def insert(db) -> None:
            db.execute(f"INSERT INTO travels ({_COLUMNS}) VALUES ({', '.join('?' * len(row))})", row)  # noqa: S608
            db.execute("DELETE FROM travels WHERE device = ? AND id <= (SELECT id FROM travels WHERE device = ?"
                       " ORDER BY id DESC LIMIT 1 OFFSET ?)", keep)

        self._storage.write(insert, {"table": "travels", **travel.as_dict()})
        return travel

    def travels(self, device: str, *, since_ts: float = 0.0, last: int | None = None) -> list[Travel]:
        """A device's stored travels, oldest first: all since a time, or only the `last` ones."""
        if last is not None:
            rows = self._storage.read(f"SELECT {_COLUMNS} FROM travels WHERE device = ? AND ts >= ?"  # noqa: S608
                                      " ORDER BY id DESC LIMIT ?", (device, since_ts, last))
            rows.reverse()
        else:
            rows = self._storage.read(f"SELECT {_COLUMNS} FROM travels WHERE device = ? AND ts >= ?"  # noqa: S608
                                      " ORDER BY id", (device, since_ts))
        return [Travel(*row) for row in rows]

    def last_efo(self, device: str) -> Travel | None:
        rows = self._storage.read(f"SELECT {_COLUMNS} FROM travels WHERE device = ? AND efo = 1"  # noqa: S608
                                  " ORDER BY id DESC LIMIT 1", (device,))
        return Travel(*rows[0]) if rows else None

    def count(self, device: str) -> int:
        rows = self._storage.read("SELECT count(*) FROM travels WHERE device = ?", (device,))
        return rows[0][0] if rows else 0

    def save_baseline(self, device: str, metric: str, value: float) -> None:
        row = (device, metric, value)
        self._storage.write(lambda db: db.execute(
            "INSERT OR REPLACE INTO baselines (device, metric, value) VALUES (?, ?, ?)", row),
            {"table": "baselines", "device": device, "metric": metric, "value": value})

    def baselines(self, device: str) -> dict[str, float]:
        return dict(self._storage.read("SELECT metric, value FROM baselines WHERE device = ?", (device,)))

    def add_mark(self, mark: Mark) -> None:
        """A technician's baseline reset or service, on disk before the command is answered (or kept for later)."""
        row = astuple(mark)

        def insert(db) -> None:
            db.execute(f"INSERT INTO condition_marks ({_MARKS}) VALUES (?, ?, ?, ?, ?, ?)", row)  # noqa: S608
            if mark.what == "baseline_reset":
                db.execute("DELETE FROM baselines WHERE device = ?", (mark.device,))

        self._storage.write(insert, {"table": "condition_marks", "device": mark.device, "what": mark.what,
                                     "by": mark.by, "reason": mark.reason}, essential=True, durable=True)

    def last_mark(self, device: str, what: str) -> Mark | None:
        rows = self._storage.read(f"SELECT {_MARKS} FROM condition_marks WHERE device = ? AND what = ?"  # noqa: S608
                                  " ORDER BY id DESC LIMIT 1", (device, what))
        return Mark(*rows[0]) if rows else None
