"""End to end: barrierctl → barrierd → Modbus TCP → sim-plc and back, with real processes and real timing."""

from __future__ import annotations

import os
import signal
import sqlite3
import time

import pytest

from hal.profile import SLOT_STRIDE, SLOT_BASE, SlotHolding, slot_base
from tests.support import wait_until

pytestmark = pytest.mark.e2e

MARGIN_S = 1.0  # acceptance: each device reaches its state within its travel time plus one second


def command_writes(writes: list[dict]) -> list[dict]:
    """Writes that touch a slot's COMMAND register (heartbeat and watchdog writes are not commands)."""
    return [
        w for w in writes
        if w["address"] >= SLOT_BASE and (w["address"] - SLOT_BASE) % SLOT_STRIDE == SlotHolding.COMMAND
    ]


def drive(procs, verb: str, device: str, expect: str, travel_s: float) -> float:
    """Run one barrierctl command and return the seconds until status shows `expect`."""
    started = time.monotonic()
    code, out, err = procs.ctl(verb, device)
    assert code == 0, f"{verb} {device}: exit {code}: {err}"
    wait_until(lambda: procs.device(device)["state"] == expect, travel_s + MARGIN_S, f"{device} {expect}")
    return time.monotonic() - started


def test_gate_and_blocker_reach_their_states_and_commands_are_recorded(site_processes):
    procs = site_processes
    wait_until(lambda: procs.device("gate-1")["state"] == "closed", 5, "gate-1 read as closed at start")
    assert procs.device("blocker-1")["display"] == "raised"

    drive(procs, "open", "gate-1", "open", 3.0)
    elapsed = drive(procs, "close", "gate-1", "closed", 3.0)
    assert elapsed >= 2.5, f"gate closed in {elapsed:.2f} s, faster than its 3 s travel"
    drive(procs, "lower", "blocker-1", "open", 6.0)
    assert procs.device("blocker-1")["display"] == "lowered"
    drive(procs, "raise", "blocker-1", "closed", 6.0)

    gate = procs.device("gate-1")
    assert gate["position"] == 1000 and gate["quality"] == "good" and gate["intent"] == "close"

    with sqlite3.connect(procs.event_db) as db:
        rows = db.execute("SELECT uid, pid, command, args, outcome FROM commands ORDER BY id").fetchall()
    assert [(r[2], r[4]) for r in rows] == [("open", "done"), ("close", "done"), ("lower", "done"), ("raise", "done")]
    assert all(r[0] == os.getuid() and r[1] > 0 for r in rows)

    slot_of = {"gate-1": 0, "blocker-1": 1}
    sent = [(w["address"], w["values"][0]) for w in command_writes(procs.writes())]
    assert sent == [
        (slot_base(slot_of["gate-1"]), 1), (slot_base(slot_of["gate-1"]), 2),
        (slot_base(slot_of["blocker-1"]), 1), (slot_base(slot_of["blocker-1"]), 2),
    ]


def test_restart_while_gate_open_writes_no_command_and_shows_open(site_processes):
    procs = site_processes
    drive(procs, "open", "gate-1", "open", 3.0)
    assert procs.stop_daemon(signal.SIGTERM) == 0
    before = len(procs.writes())

    procs.start_daemon()
    wait_until(lambda: procs.device("gate-1")["state"] == "open", 5, "gate-1 open after restart")
    after_restart = procs.writes()[before:]
    assert after_restart, "the restarted daemon should at least arm the watchdog"
    assert command_writes(after_restart) == [], f"command written on start: {command_writes(after_restart)}"
    assert {w["address"] for w in after_restart} <= {0, 1}, "only heartbeat and watchdog writes on start"


def test_refusals_have_their_exit_codes(site_processes):
    procs = site_processes
    code, _, err = procs.ctl("raise", "gate-1")
    assert code == 2 and "not a command for gate-1" in err
    code, _, err = procs.ctl("close", "no-such-device")
    assert code == 2 and "no device named" in err
    code, _, err = procs.ctl("efo", "blocker-1")
    assert code == 2  # EFO is the lockdown's, not a barrierctl device verb


def test_barrierctl_without_daemon_says_so(tmp_path):
    from tests.e2e.harness import Processes

    procs = Processes(tmp=tmp_path, site=tmp_path / "unused.toml")
    code, out, err = procs.ctl("status")
    assert code == 5
    assert "barrierd is not running" in err
