"""A vehicle lane: its mode machine and its secure / open sequences, one step at a time, each confirmed."""

from __future__ import annotations

import asyncio
import time

import structlog
from transitions.extensions.asyncio import AsyncMachine

from config.schema import LaneSection
from controller.actions import ActionFailed, CommandSite, command_device
from controller.devices import Device
from controller.devices.base import DeviceNotReached
from controller.interlocks import Refused, is_secured
from controller.states import DERIVED_MODES, LaneMode
from hal.unit import Quality


log = structlog.get_logger("controller.lanes")

MODES = tuple(m.value for m in LaneMode)  # the machine is given plain strings; LaneMode members equal them
# Modes read from the devices on every poll, never latched: all secured, all open, some of each, or not known.
DERIVED = tuple(m.value for m in DERIVED_MODES)
REACH_MARGIN_S = 1.0  # a step waits travel time × factor plus this for its device


class SequenceFailed(Exception):
    """A lane step did not complete; the message names the step and the device. `wrote`: an earlier step
    (or this one) had already written a command, so the sequence acted before it failed."""

    def __init__(self, message: str, wrote: bool = False):
        super().__init__(message)
        self.wrote = wrote


class Lane:
    """Mode machine of one lane; sequences run as tasks that lockdown and maintenance can cancel."""

    def __init__(self, cfg: LaneSection, site: CommandSite):
        self.cfg = cfg
        self.name = cfg.name
        self.site = site
        self.mode: str = LaneMode.UNKNOWN.value
        self.reason = "not read yet"
        self.by = "barrierd"
        self.since = time.time()
        self._task: asyncio.Task | None = None
        self.machine = AsyncMachine(
            model=self, states=list(MODES), initial=LaneMode.UNKNOWN.value, model_attribute="mode",
            queued="model", auto_transitions=False, send_event=True, after_state_change="_mode_changed",
        )
        add = self.machine.add_transition
        M = LaneMode
        U, O, SG, SD, OG, MX, LD, MT, F = (m.value for m in (M.UNKNOWN, M.OPEN, M.SECURING, M.SECURED, M.OPENING, M.MIXED,
                                                             M.LOCKDOWN, M.MAINTENANCE, M.FAULT))
        add("begin_secure", [U, O, SD, MX, OG, SG, F], SG)
        add("begin_open", [SD], OG)
        add("sequence_done", SG, SD)
        add("sequence_done", OG, O)
        add("sequence_failed", [SG, OG], F)
        add("lock", [m for m in MODES if m != LD], LD)
        for target in DERIVED:  # what the devices show, from another shown mode or on leaving a latch
            add(f"show_{target}", [m for m in (*DERIVED, LD, MT) if m != target], target)
        add("enter_maintenance", [U, O, SD, MX, SG, OG, F], MT)

    def restore(self, mode: str, by: str, reason: str, since: float) -> None:
        """Take the mode saved before a restart; a sequence cut short by the restart becomes a fault."""
        if mode in (LaneMode.SECURING, LaneMode.OPENING):
            mode, reason = LaneMode.FAULT.value, f"{mode} interrupted by a restart of barrierd"
        if mode in DERIVED:
            return  # not latched: the first complete read decides, so nothing stale is shown
        self.machine.set_state(str(mode))  # a plain string: the machine's states are the values
        self.by, self.reason, self.since = by, reason, since

    # ----- members ----------------------------------------------------------------------------

    @property
    def devices(self) -> list[Device]:
        return [self.site.devices[name] for name in self.cfg.members().values()]

    def _role(self, role: str) -> Device | None:
        name = self.cfg.members().get(role)
        return self.site.devices[name] if name is not None else None

    def unsettled_devices(self) -> str:
        return ", ".join(f"{d.name} {d.display_state}" for d in self.devices if not is_secured(d))

    def derived(self) -> tuple[LaneMode, str]:
        """The mode the devices show now, and why: unknown if any device's data are not valid; secured or
        open if every device is; else mixed, naming the devices that are not secured."""
        devices = self.devices
        lost = [d for d in devices if d.quality is not Quality.GOOD]
        if lost:
            return LaneMode.UNKNOWN, "no valid data: " + ", ".join(f"{d.name} {d.quality.value}" for d in lost)
        if all(is_secured(d) for d in devices):
            return LaneMode.SECURED, "every device secured"
        if all(d.state == d.OPEN_STATE for d in devices):
            return LaneMode.OPEN, "every device open"
        return LaneMode.MIXED, f"not secured: {self.unsettled_devices()}; `lane secure {self.name}` secures it"

    async def _mode_changed(self, event) -> None:
        self.reason = event.kwargs.get("reason", "")
        self.by = event.kwargs.get("by", "barrierd")
        self.since = time.time()
        log.info("lane_mode_changed", lane=self.name, from_mode=event.transition.source, to_mode=self.mode,
                 trigger=event.event.name, by=self.by, reason=self.reason)
        self.site.store.save_mode(f"lane:{self.name}", self.mode, self.by, self.reason,
                                  durable=False)  # latches are synced by their command (lockdown, maintenance)
        self.site.store.record_event("lane_mode", self.name, f"{self.name}: {event.transition.source} → {self.mode}",
                                     by=self.by, reason=self.reason)

    async def on_devices_read(self) -> None:
        """A lane that is not latched shows what its devices report, on every reading."""
        if self.mode not in DERIVED:
            return
        target, reason = self.derived()
        if target != self.mode:
            await self.trigger(f"show_{target}", reason=reason)
        else:
            self.reason = reason  # the same mode, other devices named: shown, not recorded

    async def settle(self, by: str = "barrierd", reason: str = "") -> None:
        """Leave a latch (lockdown, maintenance) for the mode the devices show; nothing moves."""
        target, why = self.derived()
        await self.trigger(f"show_{target}", by=by, reason=f"{reason}; {why}" if reason else why)

    # ----- sequences --------------------------------------------------------------------------

    def cancel_sequence(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def run_secure(self, by: str) -> str:
        if self.mode in (LaneMode.LOCKDOWN, LaneMode.MAINTENANCE):
            raise Refused(self.mode, f"lane {self.name} is in {self.mode}; no automatic sequence")
        return await self._run(self.begin_secure, self._secure_steps(), by, "secured")

    async def run_open(self, by: str) -> str:
        if self.mode in (LaneMode.LOCKDOWN, LaneMode.MAINTENANCE):
            raise Refused(self.mode, f"lane {self.name} is in {self.mode}; no automatic sequence")
        if self.mode != LaneMode.SECURED:
            raise Refused("lane_not_secured", f"lane {self.name} is {self.mode}; only a secured lane can be opened")
        return await self._run(self.begin_open, self._open_steps(), by, "open")

    def _secure_steps(self) -> list[tuple[str, Device | None, str, str]]:
        steps = []
        for role in self.cfg.secure_order:
            if role == "clear":
                steps.append(("clear", None, "", ""))
            elif (device := self._role(role)) is not None:
                steps.append((role, device, device.SECURE_VERB, device.SECURED_STATE))
        return steps

    def _open_steps(self) -> list[tuple[str, Device | None, str, str]]:
        return [
            (role, device, device.OPEN_VERB, device.OPEN_STATE)
            for role in self.cfg.open_order
            if (device := self._role(role)) is not None
        ]

    async def _run(self, begin, steps, by: str, goal: str) -> str:
        self.cancel_sequence()
        await begin(by=by, reason=f"{goal} requested")
        self._task = asyncio.create_task(self._steps(steps, by), name=f"lane-{self.name}")
        started = asyncio.get_running_loop().time()
        try:
            await asyncio.shield(self._task)
        except SequenceFailed as exc:
            await self.sequence_failed(by=by, reason=str(exc))
            raise
        except asyncio.CancelledError:
            if self._task.cancelled():
                raise SequenceFailed(f"lane {self.name}: sequence interrupted ({self.mode})") from None
            raise
        await self.sequence_done(by=by, reason=f"{goal} in {asyncio.get_running_loop().time() - started:.1f} s")
        return f"lane {self.name} {goal} in {asyncio.get_running_loop().time() - started:.1f} s"

    async def _steps(self, steps, by: str) -> None:
        wrote = False
        for number, (role, device, verb, target) in enumerate(steps, start=1):
            if device is None:
                await asyncio.sleep(self.cfg.clear_time_s)
                continue
            where = f"lane {self.name} step {number} ({role} {device.name} {verb})"
            if device.state == target and device.quality.value == "good":
                continue
            try:
                await command_device(self.site, device, verb, by, sequence=True)
                wrote = True
                await device.wait_state(frozenset({target}),
                                        device.travel_limit_s + REACH_MARGIN_S)
            except ActionFailed as exc:
                raise SequenceFailed(f"{where}: {exc}", wrote=True) from exc  # it may have been written
            except (Refused, DeviceNotReached) as exc:
                raise SequenceFailed(f"{where}: {exc}", wrote=wrote) from exc
