"""End to end: `barrierctl audit verify` against a running barrierd and its real SQLite file, and `events --follow`."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess

import pytest

from tests.e2e.harness import BIN
from tests.support import wait_until

pytestmark = pytest.mark.e2e


def test_audit_verify_passes_then_names_the_row_edited_behind_the_daemons_back(site_processes):
    procs = site_processes
    assert procs.ctl("red", "signal-1")[0] == 0
    assert procs.ctl("raise", "signal-1")[0] == 2  # refused as usage: recorded too
    code, out, err = procs.ctl("audit", "verify", "--json")
    assert code == 0, err
    tables = {t["table"]: t for t in json.loads(out)["tables"]}
    assert tables["events"]["intact"] and tables["events"]["rows"] >= 3
    assert tables["commands"]["intact"] and tables["commands"]["rows"] >= 1

    db = sqlite3.connect(procs.event_db, isolation_level=None)  # someone edits the record while barrierd runs
    (row_id,) = db.execute("SELECT id FROM commands WHERE command = 'red'").fetchone()
    db.execute("UPDATE commands SET user = 'nobody' WHERE id = ?", (row_id,))
    db.close()

    code, out, err = procs.ctl("audit", "verify")
    assert code == 1
    assert f"commands: BROKEN at row {row_id}" in err and "altered" in err
    assert "events:" in err and "rows intact" in err  # the other table is still vouched for
    assert procs.ctl("status")[0] == 0  # the daemon goes on
    assert "audit_head" in procs.daemon_log()  # the seals at start, copied to the log


def test_events_follow_prints_new_events_as_they_come_and_stops_on_ctrl_c(site_processes):
    procs = site_processes
    follow = subprocess.Popen(
        [str(BIN / "barrierctl"), "--socket", str(procs.socket), "events", "--follow", "--json", "--limit", "1",
         "--interval", "0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert follow.stdout is not None
        first = json.loads(follow.stdout.readline())  # the latest event before following
        assert procs.ctl("red", "signal-2")[0] == 0
        seen: list[dict] = []

        def command_seen() -> bool:
            seen.append(json.loads(follow.stdout.readline()))
            return any(e["kind"] == "command" and e["subject"] == "signal-2" for e in seen)

        wait_until(command_seen, 10, "the red command of signal-2 followed")
        ids = [first["id"], *(e["id"] for e in seen)]
        assert ids == sorted(ids) and len(set(ids)) == len(ids), "each event once, in order"
    finally:
        follow.send_signal(signal.SIGINT)
        code = follow.wait(timeout=10)
    assert code == 0, follow.stderr.read() if follow.stderr else ""


def test_command_rows_cut_from_the_end_while_barrierd_was_stopped_are_named_after_it_starts(site_processes):
    procs = site_processes
    for verb in ("red", "green", "red"):
        assert procs.ctl(verb, "signal-1")[0] == 0
    assert procs.stop_daemon() == 0
    db = sqlite3.connect(procs.event_db, isolation_level=None)  # the last two commands erased without a trace
    (last,) = db.execute("SELECT max(id) FROM commands").fetchone()
    db.execute("DELETE FROM commands WHERE id >= ?", (last - 1,))
    db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'commands'", (last - 2,))
    db.close()

    procs.start_daemon()
    code, out, err = procs.ctl("audit", "verify")
    assert code == 1, out
    assert f"commands: BROKEN at row {last - 1}: rows {last - 1}..{last} were written and are gone (truncated" in err
    assert "events:" in err and "rows intact" in err
    assert procs.ctl("red", "signal-1")[0] == 0  # recording goes on, numbered after the cut: still reported
    code, _, err = procs.ctl("audit", "verify")
    assert code == 1 and f"rows {last - 1}..{last} are missing" in err
