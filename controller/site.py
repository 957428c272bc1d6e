"""The supervised site: devices built from config, one bus per connection, readings routed to device machines."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from config.schema import SiteConfig
from controller.devices import DEVICE_CLASSES, Device, StateChange
from controller.event_store import EventStore
from hal.bus import Bus
from hal.transport import TcpTransport
from hal.unit import PlcReading, Quality, UnitSpec

log = structlog.get_logger("controller.site")


class UnsupportedConfig(Exception):
    """A configuration this version of barrierd cannot run (refused at start, nothing started)."""


@dataclass
class PlcView:
    """What the status shows of one PLC's link."""

    name: str
    comms: str = "invalid"
    reason: str | None = "not read yet"
    watchdog_readback: int | None = None

    def as_dict(self) -> dict:
        return {"name": self.name, "comms": self.comms, "reason": self.reason, "watchdog_ms": self.watchdog_readback}


def comms_word(reading: PlcReading) -> str:
    if reading.quality is Quality.GOOD:
        return "ok"
    if reading.comms_lost:
        return "lost"
    return reading.quality.value


class Site:
    """Everything barrierd supervises; built from a validated SiteConfig."""

    def __init__(self, cfg: SiteConfig, store: EventStore):
        self.cfg = cfg
        self.store = store
        rtu = [p.name for p in cfg.plc if p.bus is not None]
        if rtu:
            raise UnsupportedConfig(f"PLCs on an RS-485 bus are not supported by this version yet: {rtu}")
        self.devices: dict[str, Device] = {
            d.name: DEVICE_CLASSES[d.kind](d, self._record_change) for d in cfg.device
        }
        self.plcs = {p.name: PlcView(p.name) for p in cfg.plc}
        self.buses: dict[str, Bus] = {}
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        """Open one bus per PLC endpoint and start polling; nothing is commanded."""
        site = self.cfg.site
        for plc in self.cfg.plc:
            assert plc.host is not None and plc.port is not None
            spec = UnitSpec(
                name=plc.name,
                unit=plc.unit,
                slot_kinds=tuple(self.cfg.slot_kinds(plc.name)),
                watchdog_ms=plc.watchdog_ms,
            )
            bus = Bus(
                TcpTransport(plc.name, plc.host, plc.port, plc.timeout_ms / 1000),
                [spec],
                poll_s=site.poll_ms / 1000,
                timeout_s=plc.timeout_ms / 1000,
                comms_lost_polls=site.comms_lost_polls,
                frozen_polls=site.frozen_polls,
                on_reading=self._on_reading,
            )
            self.buses[plc.name] = bus
            self._tasks.append(asyncio.create_task(bus.run(), name=f"bus-{plc.name}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def devices_on(self, plc: str) -> list[Device]:
        return [d for d in self.devices.values() if d.plc == plc]

    async def _on_reading(self, reading: PlcReading) -> None:
        view = self.plcs[reading.plc]
        comms = comms_word(reading)
        if comms != view.comms:
            log.info("plc_comms_changed", plc=reading.plc, from_comms=view.comms, to_comms=comms, reason=reading.reason)
            self.store.record_event(
                "plc_comms", reading.plc, f"{reading.plc}: {view.comms} → {comms}", reason=reading.reason
            )
        view.comms = comms
        view.reason = reading.reason
        view.watchdog_readback = reading.watchdog_readback
        for device in self.devices_on(reading.plc):
            slot = reading.snapshot.slots[device.slot] if reading.snapshot is not None else None
            await device.observe(reading.quality, slot, reading.reason)

    async def _record_change(self, change: StateChange) -> None:
        self.store.record_event(
            "state_change",
            change.device,
            f"{change.device}: {change.from_state} → {change.to_state}",
            from_state=change.from_state,
            to_state=change.to_state,
            trigger=change.trigger,
            cause=change.cause,
        )

    def status(self) -> dict:
        return {
            "site": self.cfg.site.name,
            "devices": [d.as_dict() for d in self.devices.values()],
            "plcs": [v.as_dict() for v in self.plcs.values()],
        }
