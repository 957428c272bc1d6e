"""End to end: barrierd on a plain Modbus TCP site (no [mqtt], [centre] or [panel], no RS-485 line) loads none
of the heavy modules only those features need, from its start through polling to its stop; pydantic, which
validates the site file, is imported only by the child barrierd forks for that."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import Processes, site_copy
from tests.support import DEMO_SITE, wait_until

pytestmark = pytest.mark.e2e

# a module of each heavy package and what needs it: barrierd imports it only when its site file asks for that
# (a bare `rich` line is structlog's attempt, refused: structlog then imports no part of rich)
UNUSED_ON_A_PLAIN_TCP_SITE = {
    "aiohttp.web": "[panel]",
    "pamela": "[panel]",
    "aiomqtt.client": "[mqtt]",
    "paho.mqtt.client": "[mqtt]",
    "centre.protocol": "[centre]",
    "cryptography.hazmat": "[centre]",
    "pymodbus.client": "an RS-485 line",
    "serial.serialutil": "an RS-485 line",
    "rich.console": "barrierctl only (structlog imports it whenever installed)",
    "pygments.lexer": "barrierctl only (through rich)",
}
NEVER_IN_BARRIERD = ("pydantic", "pydantic_core", "pydantic.main", "config.loader")  # the validating child's
CHILD_STDERR_APART = Path(__file__).with_name("child_stderr_apart.py")
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$", re.MULTILINE)  # python -X importtime


def test_a_plain_tcp_site_loads_no_mqtt_panel_centre_rtu_or_rich_module_and_only_its_child_pydantic(tmp_path):
    text = DEMO_SITE.read_text()
    assert not re.search(r"(?m)^\[+(mqtt|centre|panel|bus)\]+", text), "the demo site is a plain TCP site"
    child_log = tmp_path / "barrierd-child.log"
    procs = Processes(tmp=tmp_path, site=site_copy(tmp_path),
                      run_daemon_as=[sys.executable, "-X", "importtime", str(CHILD_STDERR_APART), str(child_log)])
    try:
        procs.start_sim()
        procs.start_daemon()
        wait_until(lambda: all(p["comms"] == "ok" for p in procs.status()["plcs"]), 15, "every PLC polled")
        assert procs.stop_daemon() == 0
        imported = set(IMPORT_LINE.findall(procs.daemon_log()))
        in_child = set(IMPORT_LINE.findall(child_log.read_text())) if child_log.exists() else set()
    finally:
        procs.close()

    assert {"controller.site", "config.schema", "hal.tcp", "structlog", "uvloop"} <= imported, "the import log is read"
    assert [name for name in NEVER_IN_BARRIERD if name in imported] == [], "barrierd itself imported pydantic"
    assert set(NEVER_IN_BARRIERD) <= in_child, "the child's import log is read: it validated the site"
    loaded = {name: why for name, why in UNUSED_ON_A_PLAIN_TCP_SITE.items() if name in imported}
    assert loaded == {}, f"barrierd loaded modules its site does not use: {loaded}"
