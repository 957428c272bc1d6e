"""A leaf device slot (folding gate, road blocker, boom barrier): travel, limits, interlocks, faults, lock."""

from __future__ import annotations

from hal.kinds import KINDS
from hal.profile import (
    POSITION_CLOSED,
    POSITION_OPEN,
    AckResult,
    Command,
    FaultCode,
    Kind,
    Status,
)
from sim_plc.condition import Condition
from sim_plc.slot import U32, Conditions, Slot

# Nominal travel of each profile KIND's own kind (a site's kinds may set their own: hal/kinds.py)
TRAVEL_S: dict[Kind, float] = {spec.code: spec.sim_travel_s for spec in KINDS.values()
                               if spec.behaviour == "leaf" and spec.name == spec.code.name.lower()}
EFO_TRAVEL_S = KINDS["road_blocker"].sim_efo_travel_s  # road blocker raising under emergency fast operation
LOCK_DELAY_S = 0.3  # folding gate: lock bolt engages this long after the closed limit is reached
MAX_RUN_FACTOR = 2.0  # travel not at its limit after this many nominal travel times is a fault
TOWARD_OPEN = -1
TOWARD_CLOSED = +1
EPSILON = 1e-9
FULL_TRAVEL = POSITION_CLOSED - POSITION_OPEN


