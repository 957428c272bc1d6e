"""One bus (a TCP endpoint or an RS-485 line): polls its PLCs, writes heartbeats, and puts commands before polls.

On a line shared by several units, a unit that stops answering is retried with back-off once its
comms are lost (UNIT_RETRY_MIN_S doubling to UNIT_RETRY_MAX_S), so it costs the line at most one
timeout per retry while the others keep their poll rate; readings for it go on being published,
not GOOD, at the poll rate. A unit alone on its bus slows no one and is polled at every poll.
"""

from __future__ import annotations

import asyncio
import collections
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from hal.event_loop import wake_slack_s
from hal.errors import BadReplyError, CommsError, ExceptionReplyError
from hal.profile import (
    HeaderHolding,
    SlotHolding,
    slot_base,
)
from hal.quiet_poll import QuietHandler, QuietPolls
from hal.snapshot import block_words, decode_block
from hal.transport import Transport
from hal.unit import CommandOutcome, PendingCommand, PlcReading, Problem, Quality, UnitSpec, UnitState

log = structlog.get_logger("hal.bus")

ReadingHandler = Callable[[PlcReading], Awaitable[None]]

RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 1.0
ACK_SCANS = 10  # a command not acknowledged within this many PLC scans (plus one timeout) is reported
ACK_POLL_SCANS, ACK_REPOLL_MIN_S = 1.2, 0.01  # an ack read 1.2 PLC scans after the write, then every 2 (≥ 10 ms)
UNIT_RETRY_MIN_S = 1.0  # a lost unit on a shared line is retried after this, doubling ...
UNIT_RETRY_MAX_S = 4.0  # ... up to this


@dataclass
class _Schedule:
    """When one unit is next polled, and its retry back-off while its comms are lost on a shared line."""

    next_poll_at: float = 0.0
    retry_at: float = 0.0
    retry_delay: float = 0.0
    last_reason: str | None = None


