"""End to end: `make demo`'s program starts sim-plc and barrierd on a site, shows it, and Ctrl-C stops both cleanly."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys

import pytest

from tests.e2e.harness import site_copy
from tests.support import wait_until

pytestmark = pytest.mark.e2e


def test_the_demo_runs_the_site_and_ctrl_c_stops_both_processes_with_exit_0(tmp_path):
    site = site_copy(tmp_path)
    demo = subprocess.Popen(
        [sys.executable, "-m", "controller.demo", str(site)], cwd=tmp_path,
        env={**os.environ, "BARRIERD_SOCKET": str(tmp_path / "barrierd.sock"), "COLUMNS": "200"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
    )
    seen: list[str] = []

    def printed(text: str) -> bool:
        assert demo.stdout is not None
        if select.select([demo.stdout], [], [], 0.2)[0]:
            seen.append(demo.stdout.readline())
        return any(text in line for line in seen)

    try:
        wait_until(lambda: printed("running."), 30, "the demo running")
        assert (tmp_path / "demo-run" / "demo" / "state" / "events.sqlite").exists()
        demo.send_signal(signal.SIGINT)  # what Ctrl-C does
        remaining, _ = demo.communicate(timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    # the live table's last frame may end without a newline: find the summary anywhere in the output
    final = re.findall(r'\{"sim-plc": [^{}]*\}', "".join(seen) + remaining)
    assert final and json.loads(final[-1]) == {"sim-plc": 0, "barrierd": 0}, (seen, remaining)
    assert demo.returncode == 0
