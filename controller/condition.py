"""Condition monitoring of each travelling device: every travel timed and stored, drift, cycles and service, EFO readiness."""

from __future__ import annotations

import statistics
import time
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

import structlog

from config.schema import SiteConfig
from controller.alarms import AlarmBoard
from controller.devices import Device
from controller.drift import Track
from controller.readiness import NOT_READY, RECHARGE_S, IdlePressure, Limits, Readiness, assess, has_efo, unknown
from controller.storage import Storage
from controller.travel_log import Mark, Travel, TravelLog
from hal.profile import Status
from hal.snapshot import SlotSnapshot

log = structlog.get_logger("controller.condition")

HISTORY = 50  # recent travel times kept per direction for the health view
DIRECTIONS = ("open", "closed", "efo")  # an EFO raise is timed apart from an ordinary raise
DRIFT_CODES = ("TRAVEL_DRIFT", "CURRENT_DRIFT", "PRESSURE_DRIFT")
_MOVING = int(Status.MOVING_OPEN | Status.MOVING_CLOSE)
_AT_OPEN, _AT_CLOSED, _MOVING_CLOSE = int(Status.AT_OPEN), int(Status.AT_CLOSED), int(Status.MOVING_CLOSE)
_EFO_ACTIVE, _LOW_PRESSURE, _OIL_TEMP = int(Status.EFO_ACTIVE), int(Status.LOW_PRESSURE), int(Status.OIL_TEMP)
_CLOSING_VERBS = frozenset({"close", "raise", "efo"})
NO_CONDITIONS: Mapping[str, str] = {}


class NotMonitored(Exception):
    """A request about a device condition monitoring does not cover, or cannot answer yet."""

    def __init__(self, rule: str, message: str):
        self.rule = rule
        super().__init__(message)


CALM_MARGIN_S = 0.001  # a calm period ends this early: the whole path decides a reading at the edge
MAX_TRAVEL_SAMPLES = 3000  # ANALOG_1 samples kept per travel: five minutes of polls at 10 Hz


@dataclass
class _Under:
    """A travel under way as barrierd saw it: when, the STATUS before it, ANALOG_1 on each poll."""

    started: float
    status_before: int
    samples: list[int]


