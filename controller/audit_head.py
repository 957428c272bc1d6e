"""The signed head of the audit chains, kept in a file beside the database so rows cut from the end are found.

The seal chain (controller/audit.py) shows a row altered, removed in the middle or slipped in, but
someone who deletes the last rows and rewinds `sqlite_sequence` leaves a shorter chain that is still
whole. The head file holds, per table, the id and seal of the last row known to be on disk, with an
HMAC of that content under the audit key: `audit verify` reports a table that ends before the head
(truncated), a row there with another seal (replaced), and a head file that does not carry its seal
(altered). The head is rewritten only after a durable commit, so a power cut can make it lag behind
the tables (harmless: rows after it are checked by the chain) but never run ahead of them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from controller.audit import GENESIS, SEALED_COLUMNS, ChainReport

FORMAT = "barrierd-audit-head/1"


@dataclass(frozen=True)
class HeadClaims:
    """What the head file says when read: per table (last id, its seal); or why it cannot be believed."""

    tables: dict[str, tuple[int, str]]
    found: bool  # a file was there
    problem: str | None = None  # altered, unreadable or removed: every table is reported broken


class AuditHead:
    """The noted end of each chain (in memory, cheap) and the file it is flushed to after durable commits."""

    def __init__(self, path: Path | None, key: bytes, db: sqlite3.Connection):
        """The head for the store `db` (read once, to know which tables had sealed rows but no head file)."""
        self.path, self._key = path, key
        self._noted: dict[str, tuple[int, str]] = {}
        self._written: bytes | None = None  # the file as this process last wrote or read it
        self._directory_synced = True
        self.altered: str | None = None  # why the file is not to be trusted: it is kept as evidence, never rewritten
        self.write_error: str | None = None  # the last flush that failed (the head lags; nothing else is lost)
        self.unvouched_at_start: set[str] = set()  # tables with sealed rows and no head file when opened
        if path is not None and not self._load(path):
            self.unvouched_at_start = {table for table in SEALED_COLUMNS if db.execute(
                f"SELECT 1 FROM {table} WHERE mac IS NOT NULL LIMIT 1").fetchone()}  # noqa: S608

    def _load(self, path: Path) -> bool:
        """Take the noted heads from the file; False when there is none."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return False
        except OSError as exc:
            self.write_error = f"cannot read the head file: {exc}"
            return True
        tables = self._decode(raw)
        if tables is None:
            self.altered = f"the head file {path.name} was altered: its seal does not match its content"
            return True
        self._noted, self._written = tables, raw
        return True

    def last_id(self, table: str) -> int:
        """The highest row id the head vouches for: new rows are numbered after it, so rows cut from the end
        leave a gap the chain reports for good."""
        return self._noted.get(table, (0, GENESIS))[0]

    def note(self, table: str, row_id: int, mac: str) -> None:
        """A row was committed at the end of `table` (not necessarily on disk yet)."""
        self._noted[table] = (row_id, mac)

    def flush(self, *, durable: bool = False) -> None:
        """Write the noted heads to the file; call only once every noted row is on disk (after a synchronous
        commit). The file is always replaced whole (a crash leaves the old or the new one); `durable` also
        syncs the directory so the new one survives a power cut. Never raises: a head that cannot be written
        lags behind, which verify tolerates, and `write_error` says why."""
        if self.path is None or self.altered is not None or not self._noted:
            return
        content = self._encode(self._noted)
        if content == self._written and (self._directory_synced or not durable):
            return
        try:
            on_disk = self.path.read_bytes()
        except FileNotFoundError:
            on_disk = None
        except OSError as exc:
            self.write_error = f"cannot read the head file: {exc}"
            return
        if on_disk != self._written:
            self.altered = f"the head file {self.path.name} was altered or removed while barrierd ran"
            return
        try:
            if content != self._written:
                _replace(self.path, content)
                self._written, self._directory_synced = content, False
            if durable:
                _sync_directory(self.path.parent)
                self._directory_synced = True
        except OSError as exc:
            self.write_error = f"cannot write the head file: {exc}"
            return
        self.write_error = None

    def read_claims(self) -> HeadClaims:
        """The file as it is now; read before the tables, so every row it names was committed before they are."""
        if self.path is None:
            return HeadClaims({}, found=False)
        if self.altered is not None:
            return HeadClaims({}, found=True, problem=self.altered)
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            if self._written is not None:
                return HeadClaims({}, found=False, problem=f"the head file {self.path.name} was removed")
            return HeadClaims({}, found=False)
        except OSError as exc:
            return HeadClaims({}, found=False, problem=f"cannot read the head file: {exc}")
        tables = self._decode(raw)
        if tables is None:
            return HeadClaims({}, found=True, problem=f"the head file {self.path.name} was altered: its seal does "
                                                      "not match its content")
        return HeadClaims(tables, found=True)

    def judge(self, db: sqlite3.Connection, report: ChainReport, claims: HeadClaims) -> ChainReport:
        """The chain's report for one table, with what the head file says about its end."""
        if not report.intact or self.path is None:
            return report
        if claims.problem is not None:
            return dataclasses.replace(report, why=claims.problem)
        if report.table not in claims.tables:
            if not claims.found and report.head != GENESIS:
                return dataclasses.replace(report, note="no head file yet: rows cut from the end cannot be detected")
            return report
        last_id, mac = claims.tables[report.table]
        row = db.execute(f"SELECT mac FROM {report.table} WHERE id = ?", (last_id,)).fetchone()  # noqa: S608
        if row is None:
            (end,) = db.execute(f"SELECT coalesce(max(id), 0) FROM {report.table}").fetchone()  # noqa: S608
            if end < last_id:
                return dataclasses.replace(report, broken_at=end + 1, why=(
                    f"rows {end + 1}..{last_id} were written and are gone (truncated: the head file says the table "
                    f"reached row {last_id})"))
            return dataclasses.replace(report, broken_at=last_id, why=f"row {last_id}, named by the head file, is gone")
        if not hmac.compare_digest(str(row[0]), mac):
            return dataclasses.replace(report, broken_at=last_id,
                                       why="seal differs from the head file's: the row was replaced")
        notes = [f"{self.write_error}: the head lags behind the tables"] if self.write_error else []
        if report.table in self.unvouched_at_start:
            notes.append("there was no head file when barrierd started: rows cut from the end before then cannot "
                         "be detected")
        return dataclasses.replace(report, note="; ".join(notes)) if notes else report

    def _encode(self, tables: dict[str, tuple[int, str]]) -> bytes:
        body = {name: [row_id, mac] for name, (row_id, mac) in sorted(tables.items())}
        return (json.dumps({"format": FORMAT, "tables": body, "seal": self._seal(body)}, indent=1) + "\n").encode()

    def _decode(self, raw: bytes) -> dict[str, tuple[int, str]] | None:
        """The tables of a head file that carries its own seal; None for anything else."""
        try:
            content = json.loads(raw)
            body, seal = content["tables"], content["seal"]
            if content["format"] != FORMAT or not hmac.compare_digest(str(seal), self._seal(body)):
                return None
            return {str(name): (int(row_id), str(mac)) for name, (row_id, mac) in body.items()}
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    def _seal(self, body: dict) -> str:
        message = json.dumps([FORMAT, body], sort_keys=True, separators=(",", ":")).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


def _replace(path: Path, content: bytes) -> None:
    """Write a private temporary file, sync it, and rename it over `path`: the name holds the old or the new."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, content)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
