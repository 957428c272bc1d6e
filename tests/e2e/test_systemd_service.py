"""End to end: barrierd under a stand-in for systemd (a NOTIFY_SOCKET): READY, watchdog pings, STOPPING; the unit file verifies."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess

import pytest

from tests.e2e.harness import BIN, REPO, Processes, site_copy
from tests.support import wait_until

pytestmark = pytest.mark.e2e

UNIT = REPO / "deploy" / "barrierd.service"


def test_barrierd_reports_ready_pings_the_watchdog_and_reports_stopping(tmp_path):
    procs = Processes(tmp=tmp_path, site=site_copy(tmp_path))
    procs.start_sim()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify.sock"))
    listener.settimeout(0.2)
    messages: list[str] = []

    def heard(text: str, times: int = 1) -> bool:
        try:
            messages.append(listener.recv(4096).decode())
        except TimeoutError:
            pass
        return sum(text in m for m in messages) >= times

    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "400000"}
    daemon = subprocess.Popen(
        [str(BIN / "barrierd"), "--config", str(procs.site), "--socket", str(procs.socket),
         "--state-dir", str(tmp_path / "state")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: heard("READY=1"), 15, "READY=1")
        assert procs.ctl("status")[0] == 0, "READY is sent once the control socket answers"
        wait_until(lambda: heard("WATCHDOG=1", times=3), 10, "three watchdog pings")
        daemon.send_signal(signal.SIGTERM)
        wait_until(lambda: heard("STOPPING=1"), 10, "STOPPING=1")
        assert daemon.wait(timeout=15) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        listener.close()
        procs.close()
    ready = next(i for i, m in enumerate(messages) if m.startswith("READY=1"))
    assert "STATUS=supervising 8 devices on 3 PLCs" in messages[ready]
    assert all(m != "WATCHDOG=1" for m in messages[:ready]), "no ping before READY"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_unit_file_verifies_with_systemd(tmp_path):
    unit = tmp_path / "barrierd.service"  # the installed path would not exist here: point at this checkout
    unit.write_text(UNIT.read_text().replace("/opt/barrier-supervisor/.venv/bin/barrierd", str(BIN / "barrierd")))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    text = UNIT.read_text()
    for setting in ("Type=notify", "WatchdogSec=", "NoNewPrivileges=yes", "ProtectSystem=strict",
                    "StateDirectory=barrierd", "RuntimeDirectory=barrierd"):
        assert setting in text
