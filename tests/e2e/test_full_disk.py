"""barrierd on a state disk that fills up or turns read-only (a small tmpfs): supervision goes on, opening
commands are refused, securing ones go through and are recorded once the disk has room; restarts work."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess

import pytest

from hal.profile import SLOT_BASE, SLOT_STRIDE, SlotHolding
from tests.e2e.harness import Processes, site_copy
from tests.support import wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI runs as root)"),
]


@pytest.fixture
def small_disk(tmp_path):
    """sim-plc and barrierd with the state directory on a 2 MiB tmpfs of its own."""
    state = tmp_path / "state"
    state.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(state)], check=True)
    procs = Processes(tmp=tmp_path, site=site_copy(tmp_path))
    try:
        procs.start_sim()
        procs.start_daemon()
        yield procs
    finally:
        procs.close()
        subprocess.run(["umount", "-l", str(state)], check=False)


def fill(path) -> None:
    """Write a file until the disk says it is full."""
    with open(path, "wb", buffering=0) as filler:
        for chunk in (64 * 1024, 4096, 512):
            try:
                while True:
                    filler.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc


def commands_to(procs: Processes, plc: str, slot: int) -> list[int]:
    address = SLOT_BASE + slot * SLOT_STRIDE + SlotHolding.COMMAND
    return [w["values"][0] for w in procs.writes() if w["plc"] == plc and w["address"] == address]


def storage(procs: Processes) -> dict:
    return procs.status()["storage"]


def test_a_full_disk_refuses_opening_secures_all_the_same_and_records_it_once_there_is_room(small_disk):
    procs = small_disk
    filler = procs.tmp / "state" / "filler"
    fill(filler)

    code, _, err = procs.ctl("open", "gate-1")
    assert code == 3 and "storage_unavailable" in err, err
    assert commands_to(procs, "plc-lane-1", 0) == [], "an unrecorded command reached the PLC"
    code, _, err = procs.ctl("maintenance", "enter", "lane-2", "--reason", "oil change")
    assert code == 3, err
    status = procs.status()
    assert status["storage"]["ok"] is False and "full" in status["storage"]["problem"]
    assert "STORAGE_FAILED" in {a["code"] for a in status["alarms"]}
    assert next(lane for lane in status["lanes"] if lane["name"] == "lane-2")["mode"] != "maintenance"

    # supervision goes on: a gate pushed open by hand is seen, with good data
    assert procs.sim_ctl("inject", "plc-lane-2", "forced_movement", "--slot", "0")[0] == 0
    wait_until(lambda: procs.device("gate-2")["state"] in ("opening", "open", "stopped")
               and procs.device("gate-2")["quality"] == "good", 10, "forced gate-2 seen on a full disk")
    assert procs.sim_ctl("inject", "plc-lane-2", "forced_movement", "--slot", "0", "--off")[0] == 0

    code, out, err = procs.ctl("lockdown", "--reason", "vehicle fled", "--json")
    assert code in (0, 1), err
    assert 5 in commands_to(procs, "plc-lane-1", 1) and 5 in commands_to(procs, "plc-lane-2", 1), "EFO written"
    status = procs.status()
    assert status["lockdown"]["reason"] == "vehicle fled" and status["lockdown"]["persisted"] is False
    journal = procs.daemon_log()
    kept = [json.loads(line) for line in journal.splitlines() if '"record_kept_for_later"' in line]
    assert any(r.get("command") == "lockdown" and r.get("table") == "commands" for r in kept), \
        "the lockdown's command row is in the journal while the disk is full"

    filler.unlink()  # space comes back
    wait_until(lambda: storage(procs)["ok"] and storage(procs)["pending"] == 0, 10, "kept records written")
    status = procs.status()
    assert status["lockdown"]["persisted"] is True
    assert "STORAGE_FAILED" not in {a["code"] for a in status["alarms"] if a["active"]}
    db = sqlite3.connect(str(procs.event_db))
    rows = db.execute("SELECT user, command, outcome FROM commands ORDER BY id").fetchall()
    db.close()
    assert ("root", "open", "refused") in rows and ("root", "maintenance_enter", "refused") in rows
    assert rows[-1][1] == "lockdown"
    assert procs.ctl("audit", "verify")[0] == 0
    code, _, err = procs.ctl("lockdown", "release", "--reason", "all clear")
    assert code == 0, err


def test_barrierd_restarts_on_a_full_and_on_a_read_only_disk_and_keeps_the_lockdown(small_disk):
    procs = small_disk
    assert procs.ctl("lockdown", "--reason", "drill")[0] in (0, 1)
    assert procs.stop_daemon() == 0
    state = procs.tmp / "state"
    fill(state / "filler")
    procs.start_daemon()
    status = procs.status()
    assert status["lockdown"]["reason"] == "drill", "the saved lockdown is restored from a full disk"
    code, _, err = procs.ctl("lane", "open", "lane-1")
    assert code == 3, err
    wait_until(lambda: storage(procs)["ok"] is False, 5, "the full disk reported")
    assert procs.stop_daemon() == 0

    (state / "filler").unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(state)], check=True)
    procs.start_daemon()
    status = procs.status()
    assert status["storage"]["ok"] is False, status["storage"]
    assert status["lockdown"]["reason"] == "drill", "the saved lockdown is restored from a read-only disk"
    wait_until(lambda: all(p["comms"] == "ok" for p in procs.status()["plcs"]), 10, "every PLC read")
    code, _, err = procs.ctl("open", "gate-1")
    assert code == 3 and "storage_unavailable" in err, err
