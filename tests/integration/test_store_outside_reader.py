"""A reader in another process (a technician's sqlite3, a test) must not make barrierd's later records vanish."""

from __future__ import annotations

import subprocess
import sys

from controller.event_store import EventStore

READ = "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); print(db.execute('SELECT count(*) FROM events').fetchone()[0]); db.close()"


def outside_count(path) -> int:
    return int(subprocess.run([sys.executable, "-c", READ, str(path)], capture_output=True, text=True, check=True,
                              timeout=30).stdout)


def test_rows_written_after_an_outside_reader_closed_are_kept(tmp_path):
    path = tmp_path / "events.sqlite"
    store = EventStore(path)
    store.record_event("daemon", "site", "barrierd started")
    store.sync()  # fsyncs the database and its WAL: must not give up the locks SQLite holds on them
    assert outside_count(path) == 1
    store.record_event("state_change", "gate-1", "gate-1: closed → opening")
    assert outside_count(path) == 2, "the row written after the reader closed is seen"
    store.sync()
    store.record_event("daemon", "site", "barrierd stopped")
    store.close()
    assert outside_count(path) == 3
