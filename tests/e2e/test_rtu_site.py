"""End to end over a virtual RS-485 line: barrierctl → barrierd → Modbus RTU (two units on one line, 19200 8N1)
→ sim-plc, with real processes and real line timing; the inspection bay stays on Modbus TCP."""

from __future__ import annotations

import pytest

from tests.e2e.rtu_harness import RtuProcesses, rtu_site_copy
from tests.e2e.test_device_commands import command_writes, drive
from tests.support import wait_until

pytestmark = pytest.mark.e2e

LANE_1 = ("gate-1", "blocker-1", "signal-1")
LANE_2 = ("gate-2", "blocker-2", "signal-2")
BAY = ("bay-entry", "bay-exit")


@pytest.fixture
def rtu_processes(tmp_path):
    procs = RtuProcesses(tmp=tmp_path, site=rtu_site_copy(tmp_path))
    try:
        procs.start_vline()
        procs.start_sim()
        procs.start_daemon()
        yield procs
    finally:
        procs.close()


def states(procs: RtuProcesses) -> dict[str, str]:
    return {d["name"]: d["state"] for d in procs.status()["devices"]}


def comms(procs: RtuProcesses) -> dict[str, str]:
    return {p["name"]: p["comms"] for p in procs.status()["plcs"]}


def test_a_gate_and_a_blocker_on_two_units_of_one_line_reach_their_states(rtu_processes):
    procs = rtu_processes
    wait_until(lambda: comms(procs) == {"plc-lane-1": "ok", "plc-lane-2": "ok", "plc-bay": "ok"}, 10, "all read")
    wait_until(lambda: states(procs)["gate-1"] == "closed" and states(procs)["blocker-2"] == "closed", 5, "home")

    drive(procs, "open", "gate-1", "open", 3.0)  # unit 1
    drive(procs, "lower", "blocker-2", "open", 6.0)  # unit 2
    status = procs.status()
    devices = {d["name"]: d for d in status["devices"]}
    assert devices["gate-1"]["state"] == "open" and devices["gate-1"]["quality"] == "good"
    assert devices["gate-1"]["position"] == 0
    assert devices["blocker-2"]["display"] == "lowered" and devices["blocker-2"]["quality"] == "good"
    assert devices["gate-2"]["state"] == "closed" and devices["blocker-1"]["state"] == "closed"
    plcs = {p["name"]: p for p in status["plcs"]}
    assert plcs["plc-lane-1"]["comms"] == plcs["plc-lane-2"]["comms"] == "ok"
    assert plcs["plc-lane-1"]["watchdog_ms"] == plcs["plc-lane-2"]["watchdog_ms"] == 3000

    drive(procs, "close", "gate-1", "closed", 3.0)
    sent = [(w["plc"], w["unit"], w["values"][0]) for w in command_writes(procs.writes())]
    assert sent == [("plc-lane-1", 1, 1), ("plc-lane-2", 2, 1), ("plc-lane-1", 1, 2)]


def test_a_silent_unit_makes_only_its_own_devices_unknown(rtu_processes):
    procs = rtu_processes
    wait_until(lambda: all(s != "unknown" for s in states(procs).values()), 10, "every device known")
    before = states(procs)
    code, _, err = procs.sim_ctl("inject", "plc-lane-2", "comms_silence")
    assert code == 0, err
    wait_until(lambda: all(states(procs)[d] == "unknown" for d in LANE_2), 5, "lane-2 devices unknown")
    wait_until(lambda: comms(procs)["plc-lane-2"] == "lost", 5, "plc-lane-2 comms lost")
    for _ in range(4):  # for a while: the other unit on the line and the TCP bay stay read
        status = procs.status()
        now = {d["name"]: d for d in status["devices"]}
        assert {d: now[d]["state"] for d in LANE_1 + BAY} == {d: before[d] for d in LANE_1 + BAY}
        assert all(now[d]["quality"] == "good" for d in LANE_1 + BAY)
        links = {p["name"]: p["comms"] for p in status["plcs"]}
        assert links == {"plc-lane-1": "ok", "plc-lane-2": "lost", "plc-bay": "ok"}
    code, _, err = procs.sim_ctl("inject", "plc-lane-2", "comms_silence", "--off")
    assert code == 0, err
    wait_until(lambda: states(procs) == before, 8, "lane-2 read again after its retry back-off")
