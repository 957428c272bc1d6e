"""A simulated road blocker's hydraulics: oil temperature with its tank heater, and the EFO accumulator."""

from __future__ import annotations

import math
from dataclasses import dataclass

# ---- oil ----------------------------------------------------------------------------------------
AMBIENT_DEFAULT_C = 20.0  # the site's air without an `ambient` input: the oil stays warm enough
OIL_TIME_CONSTANT_S = 2 * 3600.0  # the tank follows the ambient temperature with this time constant
HEATER_ON_BELOW_C = 10.0  # tank heater thermostat: on below this ...
HEATER_OFF_ABOVE_C = 12.0  # ... off above this
HEATER_RATE_C_PER_S = 30.0 / 3600  # a 1 kW heater in ~120 kJ/K of oil and steel: 30 °C per hour from cold
OIL_FULL_SPEED_C = 15.0  # at or above it the oil is thin enough for the nominal travel time
SLOWDOWN_PER_C = 0.02  # viscosity: travel time +2 % for each °C the oil is below OIL_FULL_SPEED_C
OIL_WORKING_RANGE_C = (0.0, 70.0)  # OIL_TEMP is set outside it
OIL_SUBSTEP_S = 10.0  # a long clock step is integrated in pieces so the thermostat switches in time

# ---- accumulator --------------------------------------------------------------------------------
NOMINAL_BAR = 160.0  # charged accumulator; the pump stops here
PUMP_CUT_IN_BAR = 150.0  # the pressure switch starts the pump below this
PUMP_RATE_BAR_S = 2.5  # recharge rate while the pump runs (a drawn-down accumulator: ~15 s)
MINIMUM_BAR = 100.0  # LOW_PRESSURE and FAULT_CODE 4 below it; an EFO raise is slower below it
PRECHARGE_BAR = 60.0  # gas precharge: at or below it the accumulator gives nothing, the pump alone drives
EFO_DRAW_BAR = 35.0  # what a full EFO raise takes from the accumulator
TRAVEL_DRAW_BAR = 2.0  # what an ordinary full travel takes


@dataclass
class Oil:
    """The tank's oil temperature: first-order toward the ambient, plus the heater while it runs."""

    temp_c: float = AMBIENT_DEFAULT_C
    heater_on: bool = False

    def advance(self, dt: float, ambient_c: float, heater_works: bool) -> None:
        while dt > 0:
            step = min(dt, OIL_SUBSTEP_S)
            self._thermostat(heater_works)
            settles_at = ambient_c + (HEATER_RATE_C_PER_S * OIL_TIME_CONSTANT_S if self.heater_on else 0.0)
            self.temp_c = settles_at + (self.temp_c - settles_at) * math.exp(-step / OIL_TIME_CONSTANT_S)
            dt -= step
        self._thermostat(heater_works)

    def _thermostat(self, heater_works: bool) -> None:
        if not heater_works or self.temp_c > HEATER_OFF_ABOVE_C:
            self.heater_on = False
        elif self.temp_c < HEATER_ON_BELOW_C:
            self.heater_on = True


def viscosity_factor(temp_c: float) -> float:
    """How many times the nominal travel time a travel takes with oil at `temp_c` (1.0 when warm)."""
    return 1.0 + SLOWDOWN_PER_C * max(0.0, OIL_FULL_SPEED_C - temp_c)


def oil_in_range(temp_c: float) -> bool:
    low, high = OIL_WORKING_RANGE_C
    return low <= temp_c <= high


@dataclass
class Accumulator:
    """The EFO accumulator: drawn by travel, recharged by a pump on a pressure switch, emptied by a leak."""

    bar: float = NOMINAL_BAR
    pump_on: bool = False

    def advance(self, dt: float, drawn_bar: float, leak_bar_s: float) -> None:
        self.bar = max(0.0, self.bar - drawn_bar)
        if self.bar < PUMP_CUT_IN_BAR:
            self.pump_on = True
        rate = (PUMP_RATE_BAR_S if self.pump_on else 0.0) - leak_bar_s
        self.bar = min(NOMINAL_BAR, max(0.0, self.bar + rate * dt))
        if self.bar >= NOMINAL_BAR:
            self.pump_on = False


def efo_pressure_factor(bar: float, pump_only_factor: float) -> float:
    """How many times its nominal time an EFO raise takes at accumulator pressure `bar`: 1.0 at or above
    the minimum, rising linearly to `pump_only_factor` (the pump alone, the ordinary travel) at the precharge."""
    if bar >= MINIMUM_BAR:
        return 1.0
    share = max(0.0, (bar - PRECHARGE_BAR) / (MINIMUM_BAR - PRECHARGE_BAR))
    return pump_only_factor - (pump_only_factor - 1.0) * share
