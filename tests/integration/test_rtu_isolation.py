"""Per-unit isolation on a real paced line: one silent unit of three leaves the others' poll rate within 10 %.

The line is `sim-plc vline` at 115200 baud in its own process; sim-plc's slaves and hal.Bus with an
RtuTransport run here. Poll rate = GOOD PlcReadings per unit over a fixed window.
"""

from __future__ import annotations

import asyncio

import pytest

from hal.bus import UNIT_RETRY_MAX_S
from hal.unit import Quality
from sim_plc.server import SimSite
from sim_plc.vline import LineProcess
from tests.integration.rtu_support import BUS, Readings, line_site, running_bus
from tests.support import async_wait_until

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(90)]

BAUD = 115200
POLL_S = 0.1
WINDOW_S = 8.0  # long enough that a half-second stall of a busy test machine stays under the 10 %
UNITS = ["plc-1", "plc-2", "plc-3"]


async def test_a_silent_unit_costs_the_others_less_than_ten_percent_of_their_poll_rate(tmp_path):
    master, slaves = tmp_path / "master", tmp_path / "slaves"
    site = line_site(tmp_path, master, BAUD)
    readings = Readings()
    loop = asyncio.get_running_loop()
    with LineProcess(master, slaves, BAUD):
        async with SimSite(site, serial={BUS: str(slaves)}) as sim:
            async with running_bus(site, readings, UNITS, poll_s=POLL_S):
                await async_wait_until(lambda: readings.is_good(*UNITS), 10, "all three units good")
                t0 = loop.time()
                await asyncio.sleep(WINDOW_S)
                present = {u: readings.good(u, t0) for u in UNITS}

                sim.inject("plc-3", "comms_silence")
                await async_wait_until(
                    lambda: f"retried every {UNIT_RETRY_MAX_S:g} s" in (readings.latest("plc-3").reason or ""),
                    15, "plc-3 lost and retried at the longest back-off",
                )
                t1 = loop.time()
                await asyncio.sleep(WINDOW_S)
                absent = {u: readings.good(u, t1) for u in UNITS}
                silent = readings.of("plc-3", t1)
    rates = {u: (present[u] / WINDOW_S, absent[u] / WINDOW_S) for u in UNITS}
    print(f"\npolls/s per unit (all present, plc-3 silent): {rates}")
    for unit in ("plc-1", "plc-2"):
        assert abs(absent[unit] - present[unit]) <= 0.1 * present[unit], rates
    assert present["plc-3"] > 0 and absent["plc-3"] == 0
    assert silent and all(r.quality is Quality.INVALID and r.comms_lost for r in silent)
    assert len(silent) >= 0.8 * WINDOW_S / POLL_S, "readings for the silent unit go on at the poll rate"
