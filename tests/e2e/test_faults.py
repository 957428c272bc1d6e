"""End to end, one test per fault of DESIGN §7: a fault injected into the real sim-plc must show in
`barrierctl alarms --json` with its code and subject, put the device or PLC in the right state, and block
what it must block. One sim-plc + barrierd serve many tests; after each, every fault is switched off, every
device brought home and every alarm acknowledged."""

from __future__ import annotations

import re
import time

import pytest

from hal.profile import slot_base
from tests.e2e.fault_rig import (
    alarms_since_armed,
    COMMS_LOST_S,
    FROZEN_POLLS,
    HOME,
    POLL_S,
    SLACK_S,
    TIMEOUT_S,
    assert_refused,
    cli_alarms,
    devices_on,
    find_alarm,
    inject,
    listed_alarms,
    restore,
    sim_request,
    sim_slot,
    states,
    wait_alarm,
    wait_home,
    writes_to,
)
from tests.e2e.harness import Processes, site_copy
from tests.support import wait_until

pytestmark = pytest.mark.e2e

# ---- the demo site, shared by most tests --------------------------------------------------------


@pytest.fixture(scope="module")
def plant(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    procs = Processes(tmp=tmp, site=site_copy(tmp))
    procs.start_sim()
    procs.start_daemon()
    try:
        wait_home(procs)
        yield procs
    finally:
        procs.close()


@pytest.fixture
def procs(plant):
    yield plant
    restore(plant)


def test_comms_silence_makes_the_plc_lost_and_its_devices_unknown_and_nothing_is_written(procs):
    mark = len(procs.writes())
    started = time.monotonic()
    inject(procs, "plc-lane-2", "comms_silence")
    lane_2 = devices_on("plc-lane-2")
    wait_until(lambda: set(states(procs, lane_2).values()) == {"unknown"}, COMMS_LOST_S + SLACK_S,
               "plc-lane-2's devices unknown")
    alarm = wait_alarm(procs, "COMMS_LOST", "plc-lane-2", COMMS_LOST_S + SLACK_S)
    assert time.monotonic() - started <= COMMS_LOST_S + SLACK_S + 0.4  # + the sim-plc CLI's own start-up
    assert alarm["severity"] == "fault"

    status = procs.status()
    plc = next(p for p in status["plcs"] if p["name"] == "plc-lane-2")
    assert plc["comms"] == "lost" and plc["reason"]
    for device in (d for d in status["devices"] if d["name"] in lane_2):
        assert (device["state"], device["quality"], device["position"]) == ("unknown", "invalid", None), device
    assert {d["name"]: d["state"] for d in status["devices"] if d["name"] not in lane_2} == \
        {n: s for n, s in HOME.items() if n not in lane_2}, "the other PLCs are not affected"
    assert find_alarm(cli_alarms(procs), "COMMS_LOST", "plc-lane-2") is not None
    assert_refused(procs, "close", "gate-2", "data_not_valid")
    assert writes_to(procs, "plc-lane-2", mark) == [], "a COMMAND write while comms were lost"

    cleared = len(procs.writes())
    inject(procs, "plc-lane-2", "comms_silence", off=True)
    wait_until(lambda: states(procs, lane_2) == {n: HOME[n] for n in lane_2}, 2 * POLL_S + TIMEOUT_S + SLACK_S,
               "plc-lane-2's devices read again")
    assert find_alarm(listed_alarms(procs), "COMMS_LOST", "plc-lane-2") is None, "COMMS_LOST still active"
    assert writes_to(procs, "plc-lane-2", cleared) == [], "a COMMAND write when comms returned"


def test_frozen_plc_makes_its_devices_unknown_not_their_last_state(procs):
    mark = len(procs.writes())
    inject(procs, "plc-bay", "frozen_logic")
    bay = devices_on("plc-bay")
    wait_until(lambda: set(states(procs, bay).values()) == {"unknown"}, FROZEN_POLLS * POLL_S + SLACK_S,
               "plc-bay's devices unknown once its heartbeat stopped")
    status = procs.status()
    plc = next(p for p in status["plcs"] if p["name"] == "plc-bay")
    assert plc["comms"] == "invalid", plc
    assert all(d["position"] is None for d in status["devices"] if d["name"] in bay)
    # The design gives data_not_valid once the freeze is seen: nothing is written to a frozen PLC.
    assert_refused(procs, "close", "bay-entry", "data_not_valid")
    assert writes_to(procs, "plc-bay", mark) == []
    alarm = wait_alarm(procs, "PLC_FROZEN", "plc-bay", 1.0)
    assert alarm["severity"] == "fault"


def test_plc_rejecting_a_command_raises_command_rejected(procs):
    inject(procs, "plc-lane-1", "obstruction", 0)
    wait_until(lambda: "OBSTRUCTED" in procs.device("gate-1")["flags"], 2, "gate-1 reports the obstruction")
    mark = len(procs.writes())
    rc, out, err = procs.ctl("close", "gate-1")
    assert rc == 3, (rc, out, err)
    assert "REJECTED_INTERLOCK" in err and "plc_rejected" in err, err
    assert [w["values"][0] for w in writes_to(procs, "plc-lane-1", mark)] == [2], "CLOSE written once"
    alarm = find_alarm(cli_alarms(procs), "COMMAND_REJECTED", "gate-1")
    assert alarm is not None and alarm["severity"] == "warning" and "REJECTED_INTERLOCK" in alarm["message"]
    inject(procs, "plc-lane-1", "obstruction", 0, off=True)
    time.sleep(3 * POLL_S)  # a latched alarm outlives its cause ...
    assert find_alarm(listed_alarms(procs), "COMMAND_REJECTED", "gate-1") is not None
    rc, out, err = procs.ctl("ack", str(alarm["id"]))  # ... until acknowledged
    assert rc == 0, err
    assert find_alarm(listed_alarms(procs), "COMMAND_REJECTED", "gate-1") is None


def test_travel_timeout_latches_a_fault_on_the_device(procs):
    inject(procs, "plc-bay", "stuck_motion", 1)
    commanded = time.time()
    rc, out, err = procs.ctl("open", "bay-exit")
    assert rc == 0, err
    limit_s = 2.0 * 1.5  # boom travel 2 s × travel_factor 1.5
    alarm = wait_alarm(procs, "TRAVEL_TIMEOUT", "bay-exit", limit_s + 2)
    assert alarm["raised_at"] - commanded >= limit_s - 0.05, "timed out before travel time × factor"
    assert alarm["severity"] == "fault"
    device = procs.device("bay-exit")
    assert device["state"] == "fault" and "travel timeout" in device["reason"], device
    # The PLC's own max-run check (twice the travel time) follows and latches FAULT_CODE 6.
    drive = wait_alarm(procs, "DRIVE_FAULT", "bay-exit", 2.0)
    assert drive["message"].startswith("PLC max-run time exceeded (fault code 6)")
    assert_refused(procs, "open", "bay-exit", "device_fault")


def test_both_limits_made_is_a_fault_and_reset_is_refused_while_it_lasts(procs):
    inject(procs, "plc-lane-2", "stuck_limit_open", 0)
    alarm = wait_alarm(procs, "BOTH_LIMITS", "gate-2", 1.0)
    assert alarm["severity"] == "fault"
    device = procs.device("gate-2")
    assert device["state"] == "fault" and {"AT_OPEN", "AT_CLOSED"} <= set(device["flags"]), device
    assert find_alarm(cli_alarms(procs), "BOTH_LIMITS", "gate-2") is not None
    assert_refused(procs, "reset", "gate-2", "fault_cause_present")


def test_limit_lost_without_motion_is_a_latched_alarm(procs):
    inject(procs, "plc-lane-1", "limit_lost", 0)
    alarm = wait_alarm(procs, "LIMIT_LOST", "gate-1", 1.0)
    assert alarm["severity"] == "fault" and "closed limit switch" in alarm["message"]
    device = procs.device("gate-1")
    assert device["state"] == "stopped" and device["position"] == 1000 and "AT_CLOSED" not in device["flags"], device
    assert find_alarm(listed_alarms(procs), "UNCOMMANDED_MOVEMENT", "gate-1") is None
    inject(procs, "plc-lane-1", "limit_lost", 0, off=True)
    wait_until(lambda: procs.device("gate-1")["state"] == "closed", 1.0, "gate-1 closed once the switch makes")
    assert find_alarm(cli_alarms(procs), "LIMIT_LOST", "gate-1") is not None, "latched: active until acknowledged"
    rc, _, err = procs.ctl("ack", str(alarm["id"]))
    assert rc == 0, err
    assert all(a["id"] != alarm["id"] for a in listed_alarms(procs))


def test_a_forced_gate_raises_uncommanded_movement(procs):
    before = time.time()
    injected = inject(procs, "plc-lane-2", "forced_movement", 0)
    alarm = wait_alarm(procs, "UNCOMMANDED_MOVEMENT", "gate-2", 2.0)
    # the leaf passes the position noise (10 ‰ of 3 s) within 0.03 s; one poll and a reply later it is seen
    assert before <= alarm["raised_at"] <= injected + 0.03 + POLL_S + TIMEOUT_S + 0.2, \
        f"raised {alarm['raised_at'] - injected:+.3f} s after the injection returned"
    assert alarm["severity"] == "critical"
    assert find_alarm(cli_alarms(procs), "UNCOMMANDED_MOVEMENT", "gate-2") is not None
    assert procs.device("gate-2")["state"] != "closed"
    assert_refused(procs, "open", "gate-2", "active_fault")


def test_a_commanded_travel_raises_no_movement_alarm(procs):
    """The counterpart of the forced gate: movement under a command, start to limit, is not uncommanded."""
    for verb, goal in (("open", "open"), ("close", "closed")):
        rc, _, err = procs.ctl(verb, "bay-exit")
        assert rc == 0, err
        wait_until(lambda: procs.device("bay-exit")["state"] == goal, 2.0 + 1.0, f"bay-exit {goal}")
        time.sleep(2 * POLL_S)
        assert alarms_since_armed(procs) == [], f"after {verb}: {listed_alarms(procs)}"


# Faults that are a STATUS bit or FAULT_CODE of a slot, or a PLC_STATUS bit: (fault, PLC, slot, code) →
# the alarm (code, subject, severity), the states of the devices concerned, and a command refused meanwhile.
STATUS_FAULTS = {
    "drive_fault": (("plc-lane-2", 1, 3), ("DRIVE_FAULT", "blocker-2", "fault"), {"blocker-2": "fault"},
                    ("lower", "blocker-2", "device_fault")),
    "low_pressure": (("plc-lane-1", 1, None), ("LOW_PRESSURE", "blocker-1", "fault"), {"blocker-1": "fault"},
                     ("lower", "blocker-1", "device_fault")),
    "oil_temp": (("plc-lane-2", 1, 900), ("OIL_TEMP", "blocker-2", "warning"), {"blocker-2": "closed"}, None),
    "sensor_fault": (("plc-lane-2", 0, None), ("SENSOR_FAULT", "gate-2", "fault"), {"gate-2": "fault"},
                     ("open", "gate-2", "device_fault")),
    "lamp_fault": (("plc-lane-1", 2, None), ("LAMP_FAULT", "signal-1", "fault"), {"signal-1": "fault"},
                   ("green", "signal-1", "device_fault")),
    "estop": (("plc-lane-1", None, None), ("ESTOP", "plc-lane-1", "critical"),
              {"gate-1": "closed", "blocker-1": "closed", "signal-1": "red"}, ("open", "gate-1", "active_fault")),
    "mains_fail": (("plc-bay", None, None), ("MAINS_FAIL", "plc-bay", "warning"),
                   {"bay-entry": "closed", "bay-exit": "closed"}, None),
    "cabinet_tamper": (("plc-lane-2", None, None), ("CABINET_TAMPER", "plc-lane-2", "critical"),
                       {"gate-2": "closed", "signal-2": "red"}, ("open", "gate-2", "active_fault")),
    "local": (("plc-bay", 1, None), ("LOCAL_CONTROL", "bay-exit", "warning"), {"bay-exit": "local"},
              ("open", "bay-exit", "device_local")),
    "local_panel": (("plc-lane-1", None, None), ("LOCAL_PANEL", "plc-lane-1", "warning"),
                    {"gate-1": "local", "blocker-1": "local", "signal-1": "local"}, ("open", "gate-1", "device_local")),
    "manual_release": (("plc-bay", 0, None), ("MANUAL_RELEASE", "bay-entry", "warning"), {"bay-entry": "local"},
                       ("open", "bay-entry", "device_local")),
}


@pytest.mark.parametrize("fault", list(STATUS_FAULTS))
def test_status_fault_raises_its_alarm_and_sets_the_state(procs, fault):
    (plc, slot, code), (alarm_code, subject, severity), expected, refusal = STATUS_FAULTS[fault]
    inject(procs, plc, fault, slot, code=code)
    alarm = wait_alarm(procs, alarm_code, subject, 1.0)
    assert alarm["severity"] == severity
    wait_until(lambda: states(procs, expected) == expected, 1.0, f"states {expected}")
    shown = find_alarm(cli_alarms(procs), alarm_code, subject)
    assert shown is not None and shown["id"] == alarm["id"] and shown["cleared_at"] is None
    status = procs.status()
    assert next(p for p in status["plcs"] if p["name"] == plc)["comms"] == "ok", "the PLC itself answers"
    assert all(d["quality"] == "good" for d in status["devices"] if d["name"] in expected)
    if fault == "local_panel":
        for name in expected:
            assert find_alarm(status["alarms"], "LOCAL_CONTROL", name) is not None, name
    if refusal is not None:
        assert_refused(procs, *refusal)
    inject(procs, plc, fault, slot, off=True)


# ---- faults that need barrierd started on a site that differs from what sim-plc serves ----------


def edit(text: str, pattern: str, replacement: str) -> str:
    new, count = re.subn(pattern, replacement, text)
    assert count == 1, f"{pattern!r} matched {count} times"
    return new


@pytest.fixture(scope="module")
def odd_site(tmp_path_factory):
    """sim-plc serves the demo site; barrierd runs a copy in which plc-bay's watchdog is 2000 ms (the sim
    ignores the write: watchdog_ignored), plc-lane-2's gate and blocker swap slots (a wrong program) and
    a frozen PLC is seen only after 50 polls (so a command reaches it first)."""
    tmp = tmp_path_factory.mktemp("odd-site")
    served = site_copy(tmp)
    procs = Processes(tmp=tmp, site=served)
    procs.start_sim()
    inject(procs, "plc-bay", "watchdog_ignored")
    text = served.read_text()
    text = edit(text, r"(?m)^poll_ms = 100$", "poll_ms = 100\nfrozen_polls = 50")
    text = edit(text, r'(name = "plc-bay"\n(?:[a-z_]+ = .*\n)*?watchdog_ms = )3000', r"\g<1>2000")
    text = edit(text, r'(name = "gate-2"\nkind = "folding_gate"\nplc = "plc-lane-2"\nslot = )0', r"\g<1>1")
    text = edit(text, r'(name = "blocker-2"\nkind = "road_blocker"\nplc = "plc-lane-2"\nslot = )1', r"\g<1>0")
    procs.site = tmp / "barrierd-site.toml"
    procs.site.write_text(text)
    procs.start_daemon()
    try:
        wait_until(lambda: states(procs, ["gate-1", "bay-entry"]) == {"gate-1": "closed", "bay-entry": "closed"},
                   10, "plc-lane-1 and plc-bay read")
        yield procs
    finally:
        procs.close()


def test_watchdog_not_armed_when_the_plc_ignores_the_write(odd_site):
    procs = odd_site
    alarm = wait_alarm(procs, "WATCHDOG_NOT_ARMED", "plc-bay", 2.0)
    assert alarm["severity"] == "fault" and "2000" in alarm["message"] and "3000" in alarm["message"]
    plc = next(p for p in procs.status()["plcs"] if p["name"] == "plc-bay")
    assert (plc["comms"], plc["watchdog_ms"]) == ("ok", 3000)
    armed = [w for w in procs.writes() if w["plc"] == "plc-bay" and w["address"] == 1]
    assert armed and armed[0]["values"] == [2000] and armed[0]["result"] == "ok", "barrierd wrote 2000, acknowledged"
    assert find_alarm(cli_alarms(procs), "WATCHDOG_NOT_ARMED", "plc-bay") is not None
    assert find_alarm(listed_alarms(procs), "WATCHDOG_NOT_ARMED", "plc-lane-1") is None
    assert_refused(procs, "open", "bay-entry", "active_fault")


def test_wrong_plc_program_gets_no_command(odd_site):
    procs = odd_site
    lane_2 = devices_on("plc-lane-2")
    wait_until(lambda: set(states(procs, lane_2).values()) == {"unknown"}, 2.0, "plc-lane-2's devices unknown")
    plc = next(p for p in procs.status()["plcs"] if p["name"] == "plc-lane-2")
    assert plc["comms"] == "invalid" and "slot kinds" in (plc["reason"] or ""), plc
    assert_refused(procs, "close", "gate-2", "data_not_valid")
    assert writes_to(procs, "plc-lane-2", 0) == [], "a COMMAND write to a PLC running another program"
    assert {w["address"] for w in procs.writes() if w["plc"] == "plc-lane-2"} <= {0, 1}, "only watchdog + heartbeat"
    alarm = wait_alarm(procs, "WRONG_PROGRAM", "plc-lane-2", 1.0)
    assert alarm["severity"] == "fault"


def test_command_not_acknowledged_by_a_frozen_plc(odd_site):
    procs = odd_site
    mark = len(procs.writes())
    sim_request(procs, cmd="inject", plc="plc-lane-1", fault="frozen_logic", slot=None, active=True, code=None)
    try:
        started = time.monotonic()
        rc, out, err = procs.ctl("close", "gate-1")
        assert time.monotonic() - started < FROZEN_POLLS * POLL_S * 5, "answered before the freeze is even seen"
        assert rc == 1 and "not acknowledged" in err, (rc, out, err)
        (written,) = writes_to(procs, "plc-lane-1", mark)
        assert written["address"] == slot_base(0) and written["values"][0] == 2 and written["result"] == "ok"
        assert sim_slot(procs, "plc-lane-1", 0)["ack_seq"] != written["values"][1], "the frozen PLC acknowledged"
        alarm = find_alarm(cli_alarms(procs), "COMMAND_NOT_ACKNOWLEDGED", "gate-1")
        assert alarm is not None and alarm["severity"] == "fault", cli_alarms(procs)
    finally:
        sim_request(procs, cmd="inject", plc="plc-lane-1", fault="frozen_logic", slot=None, active=False, code=None)
