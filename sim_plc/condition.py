"""A leaf's physical condition on the sim's clock: drive wear, measurement noise and (blockers) hydraulics.

It reads the slot's injected inputs (sim_plc.faults) live: `wear`, `noise`, and for hydraulic kinds
`ambient`, `heater_fault`, `leak`, and the `low_pressure` / `oil_temp` overrides. Without any of them a
device keeps its nominal travel time and its analogs stay in range.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from hal.kinds import KINDS
from hal.profile import Kind
from sim_plc import hydraulics
from sim_plc.hydraulics import Accumulator, Oil

# Kinds with a blocker's hydraulics: every registry kind that takes EFO reports one of these codes.
HYDRAULIC_KINDS = frozenset(spec.code for spec in KINDS.values() if "efo" in spec.verbs)

WEAR_DEFAULT_PPM = 2000  # `wear` without a code: each completed cycle adds 0.2 % to the travel time
NOISE_DEFAULT_BP = 50  # `noise` without a code: travel time σ 0.50 % (in 0.01 % units)
NOISE_CLIP_SIGMAS = 4.0  # a drawn deviation never exceeds this many σ
# Analog noise σ under `noise`, in register counts: 0.1 A, 0.5 bar, 0.1 °C.
CURRENT_NOISE, PRESSURE_NOISE, OIL_NOISE = 1.0, 5.0, 1.0
AMBIENT_INPUT_DEFAULT = -200  # `ambient` without a code: -20.0 °C (0.1 °C)
LEAK_DEFAULT_MBAR_S = 500  # `leak` without a code: 0.5 bar/s
LOW_PRESSURE_DEFAULT = 600  # `low_pressure` without a code: 60.0 bar (0.1 bar)
OIL_TEMP_DEFAULT = 850  # `oil_temp` without a code: 85.0 °C (0.1 °C)

# Gate and boom motor current, 0.1 A: running free, and stalled (the ceiling wear can reach).
MOTOR_CURRENT = {Kind.FOLDING_GATE: 42, Kind.BOOM_BARRIER: 28}
STALL_CURRENT = {Kind.FOLDING_GATE: 95, Kind.BOOM_BARRIER: 70}


class Condition:
    """Wear, noise, oil and accumulator of one leaf slot; `inputs` is the slot's live fault dict."""

    def __init__(self, kind: Kind, inputs: Mapping[str, int | None], seed: int) -> None:
        self.kind = kind
        self.hydraulic = kind in HYDRAULIC_KINDS
        self.inputs = inputs
        self.oil = Oil()
        self.accumulator = Accumulator()
        self.wear = 0.0  # fraction added to the travel time by the cycles run under `wear`
        self._seed = seed
        self._travel_rng = random.Random(seed)  # one draw per travel: the same sequence at any scan rate
        self._reading_rng = random.Random(seed + 1)
        self._jitter = 1.0
        self._reading_noise = (0.0, 0.0)

    def _input(self, name: str, default: int) -> int:
        value = self.inputs.get(name)
        return default if value is None else value

    # ---- time ---------------------------------------------------------------------------------
    def advance(self, dt: float, travelled: float, efo: bool) -> None:
        """Let `dt` seconds pass, in which the drive moved `travelled` of a full travel (under EFO or not)."""
        if self.hydraulic:
            drawn = travelled * (hydraulics.EFO_DRAW_BAR if efo else hydraulics.TRAVEL_DRAW_BAR)
            leak = self._input("leak", LEAK_DEFAULT_MBAR_S) / 1000 if "leak" in self.inputs else 0.0
            self.accumulator.advance(dt, drawn, leak)
            ambient = (self._input("ambient", AMBIENT_INPUT_DEFAULT) / 10 if "ambient" in self.inputs
                       else hydraulics.AMBIENT_DEFAULT_C)
            self.oil.advance(dt, ambient, heater_works="heater_fault" not in self.inputs)
        if "noise" in self.inputs:
            first, second = (CURRENT_NOISE, 0.0) if not self.hydraulic else (PRESSURE_NOISE, OIL_NOISE)
            self._reading_noise = (self._gauss(self._reading_rng, first), self._gauss(self._reading_rng, second))
        else:
            self._reading_noise = (0.0, 0.0)

    @staticmethod
    def _gauss(rng: random.Random, sigma: float) -> float:
        limit = NOISE_CLIP_SIGMAS * sigma
        return max(-limit, min(limit, rng.gauss(0.0, sigma)))

    def travel_started(self) -> None:
        """A travel starts (or changes speed or direction): draw its own deviation under `noise`."""
        if "noise" in self.inputs:
            self._jitter = 1.0 + self._gauss(self._travel_rng, self._input("noise", NOISE_DEFAULT_BP) / 10_000)
        else:
            self._jitter = 1.0

    def cycle_completed(self) -> None:
        if "wear" in self.inputs:
            self.wear += self._input("wear", WEAR_DEFAULT_PPM) / 1_000_000

    def input_changed(self, name: str, active: bool) -> None:
        if name == "wear" and not active:
            self.wear = 0.0  # clearing `wear` stands for the repair
        elif name == "noise" and active:  # every injection replays the same sequence
            self._travel_rng.seed(self._seed)
            self._reading_rng.seed(self._seed + 1)

    # ---- effects ------------------------------------------------------------------------------
    def slowdown(self, efo: bool, pump_only_factor: float) -> float:
        """How many times its nominal time the travel under way takes, as things stand now."""
        factor = (1.0 + self.wear) * self._jitter
        if self.hydraulic:
            factor *= hydraulics.viscosity_factor(self.oil_c())
            if efo:
                factor *= hydraulics.efo_pressure_factor(self.pressure_bar(), pump_only_factor)
        return factor

    def pressure_bar(self) -> float:
        if "low_pressure" in self.inputs:
            return self._input("low_pressure", LOW_PRESSURE_DEFAULT) / 10
        return self.accumulator.bar

    def oil_c(self) -> float:
        if "oil_temp" in self.inputs:
            return self._input("oil_temp", OIL_TEMP_DEFAULT) / 10
        return self.oil.temp_c

    def low_pressure(self) -> bool:
        return self.hydraulic and self.pressure_bar() < hydraulics.MINIMUM_BAR

    def oil_out_of_range(self) -> bool:
        return self.hydraulic and not hydraulics.oil_in_range(self.oil_c())

    def analogs(self, running: bool, stalled: bool) -> tuple[int, int]:
        """ANALOG_1 and ANALOG_2 in register units (ANALOG_2 signed, before two's complement)."""
        noise_1, noise_2 = self._reading_noise
        if self.hydraulic:
            if "low_pressure" in self.inputs:  # an override reads exactly what was injected
                pressure = self._input("low_pressure", LOW_PRESSURE_DEFAULT)
            else:
                pressure = max(0, round(self.accumulator.bar * 10 + noise_1))
            if "oil_temp" in self.inputs:
                oil = self._input("oil_temp", OIL_TEMP_DEFAULT)
            else:
                oil = round(self.oil.temp_c * 10 + noise_2)
            return pressure, oil
        if not running:
            return 0, 0
        if stalled:
            return STALL_CURRENT[self.kind], 0
        current = min(MOTOR_CURRENT[self.kind] * (1.0 + self.wear), STALL_CURRENT[self.kind])
        return max(0, round(current + noise_1)), 0
