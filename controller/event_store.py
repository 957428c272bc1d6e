"""The SQLite event store: every state change and every command, with who gave it and what came of it."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from controller.audit import SEALED_COLUMNS, Chain, ChainReport, load_or_create_key, verify
from controller.audit_head import AuditHead
from controller.auth import Caller
from controller.storage import Storage, StorageFailed

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
CREATE TABLE IF NOT EXISTS centre_seen (  -- ids of the centre's commands received, kept until they expire
    id         TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
"""


SYNC_PERIOD_S = 10.0  # the longest an event that is not a command waits to be on disk (and under the head)


class EventStore:
    """Append-only log in one SQLite file, on a Storage that keeps writes in order while the disk refuses them.

    Command rows and latches are written durably (fsync) before barrierd answers; state changes are not.
    """

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.monotonic):
        self.path = path
        self._key: bytes | None = None
        self._events: Chain | None = None
        self._commands: Chain | None = None
        self._head: AuditHead | None = None  # the signed end of each chain, in a file beside the database
        self.storage = Storage(path, SCHEMA, self._on_open, clock=clock)
        self.in_flight: set[str] = set(self.load_in_flight())
        self.listeners: list[Callable[[dict], None]] = []  # told of every event once it is recorded
        self.unsaved_scopes: set[str] = set()  # latches (modes) whose last change is not yet on disk
        self._sync_fds: dict[Path, int] = {}  # kept open: see _sync_fd
        self._stale_fds: list[int] = []

    def _on_open(self, db: sqlite3.Connection) -> None:
        """Run on every (re)open: seal column on older files, the key, the end of each chain."""
        for table in SEALED_COLUMNS:  # a file from before the audit seal: its rows stay unsealed
            if "mac" not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
                db.execute(f"ALTER TABLE {table} ADD COLUMN mac TEXT")
        if self._key is None:
            self._key = load_or_create_key(None if self.in_memory else self.path.with_name(self.path.name + ".audit-key"))
        if self._head is None:
            self._head = AuditHead(None if self.in_memory else self.path.with_name(self.path.name + ".audit-head"),
                                   self._key, db)
        self._events = Chain(db, self._key, "events", self._head.last_id("events"))
        self._commands = Chain(db, self._key, "commands", self._head.last_id("commands"))

    @property
    def in_memory(self) -> bool:
        return str(self.path) == ":memory:"

    def close(self) -> None:
        self.sync()
        self.storage.close()
        for fd in [*self._sync_fds.values(), *self._stale_fds]:  # only now: SQLite holds no lock on the file
            os.close(fd)
        self._sync_fds.clear()
        self._stale_fds.clear()

    def sync(self) -> None:
        """Put every committed row on disk (fsync of the WAL and the file, no checkpoint), then the signed head
        that names them. Cheap when nothing was written since the last durable commit; never raises."""
        if self._head is None or self.storage.db is None or self.in_memory:
            return
        try:
            for name in (self.path, self.path.with_name(self.path.name + "-wal")):
                if name.exists():
                    os.fsync(self._sync_fd(name))
        except OSError:
            return  # the rows are not known to be on disk: the head stays where it was
        self._head.flush(durable=True)

    def _sync_fd(self, name: Path) -> int:
        """A descriptor of `name` kept open until close(). Closing any descriptor of the database or its WAL
        drops every POSIX lock this process holds on it, SQLite's included: another process's connection to
        the file (a reader) would then take itself for the last one on closing, checkpoint and delete the WAL
        that barrierd goes on writing to, and every later row would be lost."""
        fd = self._sync_fds.get(name)
        if fd is not None and os.fstat(fd).st_ino != os.stat(name).st_ino:
            self._stale_fds.append(fd)  # a file of that name made anew; the old one is closed with the store
            fd = None
        if fd is None:
            fd = self._sync_fds[name] = os.open(name, os.O_RDONLY)
        return fd

    async def keep_synced(self, period_s: float = SYNC_PERIOD_S) -> None:
        """Every period: state changes too on disk, and the signed head moved up to them."""
        while True:
            await asyncio.sleep(period_s)
            self.sync()

    def health(self) -> dict:
        return self.storage.health()

    def record_event(self, kind: str, subject: str, summary: str, *, durable: bool = False, essential: bool = False,
                     required: bool = False, **data) -> int | None:
        """Append an event; its id, or None when it was kept to be written later (see Storage.write)."""
        values = (time.time(), _text(kind), _text(subject), _text(summary), json.dumps(data, default=str))
        detail = {"table": "events", "ts": values[0], "kind": values[1], "subject": values[2],
                  "summary": values[3], "data": values[4]}
        event_id = self.storage.write(lambda db: self._append(db, "events", values), detail,
                                      durable=durable, essential=essential, required=required)
        if self.listeners:
            event = {"id": event_id, "ts": values[0], "kind": values[1], "subject": values[2], "summary": values[3],
                     "data": json.loads(values[4])}
            for listener in self.listeners:
                listener(event)
        return event_id

    def _append(self, db: sqlite3.Connection, table: str, values: tuple, flush_head: bool = False) -> int:
        """Insert a sealed row at the end of `table`; a row slipped in behind barrierd's back is built upon
        (it stays unverifiable, and `audit verify` names it) rather than losing this one. `flush_head` only
        after a durable (synchronous) commit: the signed head is rewritten, this row and all before it on disk."""
        chain = self._events if table == "events" else self._commands
        assert chain is not None
        columns = ", ".join(SEALED_COLUMNS[table]) + ", mac"
        marks = ", ".join("?" * (len(SEALED_COLUMNS[table]) + 1))
        for attempt in (1, 2):
            row, mac = chain.next_row(*values)
            try:
                db.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", (*row, mac))  # noqa: S608
            except sqlite3.IntegrityError:
                if attempt == 2:
                    raise
                chain.resync(db)
                continue
            chain.advance(row[0], mac)
            assert self._head is not None
            self._head.note(table, int(row[0]), mac)
            if flush_head:
                self._head.flush()
            return int(row[0])
        raise AssertionError("unreachable")

    def record_request(self, caller: Caller, command: str, args: dict, *, required: bool) -> int | None:
        """The record made before a command acts. With `required` (a command that is not securing) it is on
        disk before this returns, or StorageFailed and the command must not act; a securing command does not
        wait for the disk (its row with the outcome is synced once it has acted)."""
        return self.record_event(
            "command_requested", _subject(args), f"{caller.user}: {command} requested",
            durable=required, essential=True, required=required,
            uid=caller.uid, pid=caller.pid, role=caller.role.label, command=command, args=args,
        )

    def record_command(self, caller: Caller, command: str, args: dict, outcome: str, exit_code: int,
                       message: str, said: str | None = None) -> int | None:
        """The command row with its outcome (durable), and a short event for the event list (`said`: the
        outcome in a guard's words, the outcome itself if None)."""
        values = (time.time(), caller.uid, _text(caller.user), caller.pid, caller.role.label, _text(command),
                  json.dumps(args, default=str), outcome, exit_code, _text(message))
        detail = {"table": "commands", "ts": values[0], "uid": caller.uid, "user": values[2], "pid": caller.pid,
                  "role": caller.role.label, "command": values[5], "args": values[6], "outcome": outcome,
                  "exit_code": exit_code, "message": values[9]}
        command_id = self.storage.write(lambda db: self._append(db, "commands", values, True), detail,
                                        durable=True, essential=True)
        self.record_event("command", _subject(args), f"{values[2]}: {values[5]} → {said or outcome}",
                          uid=caller.uid, pid=caller.pid, command_id=command_id, message=values[9])
        return command_id

    def audit_heads(self) -> dict[str, str | None]:
        """The seal of the last row of each table: worth copying elsewhere (barrierd logs it)."""
        return {"events": self._events.head if self._events else None,
                "commands": self._commands.head if self._commands else None}

    def verify_audit(self) -> list[ChainReport]:
        """Check every seal; on its own read-only connection (safe in a thread) unless the store is in memory
        (then on the store's own connection: call it from the thread that owns the store)."""
        if self._key is None:
            raise StorageFailed(self.storage.problem or "the event store is not open")
        if self.in_memory:
            assert self.storage.db is not None
            return verify(self.storage.db, self._key, self._head)
        db = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
        try:
            return verify(db, self._key, self._head)
        finally:
            db.close()

    # ----- what survives a restart ----------------------------------------------------------------

    def save_mode(self, scope: str, mode: str, by: str, reason: str, *, required: bool = False,
                  durable: bool = True) -> bool:
        """Persist a latch (durable). False when kept for later (`unsaved_scopes` names it until written);
        with `required`, StorageFailed instead and nothing kept."""
        row = (scope, mode, _text(by), _text(reason), time.time())
        return self._write_mode(scope, lambda db: db.execute(
            "INSERT OR REPLACE INTO modes (scope, mode, by, reason, since) VALUES (?, ?, ?, ?, ?)", row),
            {"table": "modes", "scope": scope, "mode": mode, "by": row[2], "reason": row[3]}, required, durable)

    def clear_mode(self, scope: str) -> bool:
        return self._write_mode(scope, lambda db: db.execute("DELETE FROM modes WHERE scope = ?", (scope,)),
                                {"table": "modes", "scope": scope, "mode": None}, False)

    def _write_mode(self, scope: str, op, detail: dict, required: bool, durable: bool = True) -> bool:
        def saved() -> None:
            self.unsaved_scopes.discard(scope)

        result = self.storage.write(lambda db: op(db) and True, detail, essential=True, durable=durable,
                                    required=required, on_done=saved)
        if result is None:
            self.unsaved_scopes.add(scope)
            return False
        return True

    def save_in_flight(self, device: str, verb: str, by: str) -> None:
        row = (device, verb, _text(by), time.time())
        self.storage.write(lambda db: db.execute(
            "INSERT OR REPLACE INTO in_flight (device, verb, by, at) VALUES (?, ?, ?, ?)", row),
            {"table": "in_flight", "device": device, "verb": verb, "by": row[2]})
        self.in_flight.add(device)

    def clear_in_flight(self, device: str | None = None) -> None:
        if device is None:
            self.storage.write(lambda db: db.execute("DELETE FROM in_flight"), {"table": "in_flight", "device": "*"})
            self.in_flight.clear()
        else:
            self.storage.write(lambda db: db.execute("DELETE FROM in_flight WHERE device = ?", (device,)),
                               {"table": "in_flight", "device": device})
            self.in_flight.discard(device)

    def load_in_flight(self) -> dict[str, tuple[str, str, float]]:
        rows = self.storage.read("SELECT device, verb, by, at FROM in_flight")
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def load_modes(self) -> dict[str, tuple[str, str, str, float]]:
        """scope -> (mode, by, reason, since) as saved before the last stop."""
        rows = self.storage.read("SELECT scope, mode, by, reason, since FROM modes")
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    def save_centre_id(self, command_id: str, expires_at: float) -> None:
        """Remember a centre command's id until it expires (a replay is refused); never waits for the disk."""
        row = (_text(command_id), float(expires_at))
        self.storage.write(lambda db: db.execute(
            "INSERT OR IGNORE INTO centre_seen (id, expires_at) VALUES (?, ?)", row),
            {"table": "centre_seen", "id": row[0]}, essential=True)

    def load_centre_ids(self, now: float) -> set[str]:
        """The centre command ids not yet expired at `now`; the expired ones are deleted."""
        self.storage.write(lambda db: db.execute("DELETE FROM centre_seen WHERE expires_at < ?", (now,)),
                           {"table": "centre_seen", "pruned_before": now})
        return {r[0] for r in self.storage.read("SELECT id FROM centre_seen WHERE expires_at >= ?", (now,))}

    def recent_events(self, limit: int = 50, after_id: int = 0) -> list[dict]:
        rows = self.storage.read(
            "SELECT id, ts, kind, subject, summary, data FROM events WHERE id > ? ORDER BY id DESC LIMIT ?",
            (after_id, limit),
        )
        return [
            {"id": r[0], "ts": r[1], "kind": r[2], "subject": r[3], "summary": r[4], "data": json.loads(r[5])}
            for r in reversed(rows)
        ]

    def recent_commands(self, limit: int = 50) -> list[dict]:
        rows = self.storage.read(
            "SELECT id, ts, uid, user, pid, role, command, args, outcome, exit_code, message"
            " FROM commands ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        keys = ("id", "ts", "uid", "user", "pid", "role", "command", "args", "outcome", "exit_code", "message")
        result = [dict(zip(keys, r, strict=True)) for r in reversed(rows)]
        for row in result:
            row["args"] = json.loads(row["args"])
        return result


def _subject(args: dict) -> str:
    subject = args.get("device") or args.get("lane") or "site"
    return _text(subject) if isinstance(subject, str) else "site"


def _text(value: object) -> str:
    """Text as it can be stored: anything that is not valid Unicode (lone surrogates) is escaped, never lost."""
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
