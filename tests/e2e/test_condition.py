"""End to end: travels timed by sim-plc stored and shown by `barrierctl health`; a service recorded; an EFO raise timed."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.support import wait_until

pytestmark = pytest.mark.e2e


def travels(procs, device: str) -> list[tuple]:
    with sqlite3.connect(procs.event_db) as db:
        return db.execute("SELECT to_state, efo, plc_ms, command_ms, cycle_count FROM travels WHERE device = ?"
                          " ORDER BY id", (device,)).fetchall()


def health(procs, device: str) -> dict:
    code, out, err = procs.ctl("health", "--json")
    assert code == 0, err
    return next(d for d in json.loads(out)["devices"] if d["name"] == device)


def test_travels_are_timed_stored_and_shown_and_a_service_is_recorded(site_processes):
    procs = site_processes
    wait_until(lambda: procs.device("bay-exit")["state"] == "closed", 5, "bay-exit read as closed at start")
    for verb, goal in (("open", "open"), ("close", "closed")):
        code, _, err = procs.ctl(verb, "bay-exit")
        assert code == 0, err
        wait_until(lambda: len(travels(procs, "bay-exit")) == (1 if goal == "open" else 2), 2.0 + 1.0,
                   f"bay-exit's travel to {goal} stored")
    rows = travels(procs, "bay-exit")
    assert [(r[0], r[1], r[4]) for r in rows] == [("open", 0, 1), ("closed", 0, 2)]
    for _, _, plc_ms, command_ms, _ in rows:
        assert 1900 <= plc_ms <= 2100, f"sim-plc's boom travels in 2.0 s, LAST_TRAVEL_MS {plc_ms}"
        assert command_ms is not None and plc_ms - 100 <= command_ms <= plc_ms + 1000, (plc_ms, command_ms)
    shown = health(procs, "bay-exit")
    assert shown["directions"]["open"]["recent_ms"] == [rows[0][2]] and shown["directions"]["open"]["limit_ms"] == 2500
    assert (shown["cycles"], shown["service_cycles"], shown["service_due"]) == (2, 500000, False)
    code, table, err = procs.ctl("health", "bay-exit")
    assert code == 0, err
    assert "condition of 1 device" in table and "bay-exit" in table and f"{rows[0][2] / 1000:.2f} s" in table
    assert "gate-1" not in table and "2.50 s" in table, "one device, its limit: travel_s 2.0 s + 25 %"
    code, _, err = procs.ctl("health", "bay-exti")
    assert code == 2 and "no device named 'bay-exti'" in err and "did you mean 'bay-exit'" in err
    code, _, err = procs.ctl("health", "signal-1")
    assert code == 3 and "does not travel between limits" in err

    code, out, err = procs.ctl("service", "bay-exit", "--reason", "boom arm greased")
    assert code == 0, err
    assert "service recorded" in out and health(procs, "bay-exit")["last_service"]["reason"] == "boom arm greased"
    assert health(procs, "bay-exit")["cycles_since_service"] == 0
    assert [a["code"] for a in procs.status()["alarms"]] == []


def test_an_efo_raise_is_timed_against_the_efo_limit_and_the_blocker_shows_ready(site_processes):
    procs = site_processes
    wait_until(lambda: procs.device("blocker-2")["state"] == "closed", 5, "blocker-2 read as raised at start")
    assert procs.device("blocker-2")["readiness"]["state"] == "ready"
    code, _, err = procs.ctl("lower", "blocker-2")
    assert code == 0, err
    wait_until(lambda: len(travels(procs, "blocker-2")) == 1, 6.0 + 1.0, "blocker-2 lowered and its travel stored")
    code, _, err = procs.ctl("lockdown", "--lane", "lane-2", "--reason", "suspect vehicle")
    assert code == 0, err
    wait_until(lambda: len(travels(procs, "blocker-2")) == 2, 2.0, "the EFO raise stored")
    to_state, efo, plc_ms, command_ms, _ = travels(procs, "blocker-2")[-1]
    assert (to_state, efo) == ("closed", 1) and 1400 <= plc_ms <= 1600 and command_ms is not None
    shown = health(procs, "blocker-2")
    assert shown["directions"]["efo"]["recent_ms"] == [plc_ms]
    readiness = shown["readiness"]  # the raise drew 35 bar; below nominal until the pump has refilled it
    recharging = f"accumulator at {readiness['pressure_bar']:.1f} bar, below nominal 140.0 bar: recharging after the EFO"
    assert readiness["state"] == "ready" or readiness["reasons"] == [recharging], readiness
    wait_until(lambda: health(procs, "blocker-2")["readiness"]["state"] == "ready", 20, "blocker-2 recharged: ready")
    assert not any(a["code"] in ("EFO_SLOW", "EFO_NOT_READY") for a in procs.status()["alarms"])