class DeviceCondition:
    """The condition of one device with two limits: fed every good reading, it keeps its conditions current."""

    def __init__(self, device: Device, cfg: SiteConfig, travel_log: TravelLog, alarms: AlarmBoard):
        self.device = device
        self.name = device.name
        self._cfg = cfg.condition
        self._log = travel_log
        self._alarms = alarms
        self.service_interval = cfg.service_cycles(device.cfg)
        self.efo = has_efo(device.SPEC)
        self.limits = Limits.of(cfg.condition)
        self.tracks: dict[str, Track] = {}  # "travel_ms:closed", "analog_1:open", ... made on first use
        # direction -> (travel id, ms), oldest first; a deque made on first use (an empty one holds a 0.5 kB block)
        self.history: defaultdict[str, deque[tuple[int, int]]] = defaultdict(partial(deque, maxlen=HISTORY))
        self.conditions: dict[str, str] = {}
        self.last: SlotSnapshot | None = None
        self.cycle_count: int | None = None
        self._under: _Under | None = None
        self._arrived_at = float("-inf")  # loop time of the last completed travel
        self._efo_at = float("-inf")  # loop time of the last EFO raise barrierd saw completed
        self.pressure = IdlePressure()
        self.readiness: Readiness | None = unknown("not read yet") if self.efo else None
        self._assessed: tuple | None = None  # the inputs of the readiness last assessed
        self.service = travel_log.last_mark(self.name, "service")
        self.baseline_reset = travel_log.last_mark(self.name, "baseline_reset")
        self.last_efo: tuple[int, int] | None = None
        self._restore()

    # ----- what survives a restart --------------------------------------------------------------

    def _restore(self) -> None:
        """Baselines from their table; the values collected since the last reset and the recent windows from the
        stored travels; the last EFO unless a service came after it."""
        for metric, value in self._log.baselines(self.name).items():
            self._track(metric).restore(value)
        since = self.baseline_reset.ts if self.baseline_reset else 0.0
        for travel in self._log.travels(self.name, since_ts=since):
            self._learn(travel, restoring=True)
        for travel in self._log.travels(self.name, last=HISTORY * len(DIRECTIONS)):
            self.history[_direction(travel)].append((travel.id, travel.plc_ms))
        efo = self._log.last_efo(self.name)
        if efo is not None and (self.service is None or efo.ts > self.service.ts):
            self.last_efo = (efo.id, efo.plc_ms)

    def _track(self, metric: str) -> Track:
        if (track := self.tracks.get(metric)) is None:
            track = self.tracks[metric] = Track(self._cfg.baseline_travels, self._cfg.recent_travels)
        return track

    # ----- readings -----------------------------------------------------------------------------

    def observe(self, slot: SlotSnapshot | None, now: float) -> Travel | None:
        """One reading (None: no valid data; what is known is kept, readiness is unknown); the travel it
        completed, if any."""
        if slot is None:
            if self.efo:
                self.readiness = unknown("no valid data from the PLC")
                self._assessed = None
                self.pressure = IdlePressure()  # what was read before the gap is no reading of now
            return None
        previous, self.last = self.last, slot
        first = self.cycle_count is None
        self.cycle_count = slot.cycle_count
        moving = slot.status & _MOVING
        if moving:
            if self._under is None:
                self._under = _Under(now, previous.status if previous is not None else slot.status, [])
            if len(self._under.samples) < MAX_TRAVEL_SAMPLES:  # a MOVING bit stuck on must not grow it for good
                self._under.samples.append(slot.analog_1)
        travel = None
        if previous is not None and (slot.cycle_count != previous.cycle_count or (
                slot.last_travel_ms != previous.last_travel_ms and slot.status & (_AT_OPEN | _AT_CLOSED))):
            travel = self._completed(previous, slot, now)
        if not moving:
            self._under = None
        changed = self._assess(slot, now) if self.efo else False
        if travel is not None or changed or first:
            self._update_conditions()
        return travel

    def calm_until(self, now: float) -> float:
        """After a reading at `now` of a device at rest: until when the same slot read again changes nothing
        here (the next idle pressure sample, the end of an EFO's recharge window), or 0.0 if travelling."""
        if self._under is not None:
            return 0.0
        if not self.efo:
            return float("inf")
        until = self.pressure.next_sample_at
        if now - self._efo_at < RECHARGE_S:
            until = min(until, self._efo_at + RECHARGE_S)
        return until - CALM_MARGIN_S

    def _completed(self, previous: SlotSnapshot, slot: SlotSnapshot, now: float) -> Travel:
        """Store the travel the PLC reports completed, check it against its limit, learn from it."""
        delta = slot.cycle_count - previous.cycle_count
        cycles = max(1, delta if delta >= 0 else slot.cycle_count)  # below 0: the PLC's counter restarted
        status = slot.status
        if status & (_AT_OPEN | _AT_CLOSED):
            to_state = "closed" if status & _AT_CLOSED else "open"
        else:  # already left the limit again: the way it was going
            to_state = "closed" if previous.status & _MOVING_CLOSE else "open"
        before = self._under.status_before if self._under is not None else previous.status
        intent = self.device.intent
        commanded = (intent is not None and intent.loop_at > self._arrived_at and cycles == 1
                     and (to_state == "closed") == (intent.verb in _CLOSING_VERBS)
                     and (intent.verb in _CLOSING_VERBS or intent.verb in self.device.OPENING_VERBS))
        efo = self.efo and to_state == "closed" and (
            bool(status & _EFO_ACTIVE and not before & _EFO_ACTIVE) or (commanded and intent.verb == "efo"))
        samples = self._under.samples if self._under is not None else []
        travel = self._log.append(Travel(
            device=self.name, ts=time.time(), to_state=to_state, efo=efo, plc_ms=slot.last_travel_ms,
            command_ms=round((now - intent.loop_at) * 1000) if commanded else None,
            analog_1=slot.analog_1, analog_2=slot.analog_2,
            travel_analog_1=statistics.median(samples) if samples else None,
            cycle_count=slot.cycle_count, cycles=cycles))
        self._arrived_at = now
        if efo:
            self._efo_at = now
        log.info("travel_recorded", device=self.name, travel=travel.id, to_state=to_state, efo=efo,
                 plc_ms=travel.plc_ms, command_ms=travel.command_ms)
        self._check_limit(travel)
        self._learn(travel)
        return travel

    def _check_limit(self, travel: Travel) -> None:
        """EFO raises against the site's EFO limit, other travels against the device's travel_s + tolerance."""
        if travel.plc_ms <= 0:
            return  # LAST_TRAVEL_MS 0: no travel timed
        limit_ms = self._limit_ms(travel.efo)
        if travel.plc_ms > limit_ms:
            what = "EFO limit" if travel.efo else (
                f"travel limit (travel_s {self.device.cfg.travel_s:.2f} s + {self._cfg.travel_tolerance:.0%})")
            self._alarms.raise_alarm(
                "EFO_SLOW" if travel.efo else "TRAVEL_SLOW", self.name,
                f"travel {travel.id} to {self.device.shown(travel.to_state)}{' (EFO)' if travel.efo else ''} took "
                f"{travel.plc_ms / 1000:.2f} s, over the {limit_ms / 1000:.2f} s {what}")

    def _limit_ms(self, efo: bool) -> int:
        if efo:
            return self.limits.efo_limit_ms
        return round(self.device.cfg.travel_s * (1 + self._cfg.travel_tolerance) * 1000)

    def _learn(self, travel: Travel, restoring: bool = False) -> None:
        key = _direction(travel)
        if not restoring:
            self.history[key].append((travel.id, travel.plc_ms))
        if travel.plc_ms > 0:
            self._feed(f"travel_ms:{key}", travel.plc_ms, restoring)
        if travel.travel_analog_1 is not None:
            self._feed(f"analog_1:{key}", travel.travel_analog_1, restoring)
        if travel.efo and not restoring:
            self.last_efo = (travel.id, travel.plc_ms)

    def _feed(self, metric: str, value: float, restoring: bool) -> None:
        track = self._track(metric)
        if track.add(value):
            self._log.save_baseline(self.name, metric, track.baseline)
            if not restoring:
                log.info("baseline_set", device=self.name, metric=metric, value=track.baseline)

    def _assess(self, slot: SlotSnapshot, now: float) -> bool:
        """The blocker's EFO readiness from this reading; True when its state changed."""
        if slot.status & _MOVING or self._under is not None:
            self.pressure.moving()  # pressure while travelling says nothing of the accumulator at rest
        else:
            self.pressure.add(now, slot.analog_1 / 10)
        recharging = now - self._efo_at < RECHARGE_S
        # assess() reads nothing else: with the same inputs (a blocker at rest on an unchanged block, between
        # the pressure samples of its decay) its answer is the one it gave
        inputs = (self.pressure.latest, self.pressure.decay_bar_per_min, slot, self.last_efo, recharging)
        if inputs == self._assessed:
            return False
        self._assessed = inputs
        if self.pressure.latest is None:
            readiness = unknown("no idle accumulator pressure read yet")
        else:
            readiness = assess(self.limits, pressure_bar=self.pressure.latest, oil=slot.analog_2 / 10,
                               low_pressure=bool(slot.status & _LOW_PRESSURE),
                               oil_out_of_range=bool(slot.status & _OIL_TEMP),
                               decay_bar_per_min=self.pressure.decay_bar_per_min, last_efo=self.last_efo,
                               recharging=recharging)
        before, self.readiness = self.readiness, readiness
        if before is None or before.state != readiness.state:
            log.info("efo_readiness", device=self.name, from_state=before.state if before else None,
                     to_state=readiness.state, reasons=list(readiness.reasons))
            return True
        return False

    # ----- conditions ---------------------------------------------------------------------------

    def _update_conditions(self) -> None:
        found: dict[str, str] = {}
        slow = self._drifts("travel_ms", lambda d: d > self._cfg.travel_drift)
        if slow:
            found["TRAVEL_DRIFT"] = "; ".join(slow)
        if self.efo:
            low = self._drifts("analog_1", lambda d: d < -self._cfg.analog_drift)
            if low:
                found["PRESSURE_DRIFT"] = "; ".join(low)
        else:
            high = self._drifts("analog_1", lambda d: d > self._cfg.analog_drift)
            if high:
                found["CURRENT_DRIFT"] = "; ".join(high)
        if self.service_due:
            found["SERVICE_DUE"] = (f"{self.cycles_since_service} travels since "
                                    f"{'the last service' if self.service else 'commissioning'}; "
                                    f"the interval is {self.service_interval}")
        if self.readiness is not None and self.readiness.state == NOT_READY:
            found["EFO_NOT_READY"] = "; ".join(self.readiness.reasons)
        self.conditions = found

    def _drifts(self, measure: str, beyond) -> list[str]:
        """Each direction whose recent median is beyond the margin from its baseline, in words."""
        words = []
        for key in DIRECTIONS:
            track = self.tracks.get(f"{measure}:{key}")
            drift = track.drift() if track is not None else None
            if drift is None or not beyond(drift):
                continue
            assert track is not None and track.baseline is not None and track.recent_median is not None
            way = f"travels to {self.device.shown(key)}" if key != "efo" else "EFO raises"
            what, unit, scale = _MEASURES[measure] if measure == "travel_ms" else _MEASURES[
                "pressure" if self.efo else "current"]
            words.append(f"{way}: {what} median of the last {len(track.recent)} {track.recent_median / scale:.2f} "
                         f"{unit}, {abs(drift) * 100:.0f} % {'over' if drift > 0 else 'under'} the baseline "
                         f"{track.baseline / scale:.2f} {unit}")
        return words

    @property
    def cycles_since_service(self) -> int | None:
        if self.cycle_count is None:
            return None
        at_service = self.service.cycle_count if self.service is not None and self.service.cycle_count else 0
        return self.cycle_count - at_service if self.cycle_count >= at_service else self.cycle_count

    @property
    def service_due(self) -> bool:
        since = self.cycles_since_service
        return self.service_interval is not None and since is not None and since >= self.service_interval

    # ----- a technician's marks -----------------------------------------------------------------

    def reset_baseline(self, by: str, reason: str) -> Mark:
        mark = Mark(self.name, "baseline_reset", time.time(), by, reason, self.cycle_count)
        self._log.add_mark(mark)  # the stored baselines go with it
        self.baseline_reset = mark
        for track in self.tracks.values():
            track.reset()
        for code in DRIFT_CODES:
            self._alarms.clear(code, self.name)
        self._update_conditions()
        self.device.stir()  # its conditions changed: the next reading syncs them
        return mark

    def record_service(self, by: str, reason: str) -> Mark:
        if self.cycle_count is None:
            raise NotMonitored("data_not_valid", f"{self.name}: no CYCLE_COUNT read from its PLC yet; nothing recorded")
        mark = Mark(self.name, "service", time.time(), by, reason, self.cycle_count)
        self._log.add_mark(mark)
        self.service = mark
        self.last_efo = None  # an EFO before the service says nothing of the blocker after it
        self._alarms.clear("SERVICE_DUE", self.name)
        self._update_conditions()
        self.device.stir()  # its conditions and readiness's inputs changed: the next reading assesses them
        return mark

    # ----- views --------------------------------------------------------------------------------

    def brief(self) -> dict:
        """For the status: cycles, service, readiness, the drift alarms' codes."""
        return {"cycles": self.cycle_count, "cycles_since_service": self.cycles_since_service,
                "service_cycles": self.service_interval, "service_due": self.service_due,
                "readiness": self.readiness.as_dict() if self.readiness is not None else None,
                "drift": [code for code in DRIFT_CODES if code in self.conditions]}

    def health(self) -> dict:
        """Everything a health view draws: recent travel times, baselines, limits, cycles, service, readiness."""
        directions = {}
        for key in DIRECTIONS:
            limit_ms = self._limit_ms(key == "efo")
            timing = self.tracks.get(f"travel_ms:{key}")
            baseline = timing.baseline if timing is not None else None
            directions[key] = {
                "recent_ms": [ms for _, ms in self.history.get(key, ())],
                "recent_ids": [i for i, _ in self.history.get(key, ())],
                "limit_ms": limit_ms,
                "drift_warn_ms": baseline * (1 + self._cfg.travel_drift) if baseline is not None else None,
                "timing": timing.as_dict() if timing is not None else None,
                "analog_1": (analog.as_dict() if (analog := self.tracks.get(f"analog_1:{key}")) else None),
            }
        return {"name": self.name, "kind": self.device.cfg.kind, **self.brief(),
                "analog_1_unit": "0.1 bar" if self.efo else "0.1 A", "directions": directions,
                "last_service": self.service.as_dict() if self.service else None,
                "baseline_reset": self.baseline_reset.as_dict() if self.baseline_reset else None,
                "conditions": dict(self.conditions)}


