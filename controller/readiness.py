"""EFO readiness of a road blocker: accumulator pressure and its idle decay, oil temperature, the last EFO time."""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

from config.schema import ConditionSection
from controller.devices import Device
from hal.kinds import KindSpec

READY, DEGRADED, NOT_READY, UNKNOWN = "ready", "degraded", "not_ready", "unknown"
SAMPLE_EVERY_S = 1.0  # idle pressure is sampled at most once a second for its decay
DECAY_WINDOW_S = 300.0  # the decay is the slope of the idle samples of the last five minutes
DECAY_MIN_SPAN_S = 120.0  # and is not judged on less than two minutes of standing still
RECHARGE_S = 30.0  # after an EFO raise the pump's recharge is awaited this long before low pressure is not ready


def has_efo(spec: KindSpec) -> bool:
    """A kind whose lockdown is an EFO raise (road blocker, spike strip): it has an accumulator and oil."""
    return spec.lockdown_verb == "efo"


def oil_c(device: Device) -> float | None:
    """A blocker's oil temperature from its latest good feedback (ANALOG_2, 0.1 °C); None for other kinds."""
    feedback = device.feedback
    if feedback is None or not has_efo(device.SPEC):
        return None
    return feedback.analog_2 / 10


@dataclass(frozen=True)
class Limits:
    """What a ready blocker looks like, from the site file's [condition] section."""

    nominal_bar: float
    min_bar: float
    max_decay_bar_per_min: float
    cold_limit_c: float
    efo_limit_ms: int

    @classmethod
    def of(cls, cfg: ConditionSection) -> Limits:
        return cls(cfg.accumulator_nominal_bar, cfg.accumulator_min_bar, cfg.accumulator_max_decay_bar_per_min,
                   cfg.oil_cold_limit_c, round(cfg.efo_limit_s * 1000))


@dataclass(frozen=True)
class Readiness:
    """ready / degraded / not_ready / unknown, with the reasons in words and the values they came from."""

    state: str
    reasons: tuple[str, ...]
    pressure_bar: float | None = None
    oil_c: float | None = None
    decay_bar_per_min: float | None = None

    def as_dict(self) -> dict:
        return {"state": self.state, "reasons": list(self.reasons), "pressure_bar": self.pressure_bar,
                "oil_c": self.oil_c, "decay_bar_per_min": self.decay_bar_per_min}


def unknown(why: str) -> Readiness:
    return Readiness(UNKNOWN, (why,))


def assess(limits: Limits, *, pressure_bar: float, oil: float, low_pressure: bool, oil_out_of_range: bool,
           decay_bar_per_min: float | None, last_efo: tuple[int, int] | None,
           recharging: bool = False) -> Readiness:
    """Readiness from one blocker's idle accumulator pressure, its decay, its oil, its STATUS bits and the last
    EFO raise (travel id, ms). `recharging`: an EFO raise drew the accumulator down less than RECHARGE_S ago,
    so pressure below the minimum (but above the PLC's LOW_PRESSURE) is degraded while the pump refills it, not
    a blocker that is not ready. Never consulted before securing: lockdown and EFO always go through."""
    not_ready: list[str] = []
    degraded: list[str] = []
    if low_pressure:
        not_ready.append("the PLC reports LOW_PRESSURE")
    if pressure_bar < limits.min_bar and recharging and not low_pressure:
        degraded.append(f"accumulator at {pressure_bar:.1f} bar, below the minimum {limits.min_bar:.1f} bar: "
                        f"recharging after the EFO")
    elif pressure_bar < limits.min_bar:
        not_ready.append(f"accumulator at {pressure_bar:.1f} bar, below the minimum {limits.min_bar:.1f} bar")
    elif pressure_bar < limits.nominal_bar:
        degraded.append(f"accumulator at {pressure_bar:.1f} bar, below nominal {limits.nominal_bar:.1f} bar"
                        + (": recharging after the EFO" if recharging else ""))
    if decay_bar_per_min is not None and decay_bar_per_min > limits.max_decay_bar_per_min:
        degraded.append(f"accumulator losing {decay_bar_per_min:.1f} bar/min while idle "
                        f"(more than {limits.max_decay_bar_per_min:.1f}): a leak?")
    if oil < limits.cold_limit_c:
        degraded.append(f"oil at {oil:.1f} °C, below the cold limit {limits.cold_limit_c:.1f} °C: EFO may be slow")
    if oil_out_of_range:
        degraded.append("the PLC reports the oil temperature outside its working range")
    if last_efo is not None and last_efo[1] > limits.efo_limit_ms:
        not_ready.append(f"the last EFO (travel {last_efo[0]}) took {last_efo[1] / 1000:.2f} s, over the "
                         f"{limits.efo_limit_ms / 1000:.2f} s limit")
    state = NOT_READY if not_ready else DEGRADED if degraded else READY
    return Readiness(state, tuple(not_ready + degraded), pressure_bar, oil, decay_bar_per_min)


class IdlePressure:
    """Accumulator pressure while the blocker stands still: the latest value and how fast it falls."""

    def __init__(self) -> None:
        self.latest: float | None = None
        self.decay_bar_per_min: float | None = None
        self._samples: deque[tuple[float, float]] = deque()
        self._last_at = float("-inf")

    def moving(self) -> None:
        """Travel uses the accumulator and the pump recharges it: the decay is measured afresh afterwards."""
        self._samples.clear()
        self._last_at = float("-inf")
        self.decay_bar_per_min = None

    @property
    def next_sample_at(self) -> float:
        """When add() next takes a sample for the decay (every reading before that only sets `latest`)."""
        return self._last_at + SAMPLE_EVERY_S

    def add(self, now: float, bar: float) -> None:
        self.latest = bar
        if now - self._last_at < SAMPLE_EVERY_S:
            return
        self._last_at = now
        self._samples.append((now, bar))
        while now - self._samples[0][0] > DECAY_WINDOW_S:
            self._samples.popleft()
        if now - self._samples[0][0] < DECAY_MIN_SPAN_S:
            self.decay_bar_per_min = None
            return
        times, values = zip(*self._samples, strict=True)
        self.decay_bar_per_min = -statistics.linear_regression(times, values).slope * 60
