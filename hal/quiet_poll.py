"""Quiet polls: a lone TCP PLC's unchanged readings taken by a timer and a reply callback while its bus task sleeps.

A PLC alone on its connection whose last reading was GOOD, with no command queued or awaiting its acknowledgement
and no heartbeat due before its next poll, is polled by the transport's poll_at: the request goes out from a
timer and the reply comes to on_block, with no task woken and no future made. A block equal to the last GOOD one
but for PLC_HEARTBEAT, whose heartbeat is not frozen, becomes a GOOD reading handed to the bus's
on_quiet_reading, which takes it whole (True) or leaves it untouched (False). Anything else (a changed block, a
failure, a reading the handler leaves, a freeze coming) is handed to the bus task, which wakes and takes it
the whole way as if it had read it itself; so is the first moment the PLC is no longer quiet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hal.errors import CommsError
from hal.unit import PlcReading, Quality, UnitState

if TYPE_CHECKING:
    from hal.bus import Bus

QuietHandler = Callable[[PlcReading], bool]
_GOOD = Quality.GOOD  # (an Enum attribute costs a metaclass lookup each time)
_tuple_new = tuple.__new__


class QuietPolls:
    """The quiet polls of a bus's one unit; `handed` holds what its task must take when it wakes."""

    def __init__(self, bus: Bus, unit: UnitState, poll_at: Any, cancel_poll: Callable[[], bool],
                 on_quiet_reading: QuietHandler) -> None:
        self._bus, self.unit = bus, unit
        self._schedule = bus._schedule[unit.spec.name]
        ((self._address, self._count),) = unit.spec.read_plan()
        self._poll_at, self._cancel_poll, self._on_quiet_reading = poll_at, cancel_poll, on_quiet_reading
        self.running = False
        self._stop_asked = False
        self.handed: tuple[bytes | CommsError, float] | None = None  # a poll's outcome and its loop time

    def quiet(self, when: float) -> bool:
        """Whether the wake at `when` is the unit's next poll, and all that is due then."""
        unit, bus, schedule = self.unit, self._bus, self._schedule
        return (unit.good and unit.armed and unit.last_block is not None and not unit.awaiting_ack
                and not bus._commands and when == schedule.next_poll_at and when < bus._heartbeats_due
                and when >= schedule.retry_at and bus.transport.connected)

    def start(self, when: float) -> bool:
        """Poll quietly from `when` on if the unit is quiet then (True); the bus's waiter is resolved when it must
        wake."""
        if self.running or self.handed is not None or not self.quiet(when):
            return False
        self.running, self._stop_asked = True, False
        self._time = asyncio.get_running_loop().time
        self._poll_at(when, self.unit.spec.unit, self._address, self._count, self._on_block)
        return True

    def stop(self) -> bool:
        """Stop polling quietly: True at once if no reply is awaited, else False (the reply then wakes the task)."""
        if not self.running:
            return True
        if self._cancel_poll():
            self.running = False
            return True
        self._stop_asked = True
        return False

    def _on_block(self, outcome: bytes | CommsError) -> None:
        now = self._time()
        try:
            block = outcome if outcome.__class__ is bytes else None
            if block is not None and not self._stop_asked and self._took(block, now):  # type: ignore[arg-type]
                if self.quiet(self._schedule.next_poll_at):
                    self._poll_at(self._schedule.next_poll_at, self.unit.spec.unit, self._address, self._count,
                                  self._on_block)
                    return
                self._wake(None)  # taken, but the next poll is not quiet: the task sleeps until what is due
                return
        except Exception:  # noqa: BLE001 - not raised into the transport: the task takes it the whole way, errors too
            pass
        self._wake((outcome, now))

    def _took(self, block: bytes, now: float) -> bool:
        """Take `block` as a GOOD unchanged reading if it is one and the handler takes it whole."""
        unit, bus = self.unit, self._bus
        snap = unit.same_block(block, now)
        if snap is None or (snap.heartbeat == unit.last_plc_heartbeat
                            and unit.unchanged_heartbeats + 1 >= bus.frozen_polls):
            return False  # changed, or PLC_HEARTBEAT about to count as frozen: the whole way
        reading = _tuple_new(PlcReading, (unit.spec.name, _GOOD, snap, None, False, 0, unit.watchdog_readback, None,
                                          True))  # PlcReading(..., unchanged=True) without NamedTuple's Python frame
        if not self._on_quiet_reading(reading):
            return False
        unit.frozen_problem(snap, bus.frozen_polls)  # counts the heartbeat (not frozen: checked above)
        unit.last_block, unit.last_snapshot = block, snap
        bus._advance_grid(self._schedule, now)
        return True

    def _wake(self, handed: tuple[bytes | CommsError, float] | None) -> None:
        self.running, self.handed = False, handed
        bus = self._bus
        if bus._waiter is not None and not bus._waiter.done():
            bus._waiter.set_result(None)
