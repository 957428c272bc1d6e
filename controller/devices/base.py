"""The device model every kind shares: a transitions machine fed by PLC readings, with intent kept beside state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import IntFlag
from typing import ClassVar

import structlog
from transitions.extensions.asyncio import AsyncMachine, AsyncTimeout
from transitions.extensions.states import add_state_features

from config.schema import DeviceSection
from controller.states import DeviceState
from hal.kinds import KindSpec
from hal.profile import Kind
from hal.snapshot import SlotSnapshot
from hal.unit import Quality

log = structlog.get_logger("controller.devices")


@add_state_features(AsyncTimeout)
class TimedMachine(AsyncMachine):
    """AsyncMachine whose states may carry a `timeout` and an `on_timeout` trigger."""

    def _checked_assignment(self, model: object, name: str, func: Callable) -> None:
        """Bind `trigger` and each trigger (a state's on_timeout names one), not the conveniences `may_<trigger>`
        and `is_<state>` nothing calls: a partial each, on every device, ≈ 7 kB a device."""
        if name.startswith("may_") or (name.startswith("is_") and name[3:] in self.states):
            return
        super()._checked_assignment(model, name, func)


_MACHINES: dict[tuple[type, float], TimedMachine] = {}


def machine_for(kind: type[Device], travel_limit_s: float) -> TimedMachine:
    """The one machine shared by every device of a kind with the same travel limit (each device is a
    model of it, with its own state, queue and timer): 66 transitions once, not once per device."""
    key = (kind, travel_limit_s)
    if (machine := _MACHINES.get(key)) is not None:
        return machine
    states = [
        {"name": s, "timeout": travel_limit_s, "on_timeout": "travel_timed_out"} if s in kind.TIMED_STATES else s
        for s in kind.STATES
    ]
    machine = TimedMachine(
        model=None,
        states=states,
        initial="unknown",
        queued="model",
        auto_transitions=False,
        send_event=True,
        after_state_change="_state_changed",
    )
    for target in kind.STATES:
        for source in kind.STATES:
            # Seeing the state it is already in is an internal transition: no exit, no timer restart.
            machine.add_transition(f"sense_{target}", source, None if source == target else target)
    if kind.TIMED_STATES:
        machine.add_transition("travel_timed_out", list(kind.TIMED_STATES), "fault", before="_latch_travel_timeout")
    _MACHINES[key] = machine
    return machine


def _nothing() -> None:
    pass


class DeviceNotReached(Exception):
    """A device did not reach the state a sequence waits for."""


@dataclass(frozen=True)
class Intent:
    """The supervisor's last accepted command to a device, and who gave it."""

    verb: str
    code: int
    by: str
    at: float  # unix time
    loop_at: float = 0.0  # event-loop time (command-to-limit times are measured on it)


@dataclass(frozen=True)
class StateChange:
    """One transition, as logged and stored."""

    device: str
    from_state: str
    to_state: str
    trigger: str
    cause: str


StateChangeHandler = Callable[[StateChange], Awaitable[None]]


class Device:
    """Base of every device kind; a kind module gives STATES, VERBS and `derive_state`."""

    SPEC: ClassVar[KindSpec]  # the kind's entry in hal/kinds.py
    KIND: ClassVar[Kind]
    STATES: ClassVar[tuple[str, ...]]
    VERBS: ClassVar[dict[str, int]]  # what a person types -> COMMAND value
    OPENING_VERBS: ClassVar[frozenset[str]]  # verbs that make the device passable
    TIMED_STATES: ClassVar[tuple[str, ...]] = ()  # states supervised by travel time
    STATUS_BITS: ClassVar[type[IntFlag]]  # the STATUS bit set of this kind
    LOCAL_BITS: ClassVar[int]  # STATUS bits meaning a person at the cabinet has the device
    SECURE_VERB: ClassVar[str]  # what a secure sequence sends
    LOCKDOWN_VERB: ClassVar[str]  # what a lockdown sends (EFO for blockers)
    OPEN_VERB: ClassVar[str]  # what an open sequence sends
    SECURED_STATE: ClassVar[str]
    OPEN_STATE: ClassVar[str]

    def __init__(self, cfg: DeviceSection, on_change: StateChangeHandler | None = None):
        self.name = cfg.name
        self.plc = cfg.plc
        self.slot = cfg.slot
        self.cfg = cfg
        self.quality = Quality.INVALID
        self.quality_reason: str | None = "not read yet"
        self.feedback: SlotSnapshot | None = None
        self._derived = ("unknown", "not read yet")  # derive_state(feedback), kept while the feedback is the same
        self.intent: Intent | None = None
        self.latched_fault: str | None = None  # a fault the supervisor found; held until reset
        self.state: str = DeviceState.UNKNOWN.value
        self._on_change = on_change
        self._changed: asyncio.Event | None = None
        self._in_force_until = 0.0  # loop time until which the last command may still move the device
        self._goal_reached = False  # the previous reading showed the command's goal: it ends with this one
        self.opening_pending = 0  # opening commands checked and not yet answered by the PLC
        self.on_stir: Callable[[], None] = _nothing  # the site's: the next reading of this PLC takes the whole path
        self.machine = machine_for(type(self), self.travel_limit_s)
        self.machine.add_model(self)

    def detach(self) -> None:
        """Leave the shared machine (when the site that owns the device stops)."""
        self.machine.remove_model(self)

    # ----- feedback ---------------------------------------------------------------------------

    def derive_state(self, slot: SlotSnapshot) -> tuple[str, str]:
        """(state, cause) from one slot's feedback with good quality; given by each kind."""
        raise NotImplementedError

    async def observe(self, quality: Quality, slot: SlotSnapshot | None, reason: str | None) -> None:
        """Take one reading: unknown unless the data are good, else the state the feedback shows."""
        if (sensing := self.take(quality, slot, reason)) is not None:
            await sensing

    def take(self, quality: Quality, slot: SlotSnapshot | None, reason: str | None) -> Awaitable[None] | None:
        """observe() without a coroutine when nothing changes (the poll path, every device on every reading):
        None when the reading is taken, else the transition still to await."""
        if self._goal_reached:
            self._in_force_until, self._goal_reached = 0.0, False
        self.quality = quality
        self.quality_reason = reason
        if quality is not Quality.GOOD or slot is None:
            self.feedback = None
            target, cause = "unknown", reason or f"data {quality.value}"
        else:
            if slot is not self.feedback:  # an unchanged block hands over the very slot again: state as derived
                self.feedback = slot
                self._derived = self.derive_state(slot)
            target, cause = self._derived
            if self.latched_fault is not None:
                target, cause = "fault", self.latched_fault
        if target != self.state:  # the same state again changes nothing: no trigger on the poll path
            return self._sense(target, cause)
        self._note_goal()
        return None

    async def _sense(self, target: str, cause: str) -> None:
        await self.trigger(f"sense_{target}", cause=cause)
        self._note_goal()

    def _note_goal(self) -> None:
        """The command in force ends with the reading after the one that shows its goal."""
        if self._in_force_until and self.intent is not None and self.state in self._goal_states(self.intent.verb):
            self._goal_reached = True

    def settled(self, now: float) -> bool:
        """No command in force or ending: the same slot read again changes nothing here, now or later (until
        a command, a latched fault or a state change outside a reading, each of which stirs the device)."""
        return not self._goal_reached and now >= self._in_force_until

    def stir(self) -> None:
        """Something a reading of this device reads changed between readings: its PLC's next one is read in whole."""
        self.on_stir()

    async def _latch_travel_timeout(self, event) -> None:
        limit = self.cfg.travel_s * self.cfg.travel_factor
        self.latched_fault = f"travel timeout: no limit reached within {limit:.1f} s"
        self.stir()

    async def _state_changed(self, event) -> None:
        if event.transition.dest is None:
            return
        self.stir()
        if self._changed is not None:
            self._changed.set()
        change = StateChange(
            device=self.name,
            from_state=event.transition.source,
            to_state=event.transition.dest,
            trigger=event.event.name,
            cause=event.kwargs.get("cause") or self.latched_fault or "",
        )
        log.info("device_state_changed", **change.__dict__)
        if self._on_change is not None:
            await self._on_change(change)

    async def wait_state(self, targets: frozenset[str], timeout_s: float, *, fail_fast: bool = True) -> None:
        """Return once the device is in one of `targets` on good data; DeviceNotReached at the deadline,
        or at once on fault or local control when `fail_fast`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not (self.state in targets and self.quality is Quality.GOOD):
            if fail_fast and self.state in (DeviceState.FAULT, DeviceState.LOCAL):
                raise DeviceNotReached(f"{self.name} is {self.state} ({self.latched_fault or self.quality_reason or ''})".strip())
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise DeviceNotReached(
                    f"{self.name} not {'/'.join(sorted(targets))} within {timeout_s:.1f} s (it is {self.state})"
                )
            self._changed = self._changed or asyncio.Event()
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    # ----- commands ---------------------------------------------------------------------------

    def record_intent(self, verb: str, by: str) -> None:
        now = asyncio.get_running_loop().time()
        self.intent = Intent(verb=verb, code=self.VERBS[verb], by=by, at=time.time(), loop_at=now)
        self.expect_motion(now, verb != "reset")

    def expect_motion(self, now: float, moves: bool = True) -> None:
        """Motion is commanded from `now` for travel time × factor plus a margin (or not at all for a reset)."""
        self._in_force_until = now + (self.cfg.travel_s * self.cfg.travel_factor + 1.0 if moves else 0.0)
        self._goal_reached = False
        self.stir()

    def command_in_force(self, now: float) -> bool:
        """True while the last command may still move the device: until the reading after the one that
        showed its goal, or its travel time × factor plus a margin."""
        return now < self._in_force_until

    def _goal_states(self, verb: str) -> frozenset[str]:
        if verb in self.OPENING_VERBS:
            return frozenset({self.OPEN_STATE})
        if verb in ("close", "raise", "red", "efo"):
            return frozenset({self.SECURED_STATE})
        return frozenset({"stopped", self.OPEN_STATE, self.SECURED_STATE})

    def local_or_manual(self, slot: SlotSnapshot) -> bool:
        """A person at the cabinet has the device: key switch in LOCAL or manual release engaged."""
        return bool(slot.status & self.LOCAL_BITS)

    def clear_latched_fault(self) -> None:
        self.latched_fault = None
        self.stir()

    def flags(self) -> list[str]:
        """Names of the STATUS bits set in the latest good feedback."""
        if self.feedback is None:
            return []
        return [flag.name for flag in self.STATUS_BITS if flag & self.feedback.status]

    @property
    def display_state(self) -> str:
        """The state as a guard reads it (blockers say raised / lowered)."""
        return self.shown(self.state)

    def shown(self, state: str) -> str:
        """Any state of this kind as a guard reads it (blockers say raised / lowered)."""
        return self.SPEC.state_words.get(state, state)

    @property
    def travel_limit_s(self) -> float:
        """How long a travel may take before it is a fault: the site's travel time × its factor."""
        return self.cfg.travel_s * self.cfg.travel_factor

    def as_dict(self) -> dict:
        fb = self.feedback
        return {
            "name": self.name,
            "kind": self.cfg.kind,
            "state": self.state,
            "display": self.display_state,
            "position": fb.position if fb is not None else None,
            "plc": self.plc,
            "slot": self.slot,
            "quality": self.quality.value,
            "reason": self.quality_reason if self.quality is not Quality.GOOD else self.latched_fault,
            "flags": self.flags(),
            "intent": self.intent.verb if self.intent else None,
            "intent_by": self.intent.by if self.intent else None,
            "verbs": self.SPEC.valid_verbs,  # what a person may type for it
            "travel_limit_s": self.travel_limit_s,
        }