class Leaf(Slot):
    """A gate, blocker or boom: POSITION 0 = fully open (passable) … 1000 = fully closed (blocking)."""

    def __init__(self, index: int, kind: Kind, now: float, position: int = POSITION_CLOSED,
                 travel_s: float | None = None, efo_travel_s: float | None = None, seed: int = 0) -> None:
        if kind not in TRAVEL_S:
            raise ValueError(f"kind {kind!r} is not a leaf device")
        if not POSITION_OPEN <= position <= POSITION_CLOSED:
            raise ValueError(f"position {position} outside {POSITION_OPEN}..{POSITION_CLOSED}")
        super().__init__(index, kind, now)
        self.pos = float(position)
        self.direction = 0
        self.drive_fault = False
        self.efo_active = False
        self.last_travel_ms = 0
        self.cycle_count = 0
        self.nominal_s = travel_s or TRAVEL_S[self.kind]  # its physics: a kind may travel faster (hal/kinds.py)
        self.efo_s = efo_travel_s or EFO_TRAVEL_S
        self._travel_s = self.nominal_s  # nominal time of the travel under way
        self._travel_start = now
        self._forced_target: float | None = None
        self._lost_limit: int | None = None  # limit_lost: TOWARD_OPEN / TOWARD_CLOSED switch reads not made
        self._panel_local = False
        is_gate_closed = self.kind == Kind.FOLDING_GATE and self.pos >= POSITION_CLOSED
        self.locked = is_gate_closed  # power-up: a closed gate stands locked
        self._closed_since: float | None = now - LOCK_DELAY_S if is_gate_closed else None
        self.condition = Condition(self.kind, self.faults, seed)  # wear, noise, hydraulics (sim_plc.condition)

    # ---- limit switches -----------------------------------------------------------------------
    def at_open(self) -> bool:
        return (self.pos <= POSITION_OPEN and self._lost_limit != TOWARD_OPEN) or self.has("stuck_limit_open")

    def at_closed(self) -> bool:
        return (self.pos >= POSITION_CLOSED and self._lost_limit != TOWARD_CLOSED) or self.has("stuck_limit_closed")

    # ---- scan ---------------------------------------------------------------------------------
    def scan(self, cond: Conditions) -> None:
        now = cond.now
        self._panel_local = cond.local_panel
        self._advance(now)
        self._latch_faults()
        if cond.watchdog_tripped and self.direction == TOWARD_OPEN:
            self._stop()  # fail secure: opening stops and holds, closing continues
        if cond.estop or self.has("manual_release"):
            self._stop()
        self.process_command(cond)
        if self._obstruction_applies() and self.has("obstruction") and self.direction == TOWARD_CLOSED:
            self._go(TOWARD_OPEN, now, self.nominal_s)  # safety reversal to fully open
        self._update_lock(now)

    def _advance(self, now: float) -> None:
        """Move the leaf for the time since the last scan; end travel at a limit or on max run."""
        dt = max(0.0, now - self._last)
        self._last = now
        if self._forced_target is not None:
            step = dt * FULL_TRAVEL / self.nominal_s
            delta = self._forced_target - self.pos
            self.pos = self._forced_target if abs(delta) <= step else self.pos + step * (1 if delta > 0 else -1)
        efo = self.under_efo()
        driven = self._drive(now, dt) if self.direction else 0.0
        self.condition.advance(dt, driven / FULL_TRAVEL, efo)

    def _drive(self, now: float, dt: float) -> float:
        """Travel for `dt` at the speed the device's condition allows; return the distance driven."""
        slowdown = self.condition.slowdown(self.under_efo(), self.nominal_s / self.efo_s)
        speed = FULL_TRAVEL / (self._travel_s * slowdown)
        before = self.pos
        if not self.has("stuck_motion") and self._forced_target is None:
            self.pos += self.direction * speed * dt
        end = POSITION_CLOSED if self.direction == TOWARD_CLOSED else POSITION_OPEN
        overshoot = (self.pos - end) * self.direction
        if overshoot >= -EPSILON:
            self.pos = float(end)
            self._complete(now - max(overshoot, 0.0) / speed)
        elif self.at_closed() if self.direction == TOWARD_CLOSED else self.at_open():
            self._complete(now)  # a limit switch reads made early: the PLC believes it arrived
        elif now - self._travel_start >= MAX_RUN_FACTOR * self._travel_s - EPSILON:
            self._stop()
            self.drive_fault = True
            self.latch_code(FaultCode.MAX_RUN_EXCEEDED)
        return abs(self.pos - before)

    def under_efo(self) -> bool:
        """Is the travel under way an emergency fast raise?"""
        return bool(self.direction) and self._travel_s == self.efo_s

    def _complete(self, arrival: float) -> None:
        self.last_travel_ms = max(0, round((arrival - self._travel_start) * 1000))
        self.cycle_count = (self.cycle_count + 1) & U32
        self.condition.cycle_completed()
        if self.pos >= POSITION_CLOSED:
            self._closed_since = arrival
        self.direction = 0

    def _latch_faults(self) -> None:
        if self.has("drive_fault"):
            self.drive_fault = True
            self.latch_code(self.faults["drive_fault"] or FaultCode.DRIVE_OVERLOAD)
            self._stop()  # a failed drive cannot move the leaf
        if self.at_open() and self.at_closed():
            self.drive_fault = True
            self.latch_code(FaultCode.LIMIT_SWITCH_FAULT)
            self._stop()
        if self.condition.low_pressure():
            self.latch_code(FaultCode.LOW_PRESSURE)
        if self.has("sensor_fault"):
            self.latch_code(FaultCode.SAFETY_SENSOR_FAULT)

    def _update_lock(self, now: float) -> None:
        if self.kind != Kind.FOLDING_GATE:
            return
        if self.pos < POSITION_CLOSED or self.direction or self._forced_target is not None:
            self.locked = False
            self._closed_since = None
            return
        if self._closed_since is None:
            self._closed_since = now
        if now - self._closed_since >= LOCK_DELAY_S - EPSILON:
            self.locked = True

    def _obstruction_applies(self) -> bool:
        return self.kind in (Kind.FOLDING_GATE, Kind.BOOM_BARRIER)

    # ---- motion -------------------------------------------------------------------------------
    def _go(self, direction: int, now: float, travel_s: float) -> None:
        """Start, continue, speed up or reverse travel toward one limit."""
        if self.direction == direction:
            if travel_s < self._travel_s:  # EFO during a normal raise: speed up
                self._travel_s = travel_s
                self._travel_start = now
                self.condition.travel_started()
            return
        if not self.direction and (self.at_closed() if direction == TOWARD_CLOSED else self.at_open()):
            return  # already standing at that limit: accepted, nothing to do
        if direction == TOWARD_OPEN:
            self.locked = False  # the lock releases before the gate starts to open
            self._closed_since = None
        self.direction = direction
        self._travel_s = travel_s
        self._travel_start = now
        self.condition.travel_started()

    def _stop(self) -> None:
        self.direction = 0

    # ---- commands -----------------------------------------------------------------------------
    def execute(self, command: int, cond: Conditions) -> AckResult:
        if self.is_local(cond) or self.has("manual_release"):
            return AckResult.REJECTED_LOCAL
        if command == Command.EFO:  # only LOCAL, MANUAL_RELEASE and ESTOP refuse EFO
            self.efo_active = True
            self._go(TOWARD_CLOSED, cond.now, self.efo_s)
            return AckResult.ACCEPTED
        if cond.watchdog_expired:
            return AckResult.REJECTED_WATCHDOG
        if self.drive_fault and command != Command.RESET:
            return AckResult.REJECTED_FAULT
        if command == Command.RESET:
            self._reset()
        elif command == Command.STOP:
            self._stop()
        elif command == Command.CLOSE:
            if self.kind == Kind.ROAD_BLOCKER and self.has("vehicle_present"):
                return AckResult.REJECTED_INTERLOCK
            if self._obstruction_applies() and self.has("obstruction"):
                return AckResult.REJECTED_INTERLOCK
            self._go(TOWARD_CLOSED, cond.now, self.nominal_s)
        elif command == Command.OPEN:
            self._go(TOWARD_OPEN, cond.now, self.nominal_s)
        return AckResult.ACCEPTED

    def _reset(self) -> None:
        """Clear latched faults whose cause is gone; RESET moves nothing."""
        if not (self.has("drive_fault") or (self.at_open() and self.at_closed())):
            self.drive_fault = False
        self.efo_active = False
        if not self._cause_active(self.fault_code):
            self.fault_code = FaultCode.NONE

    def _cause_active(self, code: int) -> bool:
        """Is the condition behind FAULT_CODE `code` still present?"""
        injected = self.faults.get("drive_fault") or FaultCode.DRIVE_OVERLOAD
        if self.has("drive_fault") and injected == code:
            return True
        if code == FaultCode.LOW_PRESSURE:
            return self.condition.low_pressure()
        if code == FaultCode.LIMIT_SWITCH_FAULT:
            return self.at_open() and self.at_closed()
        if code == FaultCode.SAFETY_SENSOR_FAULT:
            return self.has("sensor_fault")
        return False

    # ---- fault hooks --------------------------------------------------------------------------
    def fault_changed(self, fault: str, active: bool, now: float) -> None:
        self.condition.input_changed(fault, active)
        if fault == "forced_movement":
            if active:
                self._stop()
                self._forced_target = float(POSITION_OPEN if self.pos >= 500 else POSITION_CLOSED)
            else:
                self._forced_target = None
        elif fault == "limit_lost":
            nearer = TOWARD_CLOSED if self.pos >= (POSITION_OPEN + POSITION_CLOSED) / 2 else TOWARD_OPEN
            self._lost_limit = nearer if active else None

    # ---- image --------------------------------------------------------------------------------
    def status(self) -> int:
        bits = {
            Status.AT_OPEN: self.at_open(),
            Status.AT_CLOSED: self.at_closed(),
            Status.MOVING_OPEN: self.direction == TOWARD_OPEN,
            Status.MOVING_CLOSE: self.direction == TOWARD_CLOSED,
            Status.OBSTRUCTED: self.has("obstruction"),
            Status.VEHICLE_PRESENT: self.has("vehicle_present"),
            Status.DRIVE_FAULT: self.drive_fault,
            Status.LOCAL: self._panel_local or self.has("local"),
            Status.MANUAL_RELEASE: self.has("manual_release"),
            Status.EFO_ACTIVE: self.efo_active,
            Status.LOW_PRESSURE: self.condition.low_pressure(),
            Status.OIL_TEMP: self.condition.oil_out_of_range(),
            Status.LOCKED: self.locked,
            Status.SENSOR_FAULT: self.has("sensor_fault"),
        }
        value = 0
        for bit, on in bits.items():
            if on:
                value |= int(bit)
        return value

    def position(self) -> int:
        return int(round(self.pos))

    def analogs(self) -> tuple[int, int]:
        return self.condition.analogs(running=bool(self.direction), stalled=self.has("stuck_motion"))

    def travel_counters(self) -> tuple[int, int]:
        return self.last_travel_ms, self.cycle_count
