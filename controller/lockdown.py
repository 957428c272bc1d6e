"""Lockdown: latch first, then EFO every blocker and close every gate, boom and signal in parallel, then confirm."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from controller.actions import ActionFailed, command_device
from controller.devices import Device
from controller.devices.base import DeviceNotReached
from controller.interlocks import Refused

if TYPE_CHECKING:
    from controller.site import Site

log = structlog.get_logger("controller.lockdown")
CONFIRM_MARGIN_S = 1.0


@dataclass(frozen=True)
class Latch:
    """A site lockdown in force, and who set it and why."""

    by: str
    reason: str
    since: float


@dataclass(frozen=True)
class LockdownResult:
    secured_at: dict[str, float]  # device -> seconds after the command when confirmed secured
    failed: dict[str, str]  # device -> why it is not secured

    @property
    def all_secured(self) -> bool:
        return not self.failed

    def describe(self, scope: str) -> str:
        if self.all_secured:
            last = max(self.secured_at.values(), default=0.0)
            return f"lockdown of {scope}: all {len(self.secured_at)} devices secured at t = {last:.2f} s"
        failed = "; ".join(f"{name}: {why}" for name, why in self.failed.items())
        return f"lockdown of {scope} is latched, but NOT all devices are secured: {failed}"


async def _secure_one(site: Site, device: Device, by: str, started: float) -> float:
    await command_device(site, device, device.LOCKDOWN_VERB, by)
    await device.wait_state(frozenset({device.SECURED_STATE}),
                            device.travel_limit_s + CONFIRM_MARGIN_S)
    return asyncio.get_running_loop().time() - started


async def lock_down(site: Site, devices: list[Device], by: str) -> LockdownResult:
    """Command every device of the scope at once (one task each, so every PLC is written in parallel)."""
    started = asyncio.get_running_loop().time()
    results = await asyncio.gather(*(_secure_one(site, d, by, started) for d in devices), return_exceptions=True)
    secured, failed = {}, {}
    for device, result in zip(devices, results, strict=True):
        if isinstance(result, float):
            secured[device.name] = result
        elif isinstance(result, (Refused, ActionFailed, DeviceNotReached)):
            failed[device.name] = str(result)
        else:
            raise result
    log.info("lockdown_result", by=by, secured=secured, failed=failed)
    return LockdownResult(secured_at=secured, failed=failed)


def new_latch(by: str, reason: str) -> Latch:
    return Latch(by=by, reason=reason, since=time.time())
