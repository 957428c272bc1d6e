"""What the fault tests share: the demo site's timing, where each device sits, and helpers that inject a
fault, read alarms and bring the site home."""

from __future__ import annotations

import json
import time

from controller.cli import request
from sim_plc.control import send_request
from tests.e2e.harness import Processes
from tests.e2e.test_device_commands import command_writes
from tests.support import wait_until

# The demo site as the e2e copy runs it.
POLL_S = 0.1
TIMEOUT_S = 0.3
COMMS_LOST_POLLS = 3
FROZEN_POLLS = 10
COMMS_LOST_S = COMMS_LOST_POLLS * (POLL_S + TIMEOUT_S)  # DESIGN §7: comms loss detected within this
SLACK_S = 0.5  # process overhead: barrierctl / status round trips, scheduling

WHERE = {  # device -> (PLC, slot)
    "gate-1": ("plc-lane-1", 0), "blocker-1": ("plc-lane-1", 1), "signal-1": ("plc-lane-1", 2),
    "gate-2": ("plc-lane-2", 0), "blocker-2": ("plc-lane-2", 1), "signal-2": ("plc-lane-2", 2),
    "bay-entry": ("plc-bay", 0), "bay-exit": ("plc-bay", 1),
}
HOME = {name: ("red" if name.startswith("signal") else "closed") for name in WHERE}
HOME_VERB = {name: ("red" if name.startswith("signal") else "close") for name in WHERE}




def daemon(procs: Processes, command: str, **args) -> dict:
    """One request on barrierd's socket from this process (fast: no barrierctl start-up) — for polling."""
    return request(procs.socket, command, args, timeout_s=30)


def fast_status(procs: Processes) -> dict:
    return daemon(procs, "status")["data"]


def states(procs: Processes, names=None) -> dict[str, str]:
    return {d["name"]: d["state"] for d in fast_status(procs)["devices"] if names is None or d["name"] in names}


def devices_on(plc: str) -> list[str]:
    return [name for name, (p, _) in WHERE.items() if p == plc]


def sim_request(procs: Processes, **req) -> dict:
    reply = send_request(procs.sim_control, req)
    assert reply.get("ok"), reply
    return reply


def inject(procs: Processes, plc: str, fault: str, slot: int | None = None, *, off: bool = False,
           code: int | None = None) -> float:
    """`sim-plc inject` (the real CLI); returns the wall-clock time it returned."""
    args = ["inject", plc, fault]
    if slot is not None:
        args += ["--slot", str(slot)]
    if code is not None:
        args += ["--code", str(code)]
    if off:
        args.append("--off")
    rc, out, err = procs.sim_ctl(*args)
    assert rc == 0, err
    return time.time()


def sim_slot(procs: Processes, plc: str, slot: int) -> dict:
    return sim_request(procs, cmd="state", plc=plc)["state"][plc]["slots"][slot]


def listed_alarms(procs: Processes) -> list[dict]:
    return daemon(procs, "alarms")["data"]["alarms"]


ARMING_S = 2.0  # barrierd's first readings after it answers on its socket


def alarms_since_armed(procs: Processes) -> list[dict]:
    """The alarms, but for a WATCHDOG_EXPIRED that barrierd found on arming: a PLC whose power-up watchdog
    (3 s) ran out before barrierd started has failed secure, and whether the first reading comes before the
    PLC's next scan clears the bit is a race barrierd reports truthfully either way. One raised later stays."""
    def found_on_arming(alarm: dict) -> bool:
        return alarm["code"] == "WATCHDOG_EXPIRED" and alarm["raised_at"] <= procs.daemon_answered_at + ARMING_S

    return [a for a in listed_alarms(procs) if not found_on_arming(a)]


def find_alarm(alarms: list[dict], code: str, subject: str, *, active: bool = True) -> dict | None:
    return next((a for a in alarms if a["code"] == code and a["subject"] == subject and a["active"] == active), None)


def wait_alarm(procs: Processes, code: str, subject: str, timeout_s: float) -> dict:
    return wait_until(lambda: find_alarm(listed_alarms(procs), code, subject), timeout_s,
                      f"alarm {code} on {subject} (list: {[(a['code'], a['subject']) for a in listed_alarms(procs)]})",
                      step_s=0.02)


def cli_alarms(procs: Processes) -> list[dict]:
    """What `barrierctl alarms --json` prints."""
    rc, out, err = procs.ctl("alarms", "--json")
    assert rc == 0, err
    alarms = json.loads(out)["alarms"]
    for alarm in alarms:
        assert set(alarm) == {"id", "code", "subject", "severity", "message", "raised_at", "cleared_at",
                              "acked_by", "acked_at", "active"}
    return alarms


def writes_to(procs: Processes, plc: str, since: int) -> list[dict]:
    """COMMAND writes to `plc` in the write log after entry `since`."""
    return [w for w in command_writes(procs.writes()[since:]) if w["plc"] == plc]


def assert_refused(procs: Processes, verb: str, device: str, rule: str) -> None:
    """barrierctl refuses with exit 3 naming `rule`, and nothing reaches the PLC."""
    plc, _ = WHERE[device]
    before = len(procs.writes())
    rc, out, err = procs.ctl(verb, device)
    assert rc == 3, f"{verb} {device}: exit {rc}: {out} {err}"
    assert f"rule {rule}" in err, err
    assert writes_to(procs, plc, before) == [], f"{verb} {device} was written although refused"


def wait_home(procs: Processes, timeout_s: float = 10) -> None:
    wait_until(lambda: states(procs) == HOME, timeout_s, "every device home (closed / red)")


def restore(procs: Processes) -> None:
    """Switch every fault off, reset faulted devices, bring devices home, acknowledge every alarm."""
    for fault in sim_request(procs, cmd="faults")["faults"]:
        sim_request(procs, cmd="inject", plc=fault["plc"], fault=fault["fault"], slot=fault["slot"], active=False,
                    code=None)
    wait_until(lambda: all(p["comms"] == "ok" for p in fast_status(procs)["plcs"]), 5, "every PLC answers")

    def settled() -> bool:
        status = fast_status(procs)
        for device in status["devices"]:
            name, state = device["name"], device["state"]
            if state == "fault":
                daemon(procs, "reset", device=name)
            elif state not in (HOME[name], "opening", "closing"):
                daemon(procs, HOME_VERB[name], device=name)
        return {d["name"]: d["state"] for d in status["devices"]} == HOME

    wait_until(settled, 15, "devices back home after the faults were cleared", step_s=0.3)

    def acked() -> bool:
        alarms = listed_alarms(procs)
        for alarm in alarms:
            if alarm["acked_at"] is None:
                daemon(procs, "ack", alarm=alarm["id"])
        return not listed_alarms(procs)

    wait_until(acked, 5, "alarm list empty once every alarm is acknowledged", step_s=0.2)
