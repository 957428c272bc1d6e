"""The audit seal over events and commands: intact after normal use, and every kind of tampering named by row."""

from __future__ import annotations

import sqlite3
import stat

import pytest

from controller.audit import GENESIS, KEY_BYTES
from controller.auth import Caller
from controller.event_store import EventStore

GUARD = Caller(uid=1001, gid=1001, pid=42, user="guard", role="operator")


@pytest.fixture
def store(tmp_path):
    store = EventStore(tmp_path / "events.sqlite")
    for i in range(5):
        store.record_event("state_change", f"gate-{i}", f"gate-{i}: closed → opening", step=i)
    store.record_command(GUARD, "open", {"device": "gate-1"}, "done", 0, "gate-1 opening")
    store.record_command(GUARD, "lockdown", {"reason": "drill ünïcode"}, "done", 0, "all secured")
    yield store
    store.close()


def tamper(store: EventStore, sql: str, *params: object) -> None:
    """Change the file behind the store's back, as someone with sqlite3 would."""
    db = sqlite3.connect(store.path, isolation_level=None)
    db.execute(sql, params)
    db.close()


def report(store: EventStore, table: str):
    return next(r for r in store.verify_audit() if r.table == table)


def test_a_store_in_normal_use_verifies_intact(store):
    events, commands = store.verify_audit()
    assert (events.table, events.rows, events.intact, events.unsealed) == ("events", 7, True, 0)  # 5 + 2 commands
    assert (commands.table, commands.rows, commands.intact) == ("commands", 2, True)
    assert store.audit_heads() == {"events": events.head, "commands": commands.head}
    assert events.head != GENESIS


@pytest.mark.parametrize(
    ("sql", "table", "broken_at", "why"),
    [
        ("UPDATE events SET summary = 'gate-2: nothing happened' WHERE id = 3", "events", 3, "altered"),
        ("UPDATE commands SET user = 'somebody' WHERE id = 1", "commands", 1, "altered"),
        ("DELETE FROM events WHERE id = 4", "events", 5, "rows 4..4 are missing"),
        ("DELETE FROM events WHERE id >= 6", "events", 6, "rows 6..7 were written and are gone"),
        ("INSERT INTO events (ts, kind, subject, summary, data) VALUES (0, 'x', 'gate-1', 'no seal', '{}')",
         "events", 8, "no seal"),
    ],
    ids=["altered-event", "altered-command", "deleted-in-the-middle", "deleted-at-the-end", "unsealed-row"],
)
def test_tampering_is_named_by_table_and_row(store, sql, table, broken_at, why):
    tamper(store, sql)
    found = report(store, table)
    assert not found.intact and found.broken_at == broken_at and why in found.why
    other = "commands" if table == "events" else "events"
    assert report(store, other).intact, "the other table is still vouched for"


def test_a_row_slipped_in_is_named_and_the_store_goes_on_recording(store):
    tamper(store, "INSERT INTO events (id, ts, kind, subject, summary, data, mac) VALUES (8, 0, 'x', 'gate-1', 'forged', '{}', ?)",
           "f" * 64)
    later = store.record_event("state_change", "gate-1", "gate-1: opening → open")  # its planned id was taken
    assert later == 9
    events = report(store, "events")
    assert events.broken_at == 8 and "altered" in events.why


def test_the_key_is_private_and_the_chain_continues_across_a_restart(tmp_path, store):
    key_file = tmp_path / "events.sqlite.audit-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_bytes()) == KEY_BYTES
    heads = store.audit_heads()
    store.close()
    again = EventStore(tmp_path / "events.sqlite")
    assert again.audit_heads() == heads
    again.record_event("daemon", "site", "barrierd started")
    assert all(r.intact for r in again.verify_audit())
    again.close()


def test_a_different_key_does_not_verify(tmp_path, store):
    store.close()
    (tmp_path / "events.sqlite.audit-key").write_bytes(b"\x01" * KEY_BYTES)
    other = EventStore(tmp_path / "events.sqlite")
    events = report(other, "events")
    assert events.broken_at == 1
    other.close()


def test_a_file_from_before_the_seal_keeps_its_rows_as_unsealed_and_seals_new_ones(tmp_path):
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, kind TEXT NOT NULL,"
                " subject TEXT NOT NULL, summary TEXT NOT NULL, data TEXT NOT NULL)")
    old.executemany("INSERT INTO events (ts, kind, subject, summary, data) VALUES (?, ?, ?, ?, ?)",
                    [(1.0, "daemon", "site", "old start", "{}"), (2.0, "daemon", "site", "old stop", "{}")])
    old.close()
    store = EventStore(path)
    store.record_event("daemon", "site", "barrierd started")
    events = report(store, "events")
    assert (events.intact, events.rows, events.unsealed) == (True, 3, 2)
    store.close()


def test_a_key_file_of_the_wrong_size_is_refused(tmp_path):
    (tmp_path / "events.sqlite.audit-key").write_bytes(b"short")
    with pytest.raises(ValueError, match="audit key is 5 bytes"):
        EventStore(tmp_path / "events.sqlite")


def test_values_of_another_type_are_sealed_as_sqlite_stores_them(tmp_path):
    """A client may send a number where a name is expected; the honest row must still verify."""
    store = EventStore(tmp_path / "events.sqlite")
    store.record_command(GUARD, "open", {"device": 5}, "usage", 2, "no device named 5")
    store.record_event("state_change", 7, 8, n=1)  # type: ignore[arg-type]
    assert all(r.intact for r in store.verify_audit())
    store.close()


def test_no_temporary_key_file_is_left_behind(tmp_path):
    EventStore(tmp_path / "events.sqlite").close()
    assert sorted(p.name for p in tmp_path.iterdir() if "key" in p.name) == ["events.sqlite.audit-key"]
