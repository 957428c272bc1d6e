"""Serve a site's simulated PLCs over Modbus TCP or RTU on serial ports, each with its own scan loop (see SimSite)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from config.schema import PlcSection, SiteConfig
from hal.kinds import KINDS
from sim_plc.clock import Clock, SystemClock
from sim_plc.errors import FaultError
from sim_plc.plant import SimPlc
from sim_plc.serial_server import SerialEndpoint
from sim_plc.tcp_server import TcpEndpoint
from sim_plc.writelog import WriteLog

log = logging.getLogger(__name__)


async def scan_loop(plc: SimPlc, period_s: float) -> None:
    """Call plc.scan() every period on the event loop's clock, without drift."""
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    try:
        while True:
            plc.scan()
            next_at += period_s
            delay = next_at - loop.time()
            if delay < -10 * period_s:  # far behind (suspended process): start afresh
                next_at = loop.time()
            await asyncio.sleep(max(0.0, delay))
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("scan loop of PLC %s died", plc.name)
        raise


class SimSite:
    """Every PLC of a site, simulated and served: over Modbus TCP, or RTU for the PLCs of a [[bus]].

    port_override maps PLC name → port (0 = ephemeral) or is one port for all; host_override replaces
    every PLC's host. serial maps a bus name → the serial port to serve its PLCs on (the other end of
    the line barrierd opens); the PLCs of a bus not in it are skipped. write_log is a JSON-lines file
    path (see WriteLog); the clock drives physics.
    """

    def __init__(
        self,
        site: SiteConfig,
        *,
        plc_names: Iterable[str] | None = None,
        host_override: str | None = None,
        port_override: Mapping[str, int] | int | None = None,
        write_log: Path | str | None = None,
        serial: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        scan_ms: int = 10,
        travel_scale: float = 1.0,
    ) -> None:
        known = [p.name for p in site.plc]
        names = list(plc_names) if plc_names is not None else known
        if unknown := [n for n in names if n not in known]:
            raise ValueError(f"unknown PLC {', '.join(unknown)}; the site has: {', '.join(known)}")
        if isinstance(port_override, Mapping) and (stray := set(port_override) - set(names)):
            raise ValueError(f"port_override names PLCs that are not served: {', '.join(sorted(stray))}")
        buses = [b.name for b in site.bus]
        if stray := set(serial or {}) - set(buses):
            raise ValueError(f"no bus named {', '.join(sorted(stray))}; the site has: {', '.join(buses) or 'none'}")
        self.site = site
        self.clock: Clock = clock or SystemClock()
        self.scan_ms = scan_ms
        self.travel_scale = travel_scale
        self.write_log = WriteLog(write_log)
        self.plcs: dict[str, SimPlc] = {}
        self.skipped: dict[str, str] = {}
        self._endpoints: dict[str, TcpEndpoint] = {}
        self._serial = dict(serial or {})
        self._lines: dict[str, SerialEndpoint] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._host_override = host_override
        self._port_override = port_override
        self._selected = [site.plc_named(n) for n in names]

    def _port_for(self, plc: PlcSection) -> int:
        if isinstance(self._port_override, int):
            return self._port_override
        if self._port_override is not None and plc.name in self._port_override:
            return self._port_override[plc.name]
        assert plc.port is not None
        return plc.port

    def _travel(self, plc: str) -> dict[int, tuple[float, float]]:
        """Each leaf slot's physics from its kind (hal/kinds.py): nominal and EFO travel times, times the scale."""
        specs = {d.slot: KINDS[d.kind] for d in self.site.devices_of(plc)}
        scale = self.travel_scale
        return {slot: (spec.sim_travel_s * scale, spec.sim_efo_travel_s * scale or None)
                for slot, spec in specs.items() if spec.behaviour == "leaf"}

    async def start(self) -> None:
        """Create the PLCs, listen on every TCP endpoint and start the scan loops."""
        try:
            await self._start_lines()
            for section in self._selected:
                kinds = self.site.slot_kinds(section.name)
                if section.bus is not None:
                    continue
                if not kinds:
                    self._skip(section.name, "has no devices")
                    continue
                plc = SimPlc(section.name, kinds, self.clock, scan_ms=self.scan_ms, unit=section.unit,
                             travel=self._travel(section.name))
                host = self._host_override or section.host
                assert host is not None
                endpoint = TcpEndpoint(plc, host, self._port_for(section), self.write_log)
                self._endpoints[section.name] = endpoint
                self.plcs[section.name] = plc
                await endpoint.start()
                self._tasks.append(asyncio.create_task(scan_loop(plc, self.scan_ms / 1000), name=f"scan-{plc.name}"))
        except BaseException:
            await self.stop()
            raise

    async def _start_lines(self) -> None:
        """One SerialEndpoint per bus given a serial port, with every selected PLC of that bus on it."""
        for bus in self.site.bus:
            sections = [s for s in self._selected if s.bus == bus.name]
            if not sections:
                continue
            path = self._serial.get(bus.name)
            if path is None:
                for section in sections:
                    reason = f"on serial bus {bus.name!r}: no serial port given (--serial {bus.name}=PATH)"
                    self._skip(section.name, reason)
                continue
            plcs = [
                SimPlc(s.name, self.site.slot_kinds(s.name), self.clock, scan_ms=self.scan_ms, unit=s.unit,
                       travel=self._travel(s.name))
                for s in sections
            ]
            line = SerialEndpoint(
                bus.name, plcs, path, self.write_log, baudrate=bus.baudrate, parity=bus.parity, stopbits=bus.stopbits
            )
            await line.start()
            self._lines[bus.name] = line
            for plc in plcs:
                self.plcs[plc.name] = plc
                self._tasks.append(asyncio.create_task(scan_loop(plc, self.scan_ms / 1000), name=f"scan-{plc.name}"))

    def _skip(self, name: str, reason: str) -> None:
        self.skipped[name] = reason
        log.warning("PLC %s skipped: %s", name, reason)

    async def stop(self) -> None:
        """Stop scan loops and servers (closing client connections); close the write log."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for endpoint in self._endpoints.values():
            if endpoint.port is not None:
                with contextlib.suppress(Exception):
                    await endpoint.stop()
        self._endpoints.clear()
        for line in self._lines.values():
            with contextlib.suppress(Exception):
                await line.stop()
        self._lines.clear()
        self.write_log.close()

    async def __aenter__(self) -> SimSite:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- queries and fault injection ------------------------------------------------------------
    def port_of(self, name: str) -> int:
        endpoint = self._endpoints.get(name)
        if endpoint is None or endpoint.port is None:
            raise KeyError(f"PLC {name!r} is not being served")
        return endpoint.port

    @property
    def ports(self) -> dict[str, int]:
        """TCP port of every PLC served over Modbus TCP."""
        return {name: self.port_of(name) for name in self._endpoints}

    @property
    def serial_ports(self) -> dict[str, str]:
        """Serial port of every bus served over Modbus RTU."""
        return {bus: line.path for bus, line in self._lines.items()}

    def line(self, bus: str) -> SerialEndpoint:
        return self._lines[bus]

    @property
    def writes(self) -> list[dict[str, Any]]:
        return self.write_log.entries

    def plc(self, name: str) -> SimPlc:
        try:
            return self.plcs[name]
        except KeyError:
            raise FaultError(f"unknown PLC {name!r}; served PLCs: {', '.join(self.plcs)}") from None

    def inject(
        self, plc: str, fault: str, slot: int | None = None, active: bool = True, code: int | None = None
    ) -> None:
        """Switch a fault on one PLC (see sim_plc.faults); FaultError names an unknown PLC/fault/slot."""
        self.plc(plc).inject(fault, slot, active, code)

    def active_faults(self) -> list[dict[str, Any]]:
        return [fault for plc in self.plcs.values() for fault in plc.active_faults()]
