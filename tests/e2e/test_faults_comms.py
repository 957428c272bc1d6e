"""End to end: comms loss both ways (a silent PLC, a PLC that refuses connections) and its recovery,
movement nobody commanded, reset against a present cause, and a restart of barrierd in the middle of a
travel. Each test has its own sim-plc and barrierd (the `site_processes` fixture): they disturb the site."""

from __future__ import annotations

import signal
import sqlite3
import time

import pytest

from hal.bus import RECONNECT_MAX_S
from tests.e2e.harness import Processes, site_copy
from tests.e2e.test_device_commands import command_writes
from tests.e2e.fault_rig import (
    alarms_since_armed,
    COMMS_LOST_S,
    HOME,
    POLL_S,
    SLACK_S,
    fast_status,
    find_alarm,
    inject,
    listed_alarms,
    sim_request,
    sim_slot,
    states,
    wait_alarm,
    wait_home,
)
from tests.support import wait_until

pytestmark = pytest.mark.e2e

PLCS = ("plc-lane-1", "plc-lane-2", "plc-bay")
UNKNOWN = {name: "unknown" for name in HOME}
POSITION_NOISE_S = 10 / 1000 * 3.0  # a gate passes the 10 ‰ movement threshold in this long


def timed(check, timeout_s: float, what: str) -> float:
    """Seconds until `check` holds (polled every 10 ms); fails at `timeout_s`."""
    started = time.monotonic()
    wait_until(check, timeout_s, what, step_s=0.01)
    return time.monotonic() - started


def report(name: str, seconds: float) -> None:
    print(f"measured {name}: {seconds:.3f} s")


def unknown_since(procs, since: float) -> dict[str, float]:
    """Device -> barrierd's own time (events.ts) of its latest change to `unknown` after `since`."""
    with sqlite3.connect(procs.event_db) as db:
        rows = db.execute(
            "SELECT subject, MAX(ts) FROM events WHERE kind = 'state_change' AND ts >= ?"
            " AND json_extract(data, '$.to_state') = 'unknown' GROUP BY subject", (since,)).fetchall()
    return dict(rows)


def assert_site_lost(procs, since: float, what: str) -> None:
    """Every device unknown and every PLC lost within 3 × (poll + timeout) of `since` (wall clock), as
    barrierd timed it (event and alarm times), and as a client sees it (status polled, + slack)."""
    seen_s = timed(lambda: states(procs) == UNKNOWN, COMMS_LOST_S + SLACK_S, "every device unknown")
    # the state_change row follows the state by the transition's own awaits: status may answer between them
    wait_until(lambda: set(unknown_since(procs, since)) == set(HOME), SLACK_S, "a state_change row for every device")
    unknown = unknown_since(procs, since)
    report(f"{what} → every device unknown (barrierd's event time)", max(unknown.values()) - since)
    report(f"{what} → every device unknown (seen in status)", seen_s)
    assert max(unknown.values()) - since <= COMMS_LOST_S
    alarms = [wait_alarm(procs, "COMMS_LOST", plc, COMMS_LOST_S + SLACK_S) for plc in PLCS]
    lost_s = max(a["raised_at"] for a in alarms) - since
    report(f"{what} → COMMS_LOST raised for every PLC (barrierd's alarm time)", lost_s)
    # + slack: when the N-th failure is a heartbeat write, the lost reading waits for the next poll (report)
    assert lost_s <= COMMS_LOST_S + SLACK_S, f"COMMS_LOST after {lost_s:.3f} s"
    assert all(p["comms"] == "lost" for p in fast_status(procs)["plcs"])


def test_silent_plc_sigstop_every_device_unknown_then_back_without_a_command(site_processes):
    procs = site_processes
    wait_home(procs)
    mark = len(procs.writes())
    stopped = time.time()
    procs.sim.send_signal(signal.SIGSTOP)
    try:
        assert_site_lost(procs, stopped, "SIGSTOP")
        rc, _, err = procs.ctl("close", "gate-1")
        assert rc == 3 and "data_not_valid" in err, err
    finally:
        procs.sim.send_signal(signal.SIGCONT)
    back_s = timed(lambda: states(procs) == HOME, 2 * POLL_S + SLACK_S, "every device read again after SIGCONT")
    report("SIGCONT → every device home", back_s)
    wait_until(lambda: not any(a["active"] for a in listed_alarms(procs)), 1.0, "COMMS_LOST cleared")
    assert command_writes(procs.writes()[mark:]) == [], "a COMMAND write during or after the outage"