_MEASURES = {"travel_ms": ("travel time", "s", 1000), "current": ("motor current", "A", 10),
             "pressure": ("pressure", "bar", 10)}


def _direction(travel: Travel) -> str:
    return "efo" if travel.efo else travel.to_state


class ConditionMonitor:
    """Every travelling device's condition, the travels table beneath them; signals are not monitored."""

    def __init__(self, cfg: SiteConfig, devices: Mapping[str, Device], storage: Storage, alarms: AlarmBoard):
        self.log = TravelLog(storage, cfg.condition.travel_rows_per_device)
        self.devices = {name: DeviceCondition(device, cfg, self.log, alarms)
                        for name, device in devices.items() if device.SPEC.behaviour == "leaf"}

    def observe(self, device: str, slot: SlotSnapshot | None, now: float) -> Mapping[str, str]:
        """Feed one reading; the device's condition alarms (code -> reason)."""
        watched = self.devices.get(device)
        if watched is None:
            return NO_CONDITIONS
        watched.observe(slot, now)
        return watched.conditions

    def of(self, device: str) -> DeviceCondition:
        if (watched := self.devices.get(device)) is None:
            raise NotMonitored("not_monitored", f"{device} does not travel between limits: it has no condition "
                                                f"to monitor")
        return watched

    def device_view(self, device: str) -> dict:
        """What the status adds to a device: its readiness (blockers), cycles and service."""
        watched = self.devices.get(device)
        if watched is None:
            return {"readiness": None}
        return {"readiness": watched.readiness.as_dict() if watched.readiness else None,
                "cycles": watched.cycle_count, "service_due": watched.service_due}

    def summary(self) -> dict:
        return {name: watched.brief() for name, watched in self.devices.items()}

    def health(self) -> dict:
        return {"devices": [watched.health() for watched in self.devices.values()]}