class Bus:
    """Owns one transport and the PLCs behind it; a single task does every exchange, in priority order."""

    def __init__(
        self,
        transport: Transport,
        units: list[UnitSpec],
        *,
        poll_s: float,
        timeout_s: float,
        comms_lost_polls: int,
        frozen_polls: int,
        on_reading: ReadingHandler,
        on_quiet_reading: QuietHandler | None = None,
    ):
        self.transport = transport
        self.units = {u.name: UnitState(u) for u in units}
        self._schedule = {u.name: _Schedule() for u in units}
        self._shared = len(units) > 1
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.comms_lost_polls = comms_lost_polls
        self.frozen_polls = frozen_polls
        self._on_reading = on_reading
        self._commands: collections.deque[tuple[UnitState, PendingCommand]] = collections.deque()
        self._waiter: asyncio.Future | None = None  # what the bus task awaits while it sleeps
        self._heartbeats_due = float("inf")  # no armed unit's next_heartbeat_at is earlier than this
        self._plans = {u.name: u.read_plan() for u in units}
        self._reconnect_delay = RECONNECT_MIN_S
        self._next_connect_at = 0.0
        self._was_connected = False
        self._quiet: QuietPolls | None = None  # a lone unit read in one request, on a transport with poll_at
        poll_at = getattr(transport, "poll_at", None)  # a transport that can send a poll from a timer (hal/tcp.py)
        if poll_at is not None and on_quiet_reading is not None and len(units) == 1 and len(units[0].read_plan()) == 1:
            cancel_poll = transport.cancel_poll  # type: ignore[attr-defined]
            self._quiet = QuietPolls(self, self.units[units[0].name], poll_at, cancel_poll, on_quiet_reading)

    # ----- public API -------------------------------------------------------------------------

    async def command(self, plc: str, slot: int, code: int, recheck: Callable[[], None] | None = None) -> CommandOutcome:
        """Write COMMAND + COMMAND_SEQ to a slot before the next poll and wait for ACK_SEQ to reach it."""
        unit = self.units[plc]
        if not unit.good or slot not in unit.seq:
            raise CommsError(f"{plc}: no valid data from the PLC; no command written")
        future = asyncio.get_running_loop().create_future()
        self._commands.append((unit, PendingCommand(slot=slot, code=code, future=future, recheck=recheck)))
        self._wake_up()
        return await future

    async def run(self) -> None:
        """Poll forever; cancel the task to stop."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        try:
            while True:
                if task is not None and task.cancelling():
                    # Python 3.11's wait_for (here and in pymodbus) swallows a cancel that arrives
                    # as its awaitable completes; the request stays counted, so honour it here.
                    raise asyncio.CancelledError
                if self._quiet is not None and self._quiet.handed is not None:  # a quiet poll's reply, first: a
                    unit = self._quiet.unit  # command waits for it (it may show another program, a vehicle...)
                    self._advance_grid(self._schedule[unit.spec.name], loop.time())
                    await self._poll(unit)
                if not self.transport.connected and not await self._try_connect():
                    await self._publish_failures("not connected")
                    next_poll = loop.time() + self.poll_s
                    for schedule in self._schedule.values():
                        schedule.next_poll_at = next_poll
                    await self._sleep_until(min(next_poll, self._next_connect_at))
                    continue
                if self._commands:
                    await self._send_commands()
                if loop.time() >= self._heartbeats_due:
                    await self._send_heartbeats()
                for unit in self.units.values():
                    if self._commands:
                        await self._send_commands()  # before every poll, also between the units of a line
                    schedule = self._schedule[unit.spec.name]
                    now = loop.time()
                    if now >= schedule.next_poll_at or (unit.awaiting_ack and now >= unit.ack_poll_at):
                        unit.ack_poll_at = now + max(2 * (unit.last_scan_ms or 10) / 1000, ACK_REPOLL_MIN_S)
                        if now >= schedule.next_poll_at:
                            self._advance_grid(schedule, now)
                        if now < schedule.retry_at:
                            await self._publish_backed_off(unit, schedule)
                        else:
                            await self._poll(unit)
                await self._sleep_until(self._next_wake())
        finally:
            self._fail_pending("bus stopped")
            self.transport.close()

    def _advance_grid(self, schedule: _Schedule, now: float) -> None:
        """A poll is made: the next one is due a period later on a fixed grid (late polls don't shift it). With
        quiet polls the grid is the loop clock's multiples of the period, the same for every such bus of a site:
        their polls due at one time go out together (hal/ticker.py)."""
        if self._quiet is not None:  # the period after the poll made (however late its reply), on the shared grid
            period = self.poll_s
            grid = (round(schedule.next_poll_at / period) + 1) * period
            schedule.next_poll_at = grid if grid > now else (math.floor(now / period) + 1) * period
            return
        grid = schedule.next_poll_at + self.poll_s
        schedule.next_poll_at = grid if grid > now else now + self.poll_s

    # ----- connection -------------------------------------------------------------------------

    async def _try_connect(self) -> bool:
        loop = asyncio.get_running_loop()
        if loop.time() < self._next_connect_at:
            return False
        if self._was_connected:
            log.warning("bus_connection_lost", bus=self.transport.name)
            self._was_connected = False
        try:
            await asyncio.wait_for(self.transport.connect(), self.timeout_s)
        except (CommsError, TimeoutError) as exc:
            self._next_connect_at = loop.time() + self._reconnect_delay
            # Back off, but never past the poll period: a PLC that returns is read again within two polls.
            self._reconnect_delay = min(self._reconnect_delay * 2, max(RECONNECT_MIN_S, min(self.poll_s, RECONNECT_MAX_S)))
            log.debug("bus_connect_failed", bus=self.transport.name, error=str(exc))
            return False
        self._reconnect_delay = RECONNECT_MIN_S
        self._was_connected = True
        log.info("bus_connected", bus=self.transport.name)
        for unit in self.units.values():
            unit.armed = False
            unit.good = False
            unit.seq.clear()
            unit.forget_block()
        for schedule in self._schedule.values():
            schedule.retry_at = schedule.retry_delay = 0.0
        return True

    async def _arm_watchdog(self, unit: UnitState) -> None:
        """Write WATCHDOG_TIMEOUT_MS and read it back; done once per connection."""
        spec = unit.spec
        # The first heartbeat must differ from what the PLC holds (0 after power-up, or our last value
        # before a restart), or the PLC's watchdog stays expired until the next one.
        (held,) = await self.transport.read_holding(spec.unit, HeaderHolding.SUPERVISOR_HEARTBEAT, 1)
        unit.heartbeat_out = (held + 1) & 0xFFFF
        await self.transport.write_register(spec.unit, HeaderHolding.SUPERVISOR_HEARTBEAT, unit.heartbeat_out)
        await self.transport.write_register(spec.unit, HeaderHolding.WATCHDOG_TIMEOUT_MS, spec.watchdog_ms)
        (unit.watchdog_readback,) = await self.transport.read_holding(spec.unit, HeaderHolding.WATCHDOG_TIMEOUT_MS, 1)
        unit.forget_block()  # the readback is part of every reading: the next one is checked afresh
        unit.next_heartbeat_at = asyncio.get_running_loop().time() + spec.heartbeat_period_s
        self._heartbeats_due = min(self._heartbeats_due, unit.next_heartbeat_at)
        unit.armed = True
        log.info("watchdog_armed", plc=spec.name, configured_ms=spec.watchdog_ms, readback_ms=unit.watchdog_readback)

    # ----- exchanges --------------------------------------------------------------------------

    async def _send_commands(self) -> None:
        loop = asyncio.get_running_loop()
        while self._commands:
            unit, cmd = self._commands.popleft()
            if cmd.future.done():
                continue
            if not unit.good:
                cmd.future.set_exception(CommsError(f"{unit.spec.name}: lost before the command was written"))
                continue
            if cmd.recheck is not None:
                try:
                    cmd.recheck()  # raises if a rule now refuses what was allowed when queued
                except Exception as exc:  # noqa: BLE001 - the caller's refusal, handed back as is
                    cmd.future.set_exception(exc)
                    continue
            cmd.seq = unit.next_seq(cmd.slot)
            try:
                await self.transport.write_registers(
                    unit.spec.unit, slot_base(cmd.slot) + SlotHolding.COMMAND, [cmd.code, cmd.seq]
                )
            except CommsError as exc:
                cmd.future.set_exception(CommsError(f"{unit.spec.name}: command write failed: {exc}"))
                self._note_failure(unit, str(exc))
                await self._publish_failed_write(unit, exc)
                continue
            scan_s = (unit.last_scan_ms or 10) / 1000
            cmd.deadline = loop.time() + ACK_SCANS * scan_s + self.timeout_s + self.poll_s
            previous = unit.awaiting_ack.pop(cmd.slot, None)
            if previous is not None and not previous.future.done():
                previous.future.set_result(CommandOutcome(acknowledged=False, result=None, seq=previous.seq))
            unit.awaiting_ack[cmd.slot] = cmd
            unit.ack_poll_at = loop.time() + ACK_POLL_SCANS * scan_s  # the PLC acknowledges at its next scan

    async def _send_heartbeats(self) -> None:
        now = asyncio.get_running_loop().time()
        for unit in self.units.values():
            if not unit.armed or now < unit.next_heartbeat_at:
                continue
            unit.heartbeat_out = (unit.heartbeat_out + 1) & 0xFFFF
            try:
                await self.transport.write_register(
                    unit.spec.unit, HeaderHolding.SUPERVISOR_HEARTBEAT, unit.heartbeat_out
                )
                unit.next_heartbeat_at = now + unit.spec.heartbeat_period_s
            except CommsError as exc:
                # Retry at the next poll at the latest, not at once: a due time left in the past
                # would make the bus loop on failing heartbeat writes without ever sleeping.
                unit.next_heartbeat_at = now + min(self.poll_s, unit.spec.heartbeat_period_s)
                self._note_failure(unit, str(exc))
                await self._publish_failed_write(unit, exc)
        self._heartbeats_due = min((u.next_heartbeat_at for u in self.units.values() if u.armed), default=float("inf"))

    async def _poll(self, unit: UnitState) -> None:
        spec = unit.spec
        try:
            if not unit.armed:  # a new connection: a quiet poll's reply from before it is never taken
                if self._quiet is not None:
                    self._quiet.handed = None
                await self._arm_watchdog(unit)
            plan = self._plans[spec.name]
            if self._quiet is not None and self._quiet.handed is not None:  # a quiet poll's reply, taken here
                (block, read_at), self._quiet.handed = self._quiet.handed, None
                if isinstance(block, CommsError):
                    raise block
            else:
                if len(plan) == 1:
                    block = await self.transport.read_input_block(spec.unit, *plan[0])
                else:
                    block = b"".join([await self.transport.read_input_block(spec.unit, a, n) for a, n in plan])
                read_at = asyncio.get_running_loop().time()
            snap = unit.same_block(block, read_at) or decode_block(block_words(block), len(spec.slot_kinds), read_at)
        except CommsError as exc:
            self._note_failure(unit, str(exc))
            if unit.awaiting_ack:
                unit.check_acks(None, asyncio.get_running_loop().time())
            kind = Problem.BAD_REPLY if isinstance(exc, BadReplyError | ExceptionReplyError) else Problem.COMMS
            await self._publish(unit, str(exc), kind)
            return
        unit.consecutive_failures = 0
        self._schedule[spec.name].retry_at = self._schedule[spec.name].retry_delay = 0.0
        unchanged = snap.slots is (unit.last_snapshot.slots if unit.last_snapshot is not None else None)
        # an unchanged block has the identity the last GOOD one had: none of its words differ
        identity = None if unchanged else spec.identity_problem(snap)
        frozen = None if identity else unit.frozen_problem(snap, self.frozen_polls)
        problem = identity or frozen
        kind = Problem.WRONG_PROGRAM if identity else Problem.FROZEN if frozen else None
        unit.good = problem is None
        unit.last_scan_ms = snap.scan_time_ms
        if unit.good and len(unit.seq) < len(snap.slots):  # the sequence each slot had when first read
            for slot, slot_snap in enumerate(snap.slots):
                unit.seq.setdefault(slot, slot_snap.ack_seq)
        if unit.awaiting_ack:
            unit.check_acks(snap if unit.good else None, asyncio.get_running_loop().time())
        if not unit.good:
            await self._publish(unit, problem, kind)
            return
        unit.last_block, unit.last_snapshot = block, snap
        await self._on_reading(PlcReading(spec.name, Quality.GOOD, snap, None, False, 0, unit.watchdog_readback,
                                          unchanged=unchanged))

    # ----- bookkeeping ------------------------------------------------------------------------

    def _note_failure(self, unit: UnitState, reason: str) -> None:
        unit.consecutive_failures += 1
        unit.good = False
        if not self.transport.connected:
            unit.armed = False
        if unit.consecutive_failures == self.comms_lost_polls:
            log.warning("plc_comms_lost", plc=unit.spec.name, reason=reason)
        if self._shared and self.transport.connected and unit.consecutive_failures >= self.comms_lost_polls:
            # The line works but this unit does not answer: retry it with back-off, and arm its
            # watchdog again when it answers (it may have restarted); no heartbeats meanwhile.
            schedule = self._schedule[unit.spec.name]
            schedule.retry_delay = min(max(2 * schedule.retry_delay, UNIT_RETRY_MIN_S), UNIT_RETRY_MAX_S)
            schedule.retry_at = asyncio.get_running_loop().time() + schedule.retry_delay
            schedule.last_reason = reason
            unit.armed = False

    async def _publish_backed_off(self, unit: UnitState, schedule: _Schedule) -> None:
        """A reading for a lost unit between its retries: no exchange on the line, quality not GOOD."""
        unit.check_acks(None, asyncio.get_running_loop().time())
        await self._publish(
            unit, f"{schedule.last_reason} (no answer; retried every {schedule.retry_delay:g} s)"
        )

    async def _publish_failed_write(self, unit: UnitState, exc: CommsError) -> None:
        """A write the PLC did not answer is reported at once, as a failed poll is: the last reading may
        no longer be true. An exception reply is an answer (the PLC is there), reported once comms are lost."""
        answered = isinstance(exc, ExceptionReplyError)
        if not answered or unit.consecutive_failures >= self.comms_lost_polls:
            kind = Problem.BAD_REPLY if isinstance(exc, BadReplyError) else Problem.COMMS
            await self._publish(unit, str(exc), kind)

    async def _publish_failures(self, reason: str) -> None:
        for unit in self.units.values():
            self._note_failure(unit, reason)
            await self._publish(unit, reason)
        self._fail_pending(reason)

    async def _publish(self, unit: UnitState, reason: str | None, problem: Problem | None = Problem.COMMS) -> None:
        """A reading without good data (a good one is handed over by _poll): the block is read afresh after it."""
        unit.forget_block()
        lost = unit.consecutive_failures >= self.comms_lost_polls
        quality = Quality.STALE if unit.consecutive_failures and not lost else Quality.INVALID
        await self._on_reading(PlcReading(unit.spec.name, quality, None, reason, lost, unit.consecutive_failures,
                                          unit.watchdog_readback, problem))

    def _fail_pending(self, reason: str) -> None:
        for _, cmd in self._commands:
            if not cmd.future.done():
                cmd.future.set_exception(CommsError(reason))
        self._commands.clear()
        for unit in self.units.values():
            for cmd in unit.awaiting_ack.values():
                if not cmd.future.done():
                    cmd.future.set_result(CommandOutcome(acknowledged=False, result=None, seq=cmd.seq))
            unit.awaiting_ack.clear()

    def _next_wake(self) -> float:
        wake = min(self._heartbeats_due, *(s.next_poll_at for s in self._schedule.values()))
        for unit in self.units.values():
            if unit.awaiting_ack:
                wake = min(wake, unit.ack_poll_at)
        return wake

    async def _sleep_until(self, when: float) -> None:
        """Sleep until `when`, or until a command is queued (command() resolves the waiter)."""
        loop = asyncio.get_running_loop()
        delay = when - loop.time()
        if self._commands:
            return
        if delay <= 0:
            await asyncio.sleep(0)
            return
        # A bare future and a timer that resolves it: cheaper than an Event, or a wait_for task, per sleep;
        # or quiet polls (hal/quiet_poll.py) until one needs the task.
        self._waiter = waiter = loop.create_future()
        quiet = self._quiet is not None and self._quiet.start(when)
        timer = None if quiet else loop.call_later(delay + wake_slack_s(loop), _resolve, waiter)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            elif self._quiet is not None:
                self._quiet.stop()  # a reply still awaited is handed over, and taken first
            self._waiter = None

    def _wake_up(self) -> None:
        if self._waiter is not None and (self._quiet is None or self._quiet.stop()):  # else the reply wakes it
            _resolve(self._waiter)


def _resolve(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)
