"""A Modbus client that is not pymodbus reads the running sim-plc: a second opinion on the wire format."""

from __future__ import annotations

import re

import pytest
from pyModbusTCP.client import ModbusClient

from hal.profile import PROFILE_MAGIC, HeaderInput
from tests.e2e.harness import Processes, site_copy
from tests.support import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def sim_only(tmp_path):
    procs = Processes(tmp=tmp_path, site=site_copy(tmp_path))
    procs.start_sim()
    yield procs
    procs.close()


def test_pymodbustcp_reads_magic_and_a_changing_heartbeat(sim_only):
    port = int(re.search(r"(?m)^port = (\d+)$", sim_only.site.read_text()).group(1))
    client = ModbusClient(host="127.0.0.1", port=port, unit_id=1, timeout=2.0, auto_open=True)
    try:
        header = client.read_input_registers(0, 8)
        assert header is not None, f"no reply: {client.last_error_as_txt}"
        assert header[HeaderInput.PROFILE_MAGIC] == PROFILE_MAGIC == 0x4250
        first = header[HeaderInput.PLC_HEARTBEAT]
        wait_until(
            lambda: (client.read_input_registers(HeaderInput.PLC_HEARTBEAT, 1) or [first])[0] != first,
            2.0,
            "PLC_HEARTBEAT changes",
        )
        assert client.read_holding_registers(5, 1) is None, "HR 5 is not in the profile: exception expected"
        assert client.last_except == 0x02
    finally:
        client.close()
