"""The signed head beside the database: rows cut from the end are found, a head file altered is named, a lagging one is fine."""

from __future__ import annotations

import json
import shutil
import sqlite3
import stat

import pytest

from controller import audit_head
from controller.auth import Caller
from controller.event_store import EventStore

GUARD = Caller(uid=1001, gid=1001, pid=42, user="guard", role="operator")


@pytest.fixture
def store(tmp_path):
    store = EventStore(tmp_path / "events.sqlite")
    for i in range(3):
        store.record_event("state_change", f"gate-{i}", f"gate-{i}: closed → opening")
    for verb in ("open", "close", "lockdown", "close"):
        store.record_command(GUARD, verb, {"device": "gate-1"}, "done", 0, "ok")
    yield store
    store.close()


def head_path(store: EventStore):
    return store.path.with_name(store.path.name + ".audit-head")


def head_tables(store: EventStore) -> dict[str, list]:
    return json.loads(head_path(store).read_text())["tables"]


def cut_the_end(store: EventStore, table: str, from_id: int) -> None:
    """Delete the last rows and rewind sqlite_sequence, as someone with sqlite3 and write access would."""
    db = sqlite3.connect(store.path, isolation_level=None)
    db.execute(f"DELETE FROM {table} WHERE id >= ?", (from_id,))  # noqa: S608
    db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = ?", (from_id - 1, table))
    db.close()


def report(store: EventStore, table: str):
    return next(r for r in store.verify_audit() if r.table == table)


def test_the_head_file_is_private_signed_and_names_the_last_durable_rows(store):
    assert stat.S_IMODE(head_path(store).stat().st_mode) == 0o600
    content = json.loads(head_path(store).read_text())
    assert content["format"] == audit_head.FORMAT and len(content["seal"]) == 64
    assert content["tables"]["commands"] == [4, store.audit_heads()["commands"]]
    assert not [p.name for p in store.path.parent.iterdir() if p.name.endswith(".tmp")]
    assert all(r.intact and r.note is None for r in store.verify_audit())


def test_rows_cut_from_the_end_with_the_sequence_rewound_are_named(store):
    cut_the_end(store, "commands", 3)
    commands = report(store, "commands")
    assert not commands.intact and commands.broken_at == 3
    assert "rows 3..4 were written and are gone (truncated" in commands.why
    assert "commands: BROKEN at row 3: rows 3..4" in commands.describe()
    assert report(store, "events").intact, "the other table is still vouched for"


def test_a_truncation_stays_reported_after_a_restart_and_new_rows(tmp_path, store):
    cut_the_end(store, "commands", 3)
    store.close()
    again = EventStore(tmp_path / "events.sqlite")
    assert report(again, "commands").why.startswith("rows 3..4 were written and are gone")
    later = again.record_command(GUARD, "audit verify", {}, "error", 1, "broken")
    assert later == 5, "numbered after the head, so the cut rows stay a gap"
    commands = report(again, "commands")
    assert commands.broken_at == 5 and "rows 3..4 are missing" in commands.why
    again.close()


def test_an_altered_head_file_is_named_and_kept_as_evidence(tmp_path, store):
    content = json.loads(head_path(store).read_text())
    content["tables"]["commands"][0] = 2  # hide the last two rows, without the key
    head_path(store).write_text(json.dumps(content))
    altered = head_path(store).read_bytes()
    assert all(not r.intact and "head file" in r.why and "altered" in r.why for r in store.verify_audit())
    store.close()
    again = EventStore(tmp_path / "events.sqlite")
    again.record_command(GUARD, "status", {}, "done", 0, "ok")
    assert head_path(again).read_bytes() == altered, "barrierd never writes over the evidence"
    assert "altered" in report(again, "commands").describe()
    again.close()


def test_a_head_file_altered_while_barrierd_runs_is_not_written_over(store):
    head_path(store).write_text("{}")
    store.record_command(GUARD, "open", {"device": "gate-1"}, "done", 0, "ok")
    assert head_path(store).read_text() == "{}"
    assert all("altered" in r.why for r in store.verify_audit())


def test_a_head_that_lags_behind_the_tables_verifies_intact(tmp_path, store):
    earlier = tmp_path / "head-before"
    shutil.copy(head_path(store), earlier)
    store.record_event("state_change", "gate-1", "gate-1: opening → open")  # not durable: the head stays
    assert head_tables(store)["events"][0] == 6  # the 3 + the events of the first 3 commands: the last one's
    # event and the one just recorded were committed after the last durable commit
    store.record_command(GUARD, "close", {"device": "gate-1"}, "done", 0, "ok")
    store.close()
    shutil.copy(earlier, tmp_path / "events.sqlite.audit-head")  # as a power cut before the rename reached disk
    again = EventStore(tmp_path / "events.sqlite")
    assert all(r.intact for r in again.verify_audit())
    again.close()


def test_the_head_never_names_a_row_that_was_not_synced(store):
    before = head_tables(store)
    event_id = store.record_event("state_change", "gate-2", "gate-2: open → closing")
    assert head_tables(store) == before and before["events"][0] < event_id
    store.sync()
    assert head_tables(store)["events"] == [event_id, store.audit_heads()["events"]]


def test_a_missing_head_file_is_reported_not_silently_intact(tmp_path, store):
    store.close()
    (tmp_path / "events.sqlite.audit-head").unlink()
    again = EventStore(tmp_path / "events.sqlite")
    for found in again.verify_audit():
        assert found.intact and "no head file" in found.note and "no head file" in found.describe()
    again.record_command(GUARD, "status", {}, "done", 0, "ok")  # a new head begins
    commands = report(again, "commands")
    assert commands.intact and "no head file when barrierd started" in commands.note
    again.close()


def test_a_head_file_removed_while_barrierd_runs_is_named(store):
    head_path(store).unlink()
    assert all(not r.intact and "removed" in r.why for r in store.verify_audit())


def test_a_restart_carries_on_the_chain_and_the_head(tmp_path, store):
    heads = store.audit_heads()
    store.close()
    again = EventStore(tmp_path / "events.sqlite")
    assert again.audit_heads() == heads
    assert again.record_command(GUARD, "open", {"device": "gate-1"}, "done", 0, "ok") == 5
    assert head_tables(again)["commands"][0] == 5
    assert all(r.intact and r.note is None for r in again.verify_audit())
    again.close()


def test_a_head_that_cannot_be_written_lags_and_recording_goes_on(store, monkeypatch):
    def disk_full(path, content):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(audit_head, "_replace", disk_full)
    assert store.record_command(GUARD, "lockdown", {"reason": "drill"}, "done", 0, "ok") == 5
    assert "No space left" in store._head.write_error
    assert head_tables(store)["commands"][0] == 4
    assert all(r.intact and "the head lags" in r.note for r in store.verify_audit())
    monkeypatch.undo()
    store.record_command(GUARD, "status", {}, "done", 0, "ok")
    assert head_tables(store)["commands"][0] == 6 and store._head.write_error is None
    assert all(r.intact and r.note is None for r in store.verify_audit())


def test_a_store_in_memory_keeps_no_head_file(tmp_path):
    store = EventStore(":memory:")  # type: ignore[arg-type]
    store.record_command(GUARD, "open", {"device": "gate-1"}, "done", 0, "ok")
    assert all(r.intact and r.note is None for r in store.verify_audit())
    store.close()