def test_refused_connection_sim_killed_every_device_unknown_then_a_new_plc_is_read(site_processes):
    procs = site_processes
    wait_home(procs)
    killed = time.time()
    procs.sim.send_signal(signal.SIGKILL)
    procs.sim.wait(timeout=10)
    assert_site_lost(procs, killed, "sim-plc SIGKILL")
    time.sleep(1.5)  # down long enough for barrierd's reconnect back-off to reach its maximum

    mark = len(procs.writes())
    procs.start_sim()  # same ports, same site: the new PLCs power up with every leaf closed
    # barrierd retries a refused connection with a back-off of up to RECONNECT_MAX_S (hal/bus.py); once
    # connected, two polls. The back-off alone may exceed two polls: see the report of these tests.
    back_s = timed(lambda: states(procs) == HOME, RECONNECT_MAX_S + 2 * POLL_S + SLACK_S,
                   "every device read from the new sim-plc")
    report("new sim-plc ready → every device home", back_s)
    wait_until(lambda: not any(a["active"] for a in listed_alarms(procs)), 1.0, "COMMS_LOST cleared")
    after = procs.writes()[mark:]
    assert command_writes(after) == [], f"a COMMAND write to the new PLC: {command_writes(after)}"
    assert {(w["plc"], w["address"]) for w in after} >= {(plc, 1) for plc in PLCS}, "the watchdog is armed again"


def test_a_forced_gate_raises_uncommanded_movement_within_one_poll(site_processes):
    procs = site_processes
    wait_home(procs)
    time.sleep(3 * POLL_S)  # a few quiet polls: nothing moved, nothing commanded
    assert alarms_since_armed(procs) == []
    sim_request(procs, cmd="inject", plc="plc-lane-1", fault="forced_movement", slot=0, active=True, code=None)
    injected = time.time()
    alarm = wait_alarm(procs, "UNCOMMANDED_MOVEMENT", "gate-1", 2.0)
    delay = alarm["raised_at"] - injected
    report("forced_movement injected → UNCOMMANDED_MOVEMENT raised", delay)
    assert delay <= POSITION_NOISE_S + POLL_S + 0.1, f"{delay:.3f} s: later than one poll after the gate moved"
    assert alarm["severity"] == "critical" and "no command in force" in alarm["message"]
    assert sim_slot(procs, "plc-lane-1", 0)["command_seq"] == 0, "nothing was ever commanded to gate-1"


def test_reset_is_refused_while_the_cause_is_present_and_accepted_once_it_is_gone(site_processes):
    procs = site_processes
    wait_home(procs)
    inject(procs, "plc-lane-1", "drive_fault", 0)
    wait_until(lambda: procs.device("gate-1")["state"] == "fault", 1.0, "gate-1 fault")
    rc, out, err = procs.ctl("reset", "gate-1")
    assert rc == 3 and "rule fault_cause_present" in err, (rc, out, err)
    assert procs.device("gate-1")["state"] == "fault"

    inject(procs, "plc-lane-1", "drive_fault", 0, off=True)
    time.sleep(2 * POLL_S)
    assert procs.device("gate-1")["state"] == "fault", "the PLC keeps DRIVE_FAULT latched until RESET"
    rc, out, err = procs.ctl("reset", "gate-1")
    assert rc == 0, (rc, out, err)
    wait_until(lambda: procs.device("gate-1")["state"] == "closed", 2 * POLL_S + SLACK_S, "gate-1 out of fault")
    assert find_alarm(listed_alarms(procs), "DRIVE_FAULT", "gate-1") is None, "DRIVE_FAULT still active"
    assert sim_slot(procs, "plc-lane-1", 0)["fault_code"] == 0


def heartbeats(procs, plc: str) -> list[tuple[float, int]]:
    """(time, value) of every SUPERVISOR_HEARTBEAT write the PLC took."""
    return [(w["t"], w["values"][0]) for w in procs.writes()
            if w["plc"] == plc and w["address"] == 0 and w["result"] == "ok"]


