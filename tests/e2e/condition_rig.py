"""What the condition end-to-end tests share: a fast copy of the demo site (sim-plc at a quarter of its travel
times, small baselines), travels read from the event store, and barrierctl run as a user of a given role."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

from hal.profile import SLOT_BASE, SLOT_STRIDE
from tests.e2e.fault_rig import daemon, fast_status, find_alarm, listed_alarms, writes_to
from tests.e2e.harness import Processes, site_copy
from tests.support import wait_until

SCALE = 0.2  # sim-plc --travel-scale: gate 0.6 s, boom 0.4 s, blocker 1.2 s, EFO raise 0.3 s
TRAVEL_S = {"3.0": 3.0 * SCALE, "6.0": 6.0 * SCALE, "2.0": 2.0 * SCALE}  # the demo's leaves; signals keep 0.5
EFO_LIMIT_S = 2.5 * SCALE  # the demo's 2.5 s limit over sim-plc's 1.5 s raise, scaled alike
VIEWER, OPERATOR = ("daemon", 1, 1), ("nobody", 65534, 65534)  # (user, uid, gid) given those roles in the copy
FAST = {"baseline_travels": 3, "recent_travels": 3, "efo_limit_s": EFO_LIMIT_S}


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return repr(value)


def condition_site(tmp: Path, **condition) -> Path:
    """The demo site with scaled travel_s, a [condition] section of FAST plus `condition`, and a viewer and an
    operator among the local users."""
    path = site_copy(tmp)
    text = re.sub(r"(?m)^travel_s = (\d+\.\d+)$",
                  lambda m: f"travel_s = {TRAVEL_S[m[1]]}" if m[1] in TRAVEL_S else m[0], path.read_text())
    section = "[condition]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in {**FAST, **condition}.items())
    text, found = re.subn(r"(?ms)^\[condition\]\n.*?(?=^\[access\])", section + "\n", text)
    assert found == 1, "the demo site has a [condition] section before [access]"
    for role, (user, _, _) in (("viewer", VIEWER), ("operator", OPERATOR)):
        text = text.replace(f"{role} = [", f'{role} = ["{user}", ')
    path.write_text(text)
    return path


def start(tmp: Path, **condition) -> Processes:
    procs = Processes(tmp=tmp, site=condition_site(tmp, **condition), sim_args=["--travel-scale", str(SCALE)])
    procs.start_sim()
    procs.start_daemon()
    return procs


def travels(procs: Processes, device: str) -> list[dict]:
    """The device's rows of the travels table, oldest first."""
    with sqlite3.connect(procs.event_db) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM travels WHERE device = ? ORDER BY id", (device,))]


def command_rows(procs: Processes, command: str) -> list[tuple]:
    with sqlite3.connect(procs.event_db) as db:
        rows = db.execute("SELECT user, role, args, outcome, exit_code FROM commands WHERE command = ? ORDER BY id",
                          (command,)).fetchall()
    return [(user, role, json.loads(args).get("reason"), outcome, code) for user, role, args, outcome, code in rows]


def commands_to(procs: Processes, plc: str, since: int) -> list[tuple[int, int]]:
    """(slot, COMMAND) written to `plc` after write-log entry `since`."""
    return [((w["address"] - SLOT_BASE) // SLOT_STRIDE, w["values"][0]) for w in writes_to(procs, plc, since)]


def health(procs: Processes, device: str) -> dict:
    return next(d for d in daemon(procs, "health")["data"]["devices"] if d["name"] == device)


def device(procs: Processes, name: str) -> dict:
    return next(d for d in fast_status(procs)["devices"] if d["name"] == name)


def readiness(procs: Processes, name: str) -> dict:
    return device(procs, name)["readiness"]


def active(procs: Processes, code: str, subject: str) -> dict | None:
    return find_alarm(listed_alarms(procs), code, subject)


def travel(procs: Processes, name: str, verb: str, goal: str, timeout_s: float = 5.0) -> dict:
    """Command one travel (as root) and wait until its row is stored and the device is read at `goal`."""
    before = len(travels(procs, name))
    reply = daemon(procs, verb, device=name)
    assert reply["exit"] == 0, reply
    wait_until(lambda: len(travels(procs, name)) > before and device(procs, name)["state"] == goal, timeout_s,
               f"{name}: {verb} stored and read {goal}", step_s=0.02)
    return travels(procs, name)[-1]
