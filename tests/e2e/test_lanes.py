"""End to end: lane sequences, lockdown with EFO, airlock and presence interlocks, persistence across restart."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from hal.profile import Command, SignalCommand, slot_base
from tests.e2e.harness import BIN
from tests.e2e.test_device_commands import command_writes
from tests.support import wait_until

pytestmark = pytest.mark.e2e

LANE_1 = {"gate-1": ("plc-lane-1", 0), "blocker-1": ("plc-lane-1", 1), "signal-1": ("plc-lane-1", 2)}
BAY = {"bay-entry": ("plc-bay", 0), "bay-exit": ("plc-bay", 1)}


def named(writes: list[dict], devices: dict) -> list[tuple[str, int]]:
    """Command writes as (device, COMMAND) in the order the PLCs received them."""
    by_address = {(plc, slot_base(slot)): name for name, (plc, slot) in devices.items()}
    return [(by_address[(w["plc"], w["address"])], w["values"][0])
            for w in command_writes(writes) if (w["plc"], w["address"]) in by_address]


def lane_mode(procs, lane: str) -> str:
    return next(x for x in procs.status()["lanes"] if x["name"] == lane)["mode"]


def test_lane_open_then_secure_run_their_steps_in_order(site_processes):
    procs = site_processes
    wait_until(lambda: lane_mode(procs, "lane-1") == "secured", 5, "lane-1 classified secured at start")

    code, out, err = procs.ctl("lane", "open", "lane-1")
    assert code == 0, err
    assert lane_mode(procs, "lane-1") == "open"
    assert named(procs.writes(), LANE_1) == [
        ("gate-1", Command.OPEN), ("blocker-1", Command.OPEN), ("signal-1", SignalCommand.GREEN)]
    assert [procs.device(n)["state"] for n in LANE_1] == ["open", "open", "green"]

    before = len(procs.writes())
    code, out, err = procs.ctl("lane", "secure", "lane-1")
    assert code == 0, err
    assert lane_mode(procs, "lane-1") == "secured"
    assert named(procs.writes()[before:], LANE_1) == [
        ("signal-1", SignalCommand.RED), ("blocker-1", Command.CLOSE), ("gate-1", Command.CLOSE)]
    steps = [w for w in command_writes(procs.writes()[before:]) if w["plc"] == "plc-lane-1"]
    assert steps[1]["t"] - steps[0]["t"] >= 2.0, "the blocker rises only after the clear time"


def test_lockdown_secures_everything_latches_and_survives_a_restart(site_processes):
    procs = site_processes
    wait_until(lambda: lane_mode(procs, "lane-2") == "secured", 5, "lanes read at start")
    openers = [subprocess.Popen([str(BIN / "barrierctl"), "--socket", str(procs.socket), "lane", "open", lane])
               for lane in ("lane-1", "lane-2")]
    assert [p.wait(timeout=30) for p in openers] == [0, 0]

    code, out, err = procs.ctl("lockdown", "--reason", "drill", "--json")
    assert code == 0, err
    secured_at = json.loads(out)["secured_at"]
    assert set(secured_at) == {"gate-1", "blocker-1", "signal-1", "gate-2", "blocker-2", "signal-2",
                               "bay-entry", "bay-exit"}
    assert secured_at["blocker-1"] <= 2.5 and secured_at["blocker-2"] <= 2.5, secured_at
    assert secured_at["gate-1"] <= 4.0 and secured_at["gate-2"] <= 4.0, secured_at
    efo = [w for w in command_writes(procs.writes()) if w["values"][0] == Command.EFO]
    assert {(w["plc"], w["address"]) for w in efo} == {("plc-lane-1", slot_base(1)), ("plc-lane-2", slot_base(1))}

    code, _, err = procs.ctl("lane", "open", "lane-1")
    assert code == 3 and "rule lockdown" in err
    code, _, err = procs.ctl("lower", "blocker-2")
    assert code == 3 and "rule lockdown" in err

    procs.stop_daemon(signal.SIGKILL)
    before = len(procs.writes())
    procs.start_daemon()
    status = procs.status()
    assert status["lockdown"]["reason"] == "drill"
    assert {lane["mode"] for lane in status["lanes"]} == {"lockdown"}
    code, _, err = procs.ctl("green", "signal-1")
    assert code == 3 and "rule lockdown" in err
    wait_until(lambda: procs.device("gate-1")["quality"] == "good", 5, "gate-1 read after restart")
    assert command_writes(procs.writes()[before:]) == []

    code, out, err = procs.ctl("lockdown", "release", "--reason", "drill over")
    assert code == 0, err
    status = procs.status()
    assert status["lockdown"] is None
    assert {lane["mode"] for lane in status["lanes"]} == {"secured"}
    assert command_writes(procs.writes()[before:]) == [], "releasing moves nothing"


def test_airlock_refuses_opening_the_second_boom(site_processes):
    procs = site_processes
    wait_until(lambda: procs.device("bay-exit")["state"] == "closed", 5, "bay read at start")
    code, _, err = procs.ctl("open", "bay-entry")
    assert code == 0, err
    wait_until(lambda: procs.device("bay-entry")["state"] == "open", 3.0, "entry boom open")
    before = len(procs.writes())
    code, _, err = procs.ctl("open", "bay-exit")
    assert code == 3
    assert "rule never_both_open" in err and "bay-entry" in err
    assert named(procs.writes()[before:], BAY) == []


def test_blocker_raise_with_a_vehicle_is_refused_but_efo_raises_it(site_processes):
    procs = site_processes
    code, _, err = procs.ctl("lower", "blocker-1")
    assert code == 0, err
    wait_until(lambda: procs.device("blocker-1")["display"] == "lowered", 7.0, "blocker-1 lowered")
    code, _, err = procs.sim_ctl("inject", "plc-lane-1", "vehicle_present", "--slot", "1")
    assert code == 0, err
    wait_until(lambda: "VEHICLE_PRESENT" in procs.device("blocker-1")["flags"], 2.0, "the loop is seen")
    before = len(procs.writes())
    code, _, err = procs.ctl("raise", "blocker-1")
    assert code == 3 and "rule vehicle_present" in err
    assert named(procs.writes()[before:], LANE_1) == [], "refused by the supervisor, never written"

    code, out, err = procs.ctl("lockdown", "--lane", "lane-1", "--reason", "ram attempt", "--json")
    assert code == 0, err
    assert procs.device("blocker-1")["display"] == "raised"
    assert json.loads(out)["secured_at"]["blocker-1"] <= 2.5
