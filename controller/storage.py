"""The SQLite file under barrierd's records: writes never raise, and are kept in order while the disk refuses them.

A full or read-only disk must degrade recording, never supervision. Every write goes through
`Storage.write`: it runs at once when the file takes writes; otherwise it is logged to the journal
with everything the row would hold and kept, in order, to be written as soon as the file takes
writes again (retried at most once a RETRY_S). A write that must not be deferred (the record of a
command that would open something) raises StorageFailed instead, and the caller refuses to act.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("controller.storage")

RETRY_S = 1.0
MAX_PENDING = 10_000  # records kept in memory while the disk refuses them; the journal has every one
# What a refusing disk raises: full, read-only, I/O error, locked, unopenable. IntegrityError is a
# DatabaseError too but means the row itself is wrong, not the disk (handled apart).
STORAGE_ERRORS: tuple[type[BaseException], ...] = (sqlite3.OperationalError, sqlite3.DatabaseError, OSError)

Op = Callable[[sqlite3.Connection], Any]


class StorageFailed(Exception):
    """The store cannot write now, and the caller asked that this write not be deferred."""


@dataclass
class PendingWrite:
    op: Op
    detail: dict  # what the row holds, as logged to the journal
    essential: bool  # commands and latches: never dropped to make room
    durable: bool
    on_done: Callable[[], None] | None


class Storage:
    """One SQLite connection (WAL) with a problem state, a queue of writes kept for later, and reopening."""

    def __init__(self, path: Path, schema: str, on_open: Callable[[sqlite3.Connection], None] | None = None,
                 *, clock: Callable[[], float] = time.monotonic):
        self.path = path
        self._schemas = [schema]
        self._on_open = on_open
        self._clock = clock
        self.db: sqlite3.Connection | None = None
        self.reader: sqlite3.Connection | None = None  # read-only view of the file while it cannot be opened
        self.problem: str | None = None
        self.problem_since: float | None = None
        self.lost = 0  # records dropped from memory for room (still in the journal)
        self._pending: deque[PendingWrite] = deque()
        self._retry_at = 0.0
        self.listeners: list[Callable[[str | None], None]] = []  # told when the problem starts or ends
        try:
            self._open()
        except STORAGE_ERRORS as exc:
            self._fail(exc, "cannot open the event store")
            self.reader = _read_only(path)

    @property
    def in_memory(self) -> bool:
        return str(self.path) == ":memory:"

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add_schema(self, schema: str) -> None:
        """Another table set kept in the same file (created now if open, and on every reopen)."""
        self._schemas.append(schema)
        if self.db is not None:
            try:
                self.db.executescript(schema)
            except STORAGE_ERRORS as exc:
                self._fail(exc)

    def _open(self) -> None:
        if not self.in_memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(self.path), isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            for schema in self._schemas:
                db.executescript(schema)
            if self._on_open is not None:
                self._on_open(db)
        except BaseException:
            db.close()
            raise
        self.db = db
        if self.reader is not None:
            self.reader.close()
            self.reader = None

    def close(self) -> None:
        if self._pending:
            log.error("records_not_stored", count=len(self._pending), problem=self.problem,
                      note="each was logged to the journal when it was kept")
        for db in (self.db, self.reader):
            if db is not None:
                db.close()
        self.db = self.reader = None

    # ----- reads ----------------------------------------------------------------------------------

    def read(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows from the file; none when it cannot be read (the problem is in `problem`)."""
        db = self.db or self.reader
        if db is None:
            return []
        try:
            return db.execute(sql, params).fetchall()
        except STORAGE_ERRORS as exc:
            log.warning("storage_read_failed", error=str(exc), path=str(self.path))
            return []

    # ----- writes ---------------------------------------------------------------------------------

    def write(self, op: Op, detail: dict, *, essential: bool = False, durable: bool = False,
              required: bool = False, on_done: Callable[[], None] | None = None) -> Any:
        """Run `op` on the file now and return its result; else keep it for later and return None, or with
        `required` raise StorageFailed and keep nothing. `durable`: on disk (fsync) before this returns."""
        if self._pending or self.db is None:
            self.retry()
        failure: BaseException | None = None
        if not self._pending and self.db is not None:
            try:
                result = self._run(op, durable)
            except sqlite3.IntegrityError as exc:
                return self._rejected(exc, detail)
            except STORAGE_ERRORS as exc:
                failure = exc
            else:
                if on_done is not None:
                    on_done()
                return result
        if not required:  # kept before the problem is announced: what the announcement records comes after it
            self._keep(PendingWrite(op, detail, essential, durable, on_done), failure)
        if failure is not None:
            self._fail(failure)
        if required:
            raise StorageFailed(self.problem or "the event store is not writable")
        return None

    def _run(self, op: Op, durable: bool) -> Any:
        assert self.db is not None
        if not durable:
            return op(self.db)
        self.db.execute("PRAGMA synchronous=FULL")  # this commit syncs the WAL, and every row before it
        try:
            return op(self.db)
        finally:
            self.db.execute("PRAGMA synchronous=NORMAL")

    def _rejected(self, exc: Exception, detail: dict) -> None:
        log.error("record_rejected", error=str(exc), **detail)
        return None

    def _keep(self, write: PendingWrite, error: BaseException | None = None) -> None:
        log.warning("record_kept_for_later", problem=str(error) if error else self.problem, **write.detail)
        self._pending.append(write)
        if len(self._pending) > MAX_PENDING:
            victim = next((w for w in self._pending if not w.essential), self._pending[0])
            self._pending.remove(victim)
            self.lost += 1
            log.error("record_dropped_from_memory", kept=len(self._pending), **victim.detail)

    def retry(self, *, force: bool = False) -> bool:
        """Reopen the file if needed and write what was kept, in order; True once nothing is left."""
        now = self._clock()
        if not force and now < self._retry_at:
            return not self._pending and self.db is not None
        self._retry_at = now + RETRY_S
        if self.db is None:
            try:
                self._open()
            except STORAGE_ERRORS as exc:
                self._fail(exc, "cannot open the event store")
                return False
        while self._pending:
            write = self._pending[0]
            try:
                self._run(write.op, write.durable)
            except sqlite3.IntegrityError as exc:
                self._rejected(exc, write.detail)
            except STORAGE_ERRORS as exc:
                self._fail(exc)
                return False
            else:
                if write.on_done is not None:
                    write.on_done()
            self._pending.popleft()
        if self.problem is not None:
            log.info("storage_recovered", path=str(self.path), problem=self.problem, lost=self.lost)
            self.problem = self.problem_since = None
            self._tell()
        return True

    async def keep_retrying(self) -> None:
        """Write what was kept as soon as the file takes writes again, with no other write needed to try."""
        while True:
            await asyncio.sleep(RETRY_S)
            if self._pending or self.db is None:
                self.retry(force=True)

    def _fail(self, exc: BaseException, what: str = "the event store cannot write") -> None:
        self._retry_at = self._clock() + RETRY_S
        problem = f"{what}: {exc}"
        if self.problem is None:
            self.problem, self.problem_since = problem, time.time()
            log.error("storage_failed", path=str(self.path), error=problem)
            self._tell()
        else:
            self.problem = problem

    def _tell(self) -> None:
        for listener in self.listeners:
            listener(self.problem)

    def health(self) -> dict:
        return {"ok": self.problem is None, "problem": self.problem, "since": self.problem_since,
                "pending": len(self._pending), "lost": self.lost, "path": str(self.path)}


def _read_only(path: Path) -> sqlite3.Connection | None:
    """The file opened for reading only (saved latches must still be restored), or None."""
    if str(path) == ":memory:" or not path.exists():
        return None
    for query in ("mode=ro", "immutable=1"):
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?{query}", uri=True, isolation_level=None)
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return db
        except STORAGE_ERRORS:
            continue
    return None
