"""The SQLite event store: every state change and every command, with who gave it and what came of it."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
import time
from dataclasses import dataclass
from pathlib import Path

from controller.audit import SEALED_COLUMNS, Chain, ChainReport, load_or_create_key, verify

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    ts      REAL NOT NULL,
    kind    TEXT NOT NULL,          -- state_change, command, daemon, ...
    subject TEXT NOT NULL,          -- device, lane, PLC or 'site'
    summary TEXT NOT NULL,
    data    TEXT NOT NULL,          -- JSON
    mac     TEXT                    -- audit seal (controller/audit.py)
);
CREATE TABLE IF NOT EXISTS commands (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    ts       REAL NOT NULL,
    uid      INTEGER NOT NULL,
    user     TEXT NOT NULL,
    pid      INTEGER NOT NULL,
    role     TEXT NOT NULL,
    command  TEXT NOT NULL,
    args     TEXT NOT NULL,         -- JSON
    outcome  TEXT NOT NULL,         -- done, refused, error, not_authorised, usage
    exit_code INTEGER NOT NULL,
    message  TEXT NOT NULL,
    mac      TEXT                   -- audit seal (controller/audit.py)
);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
CREATE TABLE IF NOT EXISTS in_flight (  -- commands accepted whose motion is not yet over
    device  TEXT PRIMARY KEY,
    verb    TEXT NOT NULL,
    by      TEXT NOT NULL,
    at      REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS modes (  -- what must survive a restart: lane modes, the site lockdown
    scope   TEXT PRIMARY KEY,       -- 'lane:NAME' or 'site'
    mode    TEXT NOT NULL,
    by      TEXT NOT NULL,
    reason  TEXT NOT NULL,
    since   REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Caller:
    """Who sent a request over the control socket (from SO_PEERCRED)."""

    uid: int
    gid: int
    pid: int
    user: str
    role: str


class EventStore:
    """Append-only log in one SQLite file; writes are committed one by one so a crash loses nothing."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        for table in SEALED_COLUMNS:  # a file from before the audit seal: its rows stay unsealed
            if "mac" not in {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN mac TEXT")
        self._in_memory = str(path) == ":memory:"
        self._key = load_or_create_key(None if self._in_memory else path.with_name(path.name + ".audit-key"))
        self._events = Chain(self._db, self._key, "events")
        self._commands = Chain(self._db, self._key, "commands")
        self.in_flight: set[str] = set(self.load_in_flight())
        self.listeners: list[Callable[[dict], None]] = []  # told of every event once it is stored

    @property
    def db(self) -> sqlite3.Connection:
        return self._db

    def close(self) -> None:
        self._db.close()

    def record_event(self, kind: str, subject: str, summary: str, **data) -> int:
        values = (time.time(), kind, subject, summary, json.dumps(data, default=str))
        event_id = self._append("events", self._events, values)
        if self.listeners:
            event = {"id": event_id, "ts": values[0], "kind": kind, "subject": subject, "summary": summary,
                     "data": json.loads(values[4])}
            for listener in self.listeners:
                listener(event)
        return event_id

    def _append(self, table: str, chain: Chain, values: tuple) -> int:
        """Insert a sealed row at the end of `table`; a row slipped in behind barrierd's back is built upon
        (it stays unverifiable, and `audit verify` names it) rather than losing this one."""
        columns = ", ".join(SEALED_COLUMNS[table]) + ", mac"
        marks = ", ".join("?" * (len(SEALED_COLUMNS[table]) + 1))
        for attempt in (1, 2):
            row, mac = chain.next_row(*values)
            try:
                self._db.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", (*row, mac))  # noqa: S608
            except sqlite3.IntegrityError:
                if attempt == 2:
                    raise
                chain.resync(self._db)
                continue
            chain.advance(row[0], mac)
            return int(row[0])
        raise AssertionError("unreachable")

    def record_command(self, caller: Caller, command: str, args: dict, outcome: str, exit_code: int, message: str) -> int:
        values = (time.time(), caller.uid, caller.user, caller.pid, caller.role, command,
                  json.dumps(args, default=str), outcome, exit_code, message)
        command_id = self._append("commands", self._commands, values)
        self.record_event(
            "command", args.get("device") or args.get("lane") or "site", f"{caller.user}: {command} → {outcome}",
            uid=caller.uid, pid=caller.pid, args=args, message=message,
        )
        return command_id

    def audit_heads(self) -> dict[str, str]:
        """The seal of the last row of each table: worth copying elsewhere (barrierd logs it)."""
        return {"events": self._events.head, "commands": self._commands.head}

    @property
    def in_memory(self) -> bool:
        return self._in_memory

    def verify_audit(self) -> list[ChainReport]:
        """Check every seal; on its own read-only connection (safe in a thread) unless the store is in memory
        (then on the store's own connection: call it from the thread that owns the store)."""
        if self._in_memory:
            return verify(self._db, self._key)
        db = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
        try:
            return verify(db, self._key)
        finally:
            db.close()

    def save_mode(self, scope: str, mode: str, by: str, reason: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO modes (scope, mode, by, reason, since) VALUES (?, ?, ?, ?, ?)",
            (scope, mode, by, reason, time.time()),
        )

    def clear_mode(self, scope: str) -> None:
        self._db.execute("DELETE FROM modes WHERE scope = ?", (scope,))

    def save_in_flight(self, device: str, verb: str, by: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO in_flight (device, verb, by, at) VALUES (?, ?, ?, ?)",
                         (device, verb, by, time.time()))
        self.in_flight.add(device)

    def clear_in_flight(self, device: str | None = None) -> None:
        if device is None:
            self._db.execute("DELETE FROM in_flight")
            self.in_flight.clear()
        else:
            self._db.execute("DELETE FROM in_flight WHERE device = ?", (device,))
            self.in_flight.discard(device)

    def load_in_flight(self) -> dict[str, tuple[str, str, float]]:
        rows = self._db.execute("SELECT device, verb, by, at FROM in_flight").fetchall()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def load_modes(self) -> dict[str, tuple[str, str, str, float]]:
        """scope -> (mode, by, reason, since) as saved before the last stop."""
        rows = self._db.execute("SELECT scope, mode, by, reason, since FROM modes").fetchall()
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    def recent_events(self, limit: int = 50, after_id: int = 0) -> list[dict]:
        rows = self._db.execute(
            "SELECT id, ts, kind, subject, summary, data FROM events WHERE id > ? ORDER BY id DESC LIMIT ?",
            (after_id, limit),
        ).fetchall()
        return [
            {"id": r[0], "ts": r[1], "kind": r[2], "subject": r[3], "summary": r[4], "data": json.loads(r[5])}
            for r in reversed(rows)
        ]

    def recent_commands(self, limit: int = 50) -> list[dict]:
        rows = self._db.execute(
            "SELECT id, ts, uid, user, pid, role, command, args, outcome, exit_code, message"
            " FROM commands ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        keys = ("id", "ts", "uid", "user", "pid", "role", "command", "args", "outcome", "exit_code", "message")
        result = [dict(zip(keys, r, strict=True)) for r in reversed(rows)]
        for row in result:
            row["args"] = json.loads(row["args"])
        return result