@pytest.fixture
def slow_watchdog_site(tmp_path):
    """The demo site with a 10 s PLC watchdog: a restart of barrierd on a busy machine (process start and imports)
    must not outlast it, or the PLC stops the travel fail-secure and the tests below see that instead."""
    site = site_copy(tmp_path)
    site.write_text(site.read_text().replace("watchdog_ms = 3000", "watchdog_ms = 10000"))
    procs = Processes(tmp=tmp_path, site=site)
    procs.start_sim()
    procs.start_daemon()
    yield procs
    procs.close()


def kill_barrierd_mid_travel(procs) -> int:
    """open gate-1, SIGKILL barrierd while the gate travels, start it again; returns the write-log mark."""
    wait_home(procs)
    # barrierd has fed the watchdog at least once (see test_the_plc_watchdog_is_fed_by_the_first_write...)
    # heartbeats every watchdog / 4 (2.5 s on the slow-watchdog site)
    wait_until(lambda: any(v != 0 for _, v in heartbeats(procs, "plc-lane-1")), 4.0, "a heartbeat increment")
    rc, out, err = procs.ctl("open", "gate-1")
    assert rc == 0, err
    assert procs.stop_daemon(signal.SIGKILL) == -signal.SIGKILL
    gate = sim_slot(procs, "plc-lane-1", 0)
    assert "MOVING_OPEN" in gate["status_bits"] and gate["position"] > 0, f"not mid-travel: {gate}"
    mark = len(procs.writes())
    procs.start_daemon()
    return mark


def test_restart_mid_travel_issues_no_command_and_records_the_interrupted_one(slow_watchdog_site):
    procs = slow_watchdog_site
    mark = kill_barrierd_mid_travel(procs)
    wait_until(lambda: procs.device("gate-1")["state"] == "open", 3.0 + 1.0, "gate-1 open: the PLC finished it")
    after = procs.writes()[mark:]
    assert command_writes(after) == [], f"a COMMAND write after the restart: {command_writes(after)}"
    with sqlite3.connect(procs.event_db) as db:
        events = db.execute("SELECT kind, subject FROM events").fetchall()
        in_flight = db.execute("SELECT device FROM in_flight").fetchall()
    assert events.count(("command_interrupted", "gate-1")) == 1, events
    assert in_flight == [], "the interrupted command is recorded once, not carried over again"
    assert procs.device("gate-1")["intent"] is None, "the new barrierd has no intent for gate-1"


def test_the_rest_of_an_interrupted_travel_is_not_uncommanded_movement(slow_watchdog_site):
    """The gate goes on moving after the restart because a person commanded it (the event store says so)."""
    procs = slow_watchdog_site
    kill_barrierd_mid_travel(procs)
    wait_until(lambda: procs.device("gate-1")["state"] == "open", 3.0 + 1.0, "gate-1 open")
    time.sleep(2 * POLL_S)
    assert find_alarm(listed_alarms(procs), "UNCOMMANDED_MOVEMENT", "gate-1") is None, listed_alarms(procs)


def test_the_plc_watchdog_is_fed_by_the_first_write_of_a_starting_barrierd(tmp_path):
    """A PLC whose watchdog expired before barrierd started (power-up: SUPERVISOR_HEARTBEAT 0, no supervisor
    for 3 s) takes barrierd's arming write as a heartbeat: WATCHDOG_EXPIRED clears at once, not one heartbeat
    period (watchdog / 4 = 0.75 s) later. The same holds for a barrierd restarted before it fed the watchdog
    once: a gate it left travelling would stop halfway (watchdog fail-secure)."""
    procs = Processes(tmp=tmp_path, site=site_copy(tmp_path))
    try:
        procs.start_sim()
        wait_until(lambda: "WATCHDOG_EXPIRED" in sim_request(procs, cmd="state", plc="plc-lane-1")["state"][
            "plc-lane-1"]["plc_status_bits"], 4.0, "the PLC's power-up watchdog expired")
        procs.start_daemon()
        wait_until(lambda: not any(a["active"] for a in listed_alarms(procs)), 2.0, "no alarm active")
        expired = [a for a in listed_alarms(procs) if a["code"] == "WATCHDOG_EXPIRED"]
        longest = max((a["cleared_at"] - a["raised_at"] for a in expired), default=0.0)
        report("barrierd start → WATCHDOG_EXPIRED cleared (alarm duration)", longest)
        assert longest <= 2 * POLL_S + 0.1, (
            f"the PLC stayed expired {longest:.3f} s after barrierd armed it; heartbeat writes: "
            f"{heartbeats(procs, 'plc-lane-1')[:3]}")
    finally:
        procs.close()
