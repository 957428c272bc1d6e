"""The audit seal: each event and command row carries an HMAC of its content and of the row before it.

An edit, a deletion or an insertion made in the SQLite file behind barrierd's back breaks the
chain, and `barrierctl audit verify` names the first row where it breaks. The key lives in a file
beside the database that only barrierd's user can read (created on first start), so the chain
cannot be recomputed by someone who can write the database but not read the key. Rows written
before the seal existed are counted as unsealed, and may only come first. Rows cut from the end of a
table are found through the signed head kept outside the database (controller/audit_head.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

GENESIS = "0" * 64  # what the first sealed row of a table links to
KEY_BYTES = 32


class HeadJudge(Protocol):
    """What verify asks of the signed head beside the database (controller/audit_head.AuditHead)."""

    def read_claims(self) -> Any: ...

    def judge(self, db: sqlite3.Connection, report: ChainReport, claims: Any) -> ChainReport: ...


class AuditKeyError(ValueError):
    """The key file exists but cannot be the key (wrong size): nothing is sealed with it."""

# The sealed columns of each table, in the order they are hashed (the seal itself is `mac`), and the
# type SQLite stores each as: a value is sealed as it will read back, so a caller's 5 for a TEXT
# column (stored '5') cannot make an honest row fail verification.
SEALED_COLUMNS = {
    "events": ("id", "ts", "kind", "subject", "summary", "data"),
    "commands": ("id", "ts", "uid", "user", "pid", "role", "command", "args", "outcome", "exit_code", "message"),
}
COLUMN_TYPES: dict[str, tuple[type, ...]] = {
    "events": (int, float, str, str, str, str),
    "commands": (int, float, int, str, int, str, str, str, str, int, str),
}


def load_or_create_key(path: Path | None) -> bytes:
    """The key in `path` (created with mode 0600 if missing); a key of this process alone if None."""
    if path is None:
        return secrets.token_bytes(KEY_BYTES)
    if not path.exists():
        _write_new_key(path, secrets.token_bytes(KEY_BYTES))
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise AuditKeyError(f"{path}: audit key is {len(key)} bytes, not {KEY_BYTES}; refusing to seal with it")
    return key


def _write_new_key(path: Path, key: bytes) -> None:
    """Write the key whole or not at all (a power cut must not leave an empty key): a private temporary
    file, flushed to disk, then linked into place (never over an existing key) and the directory flushed."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass  # another start made one first: use that one
    finally:
        temporary.unlink()
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def seal(key: bytes, table: str, previous: str, row: tuple) -> str:
    """The HMAC-SHA256 of one row (sealed columns in order) linked to the previous row's seal."""
    message = json.dumps([table, previous, *row], separators=(",", ":"), ensure_ascii=False).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


class Chain:
    """The running end of one table's chain: the id and seal the next row follows."""

    def __init__(self, db: sqlite3.Connection, key: bytes, table: str, at_least: int = 0):
        self.key, self.table, self.at_least = key, table, at_least
        self.resync(db)

    def resync(self, db: sqlite3.Connection) -> None:
        """Take the end of the chain from the table: its last row, or the highest id ever used (by the table,
        or as `at_least` says: the signed head's last id, so rows cut from the end leave a gap)."""
        last = db.execute(f"SELECT id, mac FROM {self.table} ORDER BY id DESC LIMIT 1").fetchone()  # noqa: S608
        used = db.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (self.table,)).fetchone()
        self.last_id = max(used[0] if used else 0, last[0] if last else 0, self.at_least)
        self.head = (last[1] if last and last[1] else None) or GENESIS

    def next_row(self, *values: object) -> tuple[tuple, str]:
        """The row (with its id, each value as SQLite stores it) to insert after the current end, and its
        seal; call advance() once written."""
        row = tuple(kind(value) for kind, value in zip(COLUMN_TYPES[self.table], (self.last_id + 1, *values),
                                                       strict=True))
        return row, seal(self.key, self.table, self.head, row)

    def advance(self, row_id: int, mac: str) -> None:
        self.last_id, self.head = row_id, mac


@dataclass(frozen=True)
class ChainReport:
    """What verify_table found in one table."""

    table: str
    rows: int
    unsealed: int  # rows written before the seal existed, at the start of the table
    head: str  # the seal of the last row
    broken_at: int | None = None  # first row id where the chain breaks (None when no row can be named)
    why: str | None = None  # set: the table cannot be vouched for
    note: str | None = None  # intact, with a limit on what could be checked

    @property
    def intact(self) -> bool:
        return self.why is None

    def describe(self) -> str:
        if not self.intact:
            where = f" at row {self.broken_at}" if self.broken_at is not None else ""
            return f"{self.table}: BROKEN{where}: {self.why}"
        unsealed = f", {self.unsealed} older rows unsealed" if self.unsealed else ""
        note = f" ({self.note})" if self.note else ""
        return f"{self.table}: {self.rows} rows intact{unsealed} (head {self.head[:12]}){note}"


def verify_table(db: sqlite3.Connection, key: bytes, table: str) -> ChainReport:
    """Walk one table in id order and check every seal, every link and that no id is missing."""
    columns = SEALED_COLUMNS[table]
    cursor = db.execute(f"SELECT {', '.join(columns)}, mac FROM {table} ORDER BY id")  # noqa: S608
    previous, previous_id, rows, unsealed = GENESIS, None, 0, 0

    def broken(row_id: int, why: str) -> ChainReport:
        return ChainReport(table, rows, unsealed, previous, row_id, why)

    for *values, mac in cursor:
        row_id = values[0]
        rows += 1
        if mac is None:
            if previous != GENESIS:
                return broken(row_id, "row has no seal after sealed rows (inserted behind barrierd's back)")
            unsealed += 1
            previous_id = row_id
            continue
        if previous != GENESIS and previous_id is not None and row_id != previous_id + 1:
            return broken(row_id, f"rows {previous_id + 1}..{row_id - 1} are missing (deleted)")
        if not hmac.compare_digest(mac, seal(key, table, previous, tuple(values))):
            return broken(row_id, "seal does not match: the row was altered, or a row before it was replaced")
        previous, previous_id = mac, row_id
    used = db.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
    if used and previous_id is not None and used[0] > previous_id and previous != GENESIS:
        return broken(previous_id + 1, f"rows {previous_id + 1}..{used[0]} were written and are gone (deleted)")
    return ChainReport(table, rows, unsealed, previous)


def verify(db: sqlite3.Connection, key: bytes, head: HeadJudge | None = None) -> list[ChainReport]:
    """Every sealed table, read in one transaction so rows being added meanwhile do not interfere, and
    held against the signed head (read first: every row it names was committed before the tables are read)."""
    claims = head.read_claims() if head is not None else None
    db.execute("BEGIN")
    try:
        reports = [verify_table(db, key, table) for table in SEALED_COLUMNS]
        if head is None or claims is None:
            return reports
        return [head.judge(db, report, claims) for report in reports]
    finally:
        db.execute("COMMIT")
