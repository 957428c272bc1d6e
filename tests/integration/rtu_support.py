"""Shared by the RTU integration tests: a site with PLCs on one RS-485 bus, and a Bus on a line."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from config.loader import load_site
from config.schema import SiteConfig
from hal.bus import Bus
from hal.rtu import RtuTransport
from hal.unit import PlcReading, Quality, UnitSpec

BUS = "rs485-test"
TIMEOUT_S = 0.1

# PLC name → (unit id, device kinds in slot order); three PLCs with different programs, so data
# from the wrong unit can never pass the identity check unnoticed.
PLCS = {
    "plc-1": (1, ["folding_gate", "road_blocker"]),
    "plc-2": (2, ["folding_gate"]),
    "plc-3": (3, ["boom_barrier", "traffic_signal", "road_blocker"]),
}


def line_site(tmp: Path, port: Path, baud: int, plcs: dict[str, tuple[int, list[str]]] = PLCS) -> SiteConfig:
    """A site file in `tmp` with every PLC of `plcs` on one bus whose master end is `port`."""
    parts = [
        f'[site]\nname = "rtu-test"\npoll_ms = 100\n\n[[bus]]\nname = "{BUS}"\nport = "{port}"\n'
        f"baudrate = {baud}\ntimeout_ms = {int(TIMEOUT_S * 1000)}\n"
    ]
    for name, (unit, kinds) in plcs.items():
        parts.append(f'\n[[plc]]\nname = "{name}"\nbus = "{BUS}"\nunit = {unit}\n')
        for slot, kind in enumerate(kinds):
            parts.append(f'\n[[device]]\nname = "{name}-d{slot}"\nkind = "{kind}"\nplc = "{name}"\nslot = {slot}\n')
    path = tmp / "rtu-site.toml"
    path.write_text("".join(parts))
    return load_site(path)


def unit_specs(site: SiteConfig, names: list[str] | None = None) -> list[UnitSpec]:
    return [
        UnitSpec(name=p.name, unit=p.unit, slot_kinds=tuple(site.slot_kinds(p.name)), watchdog_ms=p.watchdog_ms)
        for p in site.plc
        if names is None or p.name in names
    ]


class Readings:
    """on_reading handler keeping (loop time, reading)."""

    def __init__(self) -> None:
        self.items: list[tuple[float, PlcReading]] = []

    async def __call__(self, reading: PlcReading) -> None:
        self.items.append((asyncio.get_running_loop().time(), reading))

    def of(self, plc: str, since: float = 0.0) -> list[PlcReading]:
        return [r for t, r in self.items if r.plc == plc and t >= since]

    def good(self, plc: str, since: float = 0.0) -> int:
        return sum(1 for r in self.of(plc, since) if r.quality is Quality.GOOD)

    def latest(self, plc: str) -> PlcReading | None:
        found = self.of(plc)
        return found[-1] if found else None

    def is_good(self, *plcs: str) -> bool:
        return all((r := self.latest(p)) is not None and r.quality is Quality.GOOD for p in plcs)


@contextlib.asynccontextmanager
async def running_bus(site: SiteConfig, readings: Readings, names: list[str] | None = None,
                      poll_s: float = 0.1) -> AsyncIterator[Bus]:
    """A Bus over an RtuTransport on the site's bus port, polling the named PLCs, for the block."""
    line = site.bus[0]
    transport = RtuTransport(line.name, line.port, baudrate=line.baudrate, timeout_s=TIMEOUT_S)
    bus = Bus(transport, unit_specs(site, names), poll_s=poll_s, timeout_s=TIMEOUT_S, comms_lost_polls=3,
              frozen_polls=10, on_reading=readings)
    task = asyncio.create_task(bus.run(), name="rtu-bus-under-test")
    try:
        yield bus
    finally:
        died = task.done()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert not died, f"the bus task ended on its own: {task.exception() if died else ''}"
