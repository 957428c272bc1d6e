"""End to end: a second barrierd on the same socket or state directory exits 2 naming the first, and the first goes on."""

from __future__ import annotations

import subprocess
from collections import defaultdict

import pytest

from hal.profile import HeaderHolding
from tests.e2e.harness import BIN
from tests.support import wait_until

pytestmark = pytest.mark.e2e



def second_barrierd(procs, socket_path, state_dir) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "barrierd"), "--config", str(procs.site), "--socket", str(socket_path),
         "--state-dir", str(state_dir)],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )


def header_writes(procs, register: HeaderHolding) -> dict[str, list[int]]:
    by_plc = defaultdict(list)
    for write in procs.writes():
        if write["fc"] == 6 and write["address"] == register:
            by_plc[write["plc"]].append(write["values"][0])
    return by_plc


def assert_first_daemon_untouched(procs) -> None:
    assert procs.daemon.poll() is None
    assert procs.socket.is_socket()
    assert procs.status()["devices"], "the first barrierd still answers status"


def test_a_second_daemon_on_the_same_socket_and_state_exits_2_naming_the_first(site_processes):
    procs = site_processes
    wait_until(lambda: len(header_writes(procs, HeaderHolding.WATCHDOG_TIMEOUT_MS)) == 3, 15, "every PLC armed")
    armed_before = header_writes(procs, HeaderHolding.WATCHDOG_TIMEOUT_MS)

    second = second_barrierd(procs, procs.socket, procs.tmp / "state")

    assert second.returncode == 2, second.stderr
    assert f"PID {procs.daemon.pid}" in second.stderr
    assert str(procs.tmp / "state" / "barrierd.lock") in second.stderr and "nothing started" in second.stderr
    assert "bus_connected" not in second.stdout and "watchdog_armed" not in second.stdout
    assert_first_daemon_untouched(procs)
    # one supervisor per PLC: no second watchdog arm, and each PLC's heartbeats count up by one from
    # a single writer (a second one would read the held value and repeat the first one's next)
    count_now = {plc: len(values) for plc, values in header_writes(procs, HeaderHolding.SUPERVISOR_HEARTBEAT).items()}
    wait_until(lambda: all(len(header_writes(procs, HeaderHolding.SUPERVISOR_HEARTBEAT)[plc]) >= n + 3
                           for plc, n in count_now.items()), 15, "three more heartbeats to every PLC")
    assert header_writes(procs, HeaderHolding.WATCHDOG_TIMEOUT_MS) == armed_before
    for plc, values in header_writes(procs, HeaderHolding.SUPERVISOR_HEARTBEAT).items():
        assert all((b - a) & 0xFFFF == 1 for a, b in zip(values, values[1:])), (plc, values)
    code, out, _ = procs.ctl("events", "--json", "--limit", "1000")
    assert code == 0 and out.count("barrierd started") == 1


def test_a_second_daemon_on_the_same_state_directory_with_another_socket_exits_2(site_processes):
    procs = site_processes
    other_socket = procs.tmp / "other" / "barrierd.sock"

    second = second_barrierd(procs, other_socket, procs.tmp / "state")

    assert second.returncode == 2, second.stderr
    assert f"PID {procs.daemon.pid}" in second.stderr and "state directory" in second.stderr
    assert not other_socket.exists()
    assert_first_daemon_untouched(procs)


def test_a_second_daemon_on_the_same_socket_with_another_state_directory_exits_2(site_processes):
    procs = site_processes
    other_state = procs.tmp / "other-state"

    second = second_barrierd(procs, procs.socket, other_state)

    assert second.returncode == 2, second.stderr
    assert f"PID {procs.daemon.pid}" in second.stderr and f"socket {procs.socket}" in second.stderr
    assert not (other_state / "events.sqlite").exists()
    assert_first_daemon_untouched(procs)
