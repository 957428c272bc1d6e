"""Polls per second of the real hal.Bus over Modbus RTU on the paced virtual line, against the theoretical cycle.

Each baud rate gets its own `sim-plc vline` and `sim-plc serve --serial` processes; the Bus runs in
this process with a poll period of 0 (as fast as the line allows), for one unit with one slot:
one FC4 read of header + slot = 28 registers, an 8-byte request and a 61-byte reply.
"""

from __future__ import annotations

import asyncio
import json
import select
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.procs import terminate
from hal import event_loop
from hal.bus import Bus
from hal.profile import Kind, input_block_size
from hal.rtu import REQUEST_BYTES_READ, LineTiming, RtuTransport, read_reply_bytes
from hal.unit import PlcReading, Quality, UnitSpec
from sim_plc.vline import LineProcess

BAUDS = (19200, 115200)
TIMEOUT_S = 0.1
READY_S = 15.0

SITE = """
[site]
name = "bench-rtu"

[[bus]]
name = "line"
port = "{master}"
baudrate = {baud}
timeout_ms = {timeout_ms}

[[plc]]
name = "plc-1"
bus = "line"
unit = 1

[[device]]
name = "gate-1"
kind = "folding_gate"
plc = "plc-1"
slot = 0
"""


def rtu_poll_rate(seconds: float, bauds: tuple[int, ...] = BAUDS) -> list[dict[str, Any]]:
    """One row per baud rate: polls/s achieved, the theoretical maximum and their ratio."""
    return [event_loop.run(_measure(baud, seconds)) for baud in bauds]


async def _measure(baud: int, seconds: float) -> dict[str, Any]:
    registers = input_block_size(1)
    timing = LineTiming(baud)
    cycle_s = timing.cycle_s(REQUEST_BYTES_READ, read_reply_bytes(registers))
    with tempfile.TemporaryDirectory(prefix="bench-rtu-") as tmp:
        work = Path(tmp)
        master, slave = work / "master", work / "slave"
        site = work / "site.toml"
        site.write_text(SITE.format(master=master, baud=baud, timeout_ms=int(TIMEOUT_S * 1000)))
        with LineProcess(master, slave, baud), _sim(site, slave, work):
            polls, failed = await _poll(master, baud, seconds)
    achieved = polls / seconds
    theoretical = 1 / cycle_s
    return {
        "baud": baud,
        "registers": registers,
        "request_bytes": REQUEST_BYTES_READ,
        "reply_bytes": read_reply_bytes(registers),
        "theoretical_cycle_ms": round(cycle_s * 1000, 2),
        "theoretical_polls_per_s": round(theoretical, 1),
        "polls_per_s": round(achieved, 1),
        "pct_of_theoretical": round(100 * achieved / theoretical, 1),
        "polls": polls,
        "failed_polls": failed,
    }


async def _poll(port: Path, baud: int, seconds: float) -> tuple[int, int]:
    """Run a Bus on `port`; count GOOD and other readings over `seconds` after the first GOOD one."""
    loop = asyncio.get_running_loop()
    counting = asyncio.Event()
    counts = {"good": 0, "bad": 0}

    async def on_reading(reading: PlcReading) -> None:
        if not counting.is_set():
            if reading.quality is Quality.GOOD:
                counting.set()
            return
        counts["good" if reading.quality is Quality.GOOD else "bad"] += 1

    transport = RtuTransport("line", str(port), baudrate=baud, timeout_s=TIMEOUT_S)
    spec = UnitSpec(name="plc-1", unit=1, slot_kinds=(Kind.FOLDING_GATE,), watchdog_ms=3000)
    bus = Bus(transport, [spec], poll_s=0.0, timeout_s=TIMEOUT_S, comms_lost_polls=3, frozen_polls=10,
              on_reading=on_reading)
    task = loop.create_task(bus.run(), name="bench-bus")
    try:
        await asyncio.wait_for(counting.wait(), READY_S)
        await asyncio.sleep(seconds)
        return counts["good"], counts["bad"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class _sim:
    """`sim-plc serve --serial line=SLAVE` as a child process, for the length of a with block."""

    def __init__(self, site: Path, slave: Path, work: Path) -> None:
        self.argv = [sys.executable, "-m", "sim_plc.cli", "serve", "--config", str(site),
                     "--serial", f"line={slave}", "--control", str(work / "sim-plc.sock"), "--log-level", "WARNING"]
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> _sim:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], READY_S)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("{") or json.loads(line).get("event") != "sim_plc_ready":
            self.__exit__()
            raise RuntimeError(f"sim-plc did not start: {line!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            terminate(self.proc)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None
