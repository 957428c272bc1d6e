"""barrierctl as a guard and a technician use it: every exit code of the README's table, --wait, completion,
and a lane walked through every mode while `status` and `watch` run, every call answered."""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import subprocess
import termios
import threading

import pytest

from tests.e2e.harness import BIN, barrierctl_as
from tests.support import wait_until

pytestmark = pytest.mark.e2e


NOBODY = ("nobody", 65534, 65534)  # a user with no role


def read_all(fd: int, into: bytearray) -> None:
    """Everything a program draws on a pseudo-terminal, until it closes."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        into.extend(chunk)


def test_every_exit_code_of_the_readme_table(site_processes, tmp_path):
    procs = site_processes
    assert procs.ctl("status")[0] == 0
    code, _, err = procs.ctl("opne", "gate-1")
    assert code == 2 and "did you mean 'open'" in err
    code, _, err = procs.ctl("open", "gate-l")
    assert code == 2 and "did you mean" in err and "'gate-1'" in err, err
    assert procs.sim_ctl("inject", "plc-lane-1", "vehicle_present", "--slot", "1")[0] == 0
    wait_until(lambda: "VEHICLE_PRESENT" in procs.device("blocker-1")["flags"], 5, "vehicle seen")
    assert procs.ctl("lower", "blocker-1", "--wait")[0] == 0
    code, _, err = procs.ctl("raise", "blocker-1")
    assert code == 3 and "vehicle_present" in err
    if os.geteuid() == 0:
        tmp_path.chmod(0o711)
        procs.socket.chmod(0o666)
        assert barrierctl_as(NOBODY, ["--socket", procs.socket.name, "open", "gate-1"], procs.socket.parent) == 4
    assert procs.sim_ctl("inject", "plc-lane-1", "stuck_motion", "--slot", "0")[0] == 0
    code, _, err = procs.ctl("open", "gate-1", "--wait")
    assert code == 1 and "not in place" in err
    assert procs.stop_daemon() == 0
    code, _, err = procs.ctl("status")
    assert code == 5 and "not running" in err


def test_wait_draws_the_travel_and_returns_once_the_device_is_in_place(site_processes):
    procs = site_processes
    code, out, err = procs.ctl("open", "gate-1", "--wait")
    assert code == 0, err
    assert "accepted by the PLC" in out and "gate-1 open: in place" in out
    assert procs.device("gate-1")["state"] == "open", "returned only once in place"
    assert "gate-1" in out and "%" in out, "the travel was drawn"


def test_bash_completion_offers_the_running_sites_names(site_processes):
    procs = site_processes
    script = procs.ctl("completion", "bash")[1]
    probe = script + f"""
COMP_WORDS=(barrierctl --socket {procs.socket} raise b); COMP_CWORD=4; _barrierctl; echo "raise: ${{COMPREPLY[*]}}"
COMP_WORDS=(barrierctl --socket {procs.socket} lane open ""); COMP_CWORD=5; _barrierctl; echo "lane: ${{COMPREPLY[*]}}"
COMP_WORDS=(barrierctl lo); COMP_CWORD=1; _barrierctl; echo "commands: ${{COMPREPLY[*]}}"
"""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=60, env=env).stdout
    assert "raise: blocker-1 blocker-2" in out
    assert "lane: lane-1 lane-2 --wait" in out
    assert "commands: lower lockdown" in out


def test_status_and_watch_never_fail_while_a_lane_goes_through_every_mode(site_processes, tmp_path):
    procs = site_processes
    failures: list[str] = []
    calls = [0]
    stop = threading.Event()

    def keep_reading() -> None:
        while not stop.is_set():
            code, _, err = procs.ctl("status")
            calls[0] += 1
            if code != 0:
                failures.append(err)

    screen, terminal = pty.openpty()  # watch draws on a terminal of 80 columns, as a technician's
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 80, 0, 0))
    watch = subprocess.Popen([str(BIN / "barrierctl"), "--socket", str(procs.socket), "watch", "--interval", "0.1"],
                             stdin=terminal, stdout=terminal, stderr=terminal, env={**os.environ, "TERM": "xterm"})
    os.close(terminal)
    drawn = bytearray()
    drawer = threading.Thread(target=read_all, args=(screen, drawn))
    drawer.start()
    reader = threading.Thread(target=keep_reading)
    reader.start()
    seen = []
    try:
        def step(*argv: str, expect: int = 0) -> None:
            code, _, err = procs.ctl(*argv)
            assert code == expect, (argv, err)
            seen.append(next(x for x in procs.status()["lanes"] if x["name"] == "lane-1")["mode"])

        step("lane", "open", "lane-1", "--wait")
        step("close", "gate-1", "--wait")  # one device moved singly: mixed
        step("lane", "secure", "lane-1", "--wait")
        step("lockdown", "--lane", "lane-1", "--reason", "car AB-123 [/] fled \x1b[31m")
        wide = procs.ctl("status", env={"COLUMNS": "300"})[1]
        assert "car AB-123 [/] fled \\x1b[31m" in wide, "the reason shown verbatim, its escape not sent"
        step("lockdown", "release", "--lane", "lane-1", "--reason", "all clear")
        step("maintenance", "enter", "lane-1", "--reason", "loop repair")
        step("maintenance", "exit", "lane-1", "--reason", "done")
        step("lane", "open", "lane-1")
        assert procs.sim_ctl("inject", "plc-lane-1", "vehicle_present", "--slot", "1")[0] == 0
        wait_until(lambda: "VEHICLE_PRESENT" in procs.device("blocker-1")["flags"], 5, "vehicle seen")
        step("lane", "secure", "lane-1", expect=1)  # the blocker step refused after the signal turned red
        assert procs.sim_ctl("inject", "plc-lane-1", "vehicle_present", "--slot", "1", "--off")[0] == 0
        step("lane", "secure", "lane-1")
    finally:
        stop.set()
        reader.join(timeout=30)
        alive = watch.poll() is None
        watch.send_signal(signal.SIGINT)
        watch_code = watch.wait(timeout=10)
        drawer.join(timeout=10)
        os.close(screen)
    assert seen == ["open", "mixed", "secured", "lockdown", "secured", "maintenance", "secured", "open", "fault",
                    "secured"]
    assert failures == [] and calls[0] > 10
    assert alive and watch_code == 0
    shown = drawn.decode(errors="replace")
    assert "Traceback" not in shown
    for mode in ("mixed", "lockdown", "maintenance", "fault"):
        assert mode in shown, f"watch drew the lane in {mode}"
