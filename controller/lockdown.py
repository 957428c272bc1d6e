"""Lockdown, in one place: the latches (site and lane), their persistence and restore, the parallel fan-out
(EFO every blocker, CLOSE / RED the rest, then confirm) and the release."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from controller.actions import ActionFailed
from controller.devices import Device
from controller.devices.base import DeviceNotReached
from controller.interlocks import Refused
from controller.states import LaneMode

if TYPE_CHECKING:
    from controller.event_store import EventStore
    from controller.lanes import Lane

log = structlog.get_logger("controller.lockdown")
CONFIRM_MARGIN_S = 1.0
LANES_FOLLOW_S = 0.05  # a site lockdown's lane modes follow its writes within this, even behind a slow PLC


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


Command = Callable[[Device, str, str], Awaitable[str]]  # device, verb, by -> the PLC's acceptance


class FanOut:
    """Every device of a scope commanded at once: one task each, so every securing write is queued on its bus
    in the same turn of the event loop and every PLC is written in parallel."""

    def __init__(self, command: Command, devices: list[Device], by: str):
        self.started = asyncio.get_running_loop().time()
        self.devices, self.by = devices, by
        self._commands = [asyncio.ensure_future(command(d, d.LOCKDOWN_VERB, by)) for d in devices]

    async def written(self, timeout_s: float | None = None) -> None:
        """Until every PLC has acknowledged its securing writes (or the write failed), or `timeout_s`."""
        if self._commands:
            await asyncio.wait(self._commands, timeout=timeout_s)

    async def result(self) -> LockdownResult:
        """Until every device is confirmed secured or known not to be: the seconds each took, or why not."""
        await self.written()
        confirmed = await asyncio.gather(*(self._confirm(d, c) for d, c in zip(self.devices, self._commands, strict=True)),
                                         return_exceptions=True)
        secured, failed = {}, {}
        for device, outcome in zip(self.devices, confirmed, strict=True):
            if isinstance(outcome, float):
                secured[device.name] = outcome
            elif isinstance(outcome, (Refused, ActionFailed, DeviceNotReached)):
                failed[device.name] = str(outcome)
            else:
                raise outcome
        log.info("lockdown_result", by=self.by, secured=secured, failed=failed)
        return LockdownResult(secured_at=secured, failed=failed)

    async def _confirm(self, device: Device, commanded: asyncio.Future) -> float:
        commanded.result()  # what the command raised, if it did
        await device.wait_state(frozenset({device.SECURED_STATE}), device.travel_limit_s + CONFIRM_MARGIN_S)
        return asyncio.get_running_loop().time() - self.started


def new_latch(by: str, reason: str) -> Latch:
    return Latch(by=by, reason=reason, since=time.time())


SITE_SCOPE = "site"


def lane_scope(lane: str) -> str:
    return f"lockdown:lane:{lane}"


class Lockdown:
    """The site's lockdown latches. A latch is set before anything is written and persisted at once; a
    securing latch holds even when the disk refuses it (`persisted` says so). A lane locked down on its
    own keeps its own latch: it outlives the release of a site lockdown."""

    def __init__(self, store: EventStore, lanes: dict[str, Lane], devices: dict[str, Device], command: Command):
        self._store, self._lanes, self._devices, self._command = store, lanes, devices, command
        self.latch: Latch | None = None  # the whole site
        self.lane_latches: dict[str, Latch] = {}  # lanes locked down on their own

    def restore(self, saved: dict[str, tuple[str, str, str, float]]) -> None:
        """Take the latches saved before a restart (lane modes are restored by the lanes first)."""
        if SITE_SCOPE in saved:
            _, by, reason, since = saved[SITE_SCOPE]
            self.latch = Latch(by=by, reason=reason, since=since)
        for name, lane in self._lanes.items():
            if (entry := saved.get(lane_scope(name))) is not None:
                _, by, reason, since = entry
                self.lane_latches[name] = Latch(by=by, reason=reason, since=since)
                if lane.mode != LaneMode.LOCKDOWN:  # stopped between saving the latch and the lane mode
                    lane.restore(LaneMode.LOCKDOWN, by, reason, since)
            elif lane.mode == LaneMode.LOCKDOWN and self.latch is None:  # saved without its latch: keep it locked
                self._latch_lane(name, Latch(by=lane.by, reason=lane.reason, since=lane.since))

    def locked(self, lane: Lane | None) -> bool:
        """True while a site lockdown, or a lockdown of this lane, is in force."""
        return self.latch is not None or (lane is not None and (lane.mode == LaneMode.LOCKDOWN
                                                                or lane.name in self.lane_latches))

    def _latch_lane(self, lane: str, latch: Latch, durable: bool = True) -> None:
        self.lane_latches[lane] = latch
        self._store.save_mode(lane_scope(lane), "lockdown", latch.by, latch.reason, durable=durable)

    async def engage(self, by: str, reason: str, lane: Lane | None = None) -> tuple[str, LockdownResult]:
        """Latch the site (or one lane), then secure every device of it at once; (scope, result)."""
        # The latch is written to the store before anything moves, and synced to disk once the fan-out's
        # writes are on their way (a securing command never waits for the disk), before the reply.
        if lane is not None:
            lane.cancel_sequence()
            self._latch_lane(lane.name, new_latch(by, reason), durable=False)  # locked() from here on
            fan_out = FanOut(self._command, lane.devices, by)
            if lane.mode != LaneMode.LOCKDOWN:
                await lane.lock(by=by, reason=reason)  # the lane's mode follows (queued behind a shown-mode change)
            result = await fan_out.result()
            self._store.sync()
            return f"lane {lane.name}", result
        self.latch = new_latch(by, reason)  # latched before anything is written: every rule refuses opening now
        self._store.save_mode(SITE_SCOPE, "lockdown", by, reason, durable=False)
        for each in self._lanes.values():
            each.cancel_sequence()
        fan_out = FanOut(self._command, list(self._devices.values()), by)
        self._store.record_event("lockdown", "site", f"site lockdown by {by}", reason=reason)  # before the writes leave
        # The lanes' bookkeeping (a transition, two rows and a log line each) would hold the loop between the writes:
        # it waits until every PLC has answered, or LANES_FOLLOW_S at most (a slow PLC's acknowledgement).
        await fan_out.written(timeout_s=LANES_FOLLOW_S)
        for each in self._lanes.values():
            if each.mode != LaneMode.LOCKDOWN:
                await each.lock(by=by, reason=reason)
        result = await fan_out.result()
        self._store.sync()
        return "the site", result

    async def release(self, by: str, reason: str, lane: Lane | None = None) -> str:
        """End a lockdown; nothing moves: each lane released shows the mode its devices report."""
        if lane is not None:
            if self.latch is not None:
                raise Refused("site_lockdown", "the whole site is in lockdown; release the site, not one lane")
            if lane.mode != LaneMode.LOCKDOWN:
                raise Refused("not_in_lockdown", f"lane {lane.name} is {lane.mode}, not in lockdown")
            self.lane_latches.pop(lane.name, None)
            self._store.clear_mode(lane_scope(lane.name))
            lanes = [lane]
        else:
            if self.latch is None:
                raise Refused("not_in_lockdown", "the site is not in lockdown")
            self.latch = None
            self._store.clear_mode(SITE_SCOPE)
            self._store.record_event("lockdown", "site", f"site lockdown released by {by}", reason=reason)
            lanes = [x for x in self._lanes.values() if x.mode == LaneMode.LOCKDOWN and x.name not in self.lane_latches]
        for each in lanes:
            await each.settle(by=by, reason=f"lockdown released: {reason}")
        still = [f"{name} (its own lockdown by {latch.by})" for name, latch in self.lane_latches.items()]
        kept = f"; still in lockdown: {', '.join(still)}" if still and lane is None else ""
        return "lockdown released; nothing moved: " + ", ".join(f"{x.name} {x.mode}" for x in lanes) + kept

    def as_dict(self) -> dict | None:
        """The site latch for the status, and whether it is on disk."""
        if self.latch is None:
            return None
        return {**latch_dict(self.latch), "persisted": SITE_SCOPE not in self._store.unsaved_scopes}

    def lane_latch(self, lane: str) -> dict | None:
        return latch_dict(self.lane_latches.get(lane))

    def lane_persisted(self, lane: str) -> bool:
        return lane_scope(lane) not in self._store.unsaved_scopes


def latch_dict(latch: Latch | None) -> dict | None:
    return {"by": latch.by, "reason": latch.reason, "since": latch.since} if latch else None
