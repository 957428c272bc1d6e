"""End to end: a caller with no role holding 1,100 connections or trickling bytes cannot take barrierd's
descriptors or its socket from root and the PLCs."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

import pytest

from tests.e2e.harness import Processes, site_copy
from tests.support import wait_until

pytestmark = pytest.mark.e2e

NOBODY = 65534
DAEMON_DESCRIPTORS = 1024  # the default soft limit barrierd had under the unit before LimitNOFILE

# Run as root only to import and to find the socket (cwd), then as nobody: open connections and report.
HOG = """
import json, os, socket, sys, time
count, mode = int(sys.argv[1]), sys.argv[2]
os.setgroups([]); os.setgid(65534); os.setuid(65534)
socks, refused_connect = [], 0
for _ in range(count):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # blocking: waits while the backlog is full
    try:
        s.connect("barrierd.sock")
    except OSError:
        refused_connect += 1
        s.close()
        continue
    socks.append(s)
if mode == "trickle":
    started = time.monotonic()
    closed_after = {}
    def waiting(s):  # what barrierd sent on s and was not read yet (stays readable after it closed)
        s.setblocking(False)
        try:
            return s.recv(4096)
        except BlockingIOError:
            return None
        except OSError:
            return b""
    for second in range(12):
        for i, s in enumerate(socks):
            if i in closed_after:
                continue
            s.setblocking(True)
            try:
                s.send(b'{"command":"status"'[second:second + 1] or b" ")
            except OSError:  # closed between the last read and this byte: its reply is still waiting
                data = waiting(s) or b""
                closed_after[i] = (time.monotonic() - started, data.decode(errors="replace"))
        time.sleep(1.0)
        for i, s in enumerate(socks):
            data = waiting(s)
            if data is None:
                continue
            if i not in closed_after and (not data or data.endswith(b"\\n")):
                closed_after[i] = (time.monotonic() - started, data.decode(errors="replace"))
        if len(closed_after) == len(socks):
            break
    print(json.dumps({"closed_after": closed_after}), flush=True)
    sys.exit(0)
time.sleep(1.0)
replies = {}
for s in socks:
    s.setblocking(False)
    try:
        line = s.recv(4096).decode(errors="replace").strip()
    except BlockingIOError:
        line = "(open)"
    except OSError as exc:
        line = f"({exc.strerror})"
    replies[line] = replies.get(line, 0) + 1
print(json.dumps({"connected": len(socks), "refused_connect": refused_connect, "replies": replies}), flush=True)
sys.stdin.readline()  # hold every connection until told
"""


@pytest.fixture
def daemon_with_default_descriptors(tmp_path):
    """The demo site, barrierd started under the default 1,024 descriptors, its socket open to every local user
    (so that a user outside every role can reach it, as a member of the socket's group would)."""
    tmp_path.chmod(0o711)
    procs = Processes(tmp=tmp_path, site=site_copy(tmp_path))
    procs.start_sim()
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (DAEMON_DESCRIPTORS, limits[1]))
    try:
        procs.start_daemon()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, limits)
    procs.socket.chmod(0o666)
    yield procs
    procs.close()


def hog(procs: Processes, count: int, mode: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOG, str(count), mode], cwd=procs.tmp, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def plc_comms(procs: Processes) -> dict[str, str]:
    return {p["name"]: p["comms"] for p in procs.status()["plcs"]}


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_a_caller_with_no_role_holding_1100_connections_starves_neither_root_nor_the_plcs(
        daemon_with_default_descriptors):
    procs = daemon_with_default_descriptors
    wait_until(lambda: set(plc_comms(procs).values()) == {"ok"}, 10, "every PLC ok before")
    idle_descriptors = descriptors(procs.daemon.pid)
    hogger = hog(procs, 1100, "hold")
    try:
        summary = json.loads(hogger.stdout.readline() or "null")
        assert summary is not None, hogger.stderr.read()
        started = time.monotonic()
        code, out, err = procs.ctl("status", "--json")
        answered_s = time.monotonic() - started
        assert code == 0, err
        assert {p["name"]: p["comms"] for p in json.loads(out)["plcs"]} == dict.fromkeys(
            ["plc-lane-1", "plc-lane-2", "plc-bay"], "ok")
        assert answered_s < 5.0
        turned_away = summary["replies"]
        assert summary["connected"] + summary["refused_connect"] == 1100
        assert turned_away.get("(open)") == 16, turned_away
        too_many = '{"exit": 1, "outcome": "error", "message": "too many connections from uid 65534 (at most 16)", ' \
                   '"data": null}'
        assert summary["connected"] >= 1000 and turned_away.get(too_many) == summary["connected"] - 16, turned_away

        held = descriptors(procs.daemon.pid)
        assert held <= idle_descriptors + 16 + 2, (idle_descriptors, held)
        assert procs.ctl("close", "gate-1")[0] == 0, "root can still command"
        # the PLC links went on reconnecting normally: no EMFILE anywhere
        log = procs.daemon_log()
        assert "Too many open files" not in log and "out of system resource" not in log
        assert log.count("control_connections_turned_away") <= 3, "turned-away connections are logged as a count"
    finally:
        hogger.communicate("go\n", timeout=30)
    wait_until(lambda: descriptors(procs.daemon.pid) <= idle_descriptors + 2, 10, "the connections released")


def test_connections_trickling_a_byte_a_second_are_answered_and_closed_at_the_read_deadline(
        daemon_with_default_descriptors):
    procs = daemon_with_default_descriptors
    trickler = hog(procs, 5, "trickle")
    out, err = trickler.communicate(timeout=60)
    closed_after = json.loads(out)["closed_after"]
    assert len(closed_after) == 5, (out, err)
    for seconds, reply in closed_after.values():
        assert 4.0 <= seconds <= 7.0, closed_after  # the 5 s read deadline, give or take a tick of this client
        assert json.loads(reply)["message"] == "request not complete within 5 s of its first byte; closing"
    assert procs.ctl("status")[0] == 0
