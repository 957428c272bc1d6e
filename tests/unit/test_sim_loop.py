"""sim-plc's event loop: uvloop unless a serial line needs precise timers, and one scan per period on its clock."""

from __future__ import annotations

import asyncio

import pytest

from sim_plc import cli
from sim_plc.server import scan_loop
from sim_plc.testing import lane_rig


def scan_times(plc, loop: asyncio.AbstractEventLoop) -> list[float]:
    """Record loop.time() at every scan of `plc`."""
    times: list[float] = []
    scan = plc.scan

    def timed_scan() -> None:
        times.append(loop.time())
        scan()

    plc.scan = timed_scan
    return times


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_one_scan_every_period_without_drift() -> None:
    loop = asyncio.get_running_loop()
    rig = lane_rig()
    times = scan_times(rig.plc, loop)
    start = loop.time()
    task = asyncio.create_task(scan_loop(rig.plc, 0.01))
    await asyncio.sleep(1.005)
    task.cancel()
    assert len(times) == 101
    assert [round(t - start, 6) for t in times] == [round(0.01 * n, 6) for n in range(101)]


@pytest.mark.parametrize(("extra", "precise"), [([], False), (["--serial", "rs485-a=/dev/null"], True)])
def test_sim_plc_runs_on_uvloop_unless_it_serves_a_serial_line(monkeypatch, extra: list[str], precise: bool) -> None:
    chosen: list[bool] = []

    def run(main, *, precise: bool = True) -> int:
        main.close()  # never started: only the choice of loop is under test
        chosen.append(precise)
        return 0

    monkeypatch.setattr(cli.event_loop, "run", run)
    assert cli.main(["serve", "--config", "site.toml", *extra]) == 0
    assert chosen == [precise]
