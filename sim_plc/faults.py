"""Fault injection: the catalogue of faults a test can switch on a simulated PLC, and the switch itself.

PLC-wide faults (no slot):
  estop           site emergency-stop chain open: PLC_STATUS.ESTOP, all travel stops, commands get 6
  mains_fail      running on UPS: PLC_STATUS.MAINS_FAIL
  cabinet_tamper  cabinet door open: PLC_STATUS.CABINET_TAMPER
  local_panel     cabinet key switch in LOCAL: PLC_STATUS.LOCAL_PANEL, every slot LOCAL, commands get 1
  frozen_logic    the PLC program hangs: heartbeat and every status register stop updating and commands
                  are not processed, while Modbus still answers (and still stores written registers)
  comms_silence   the PLC stops answering Modbus at all (requests are neither answered nor applied)
  watchdog_ignored
                  the PLC program ignores writes to WATCHDOG_TIMEOUT_MS: the write is acknowledged but
                  the register keeps its value (3000 at power-up), so a supervisor's read-back differs

Slot faults (need a slot; the kinds they apply to in brackets):
  local           the slot's key switch in LOCAL: STATUS.LOCAL, commands get 1            [all]
  lamp_fault      a lamp failed: the signal shows neither aspect, LAMP_FAULT and FAULT_CODE 7
                  latch until a RESET after the fault is cleared                        [signal]
  obstruction     photo-eye / safety edge: OBSTRUCTED, CLOSE gets 2, closing reverses     [gate, boom]
  vehicle_present presence loop occupied: VEHICLE_PRESENT (a blocker refuses CLOSE with 2) [leaves]
  drive_fault     drive/motor/pump failure: DRIVE_FAULT latched with FAULT_CODE `code`
                  (default 1; 1, 2, 3 or any profile code), travel impossible while active [leaves]
  manual_release  hand crank / manual pump engaged: MANUAL_RELEASE, drive stops, commands get 1 [leaves]
  low_pressure    the accumulator pressure reads and acts as `code` (0.1 bar, default 600) while
                  active: below 100 bar LOW_PRESSURE, FAULT_CODE 4 and a slower EFO; the accumulator
                  model underneath takes over again when it is cleared                 [blocker]
  oil_temp        the oil temperature reads and acts as `code` (0.1 °C signed, default 850) while
                  active: outside 0..70 °C OIL_TEMP; below 15 °C slower travel           [blocker]
  sensor_fault    loop detector / safety device failed self-test: SENSOR_FAULT, FAULT_CODE 8 [leaves]
  stuck_motion    drive runs (MOVING bit, stall current) but the leaf does not move, so the
                  travel ends in a max-run fault (FAULT_CODE 6) after twice its travel time [leaves]
  stuck_limit_open / stuck_limit_closed
                  that limit switch reads made whatever the position; with the other limit
                  also made the PLC latches DRIVE_FAULT with FAULT_CODE 5               [leaves]
  forced_movement the leaf is pushed toward the other limit (toward open if it stands in the
                  closed half, else toward closed) at its normal speed, with no command and
                  no MOVING bit; a forced gate loses its LOCKED bit                     [leaves]
  limit_lost      the limit switch at the limit the leaf stands at (the nearer one if it stands
                  between) reads not made, with no motion: position and drive unchanged  [leaves]

Condition inputs (slot; the physics is in sim_plc.condition and sim_plc.hydraulics, docs/sim-plc-physics.md):
  wear            each travel completed from now on adds `code` ppm (default 2000 = 0.2 %) of the
                  nominal travel time, LAST_TRAVEL_MS shows it and a gate's or boom's motor current
                  rises with it; clearing it stands for the repair (travel nominal again) [leaves]
  noise           measurement noise, seeded per PLC and slot (each injection replays the same
                  sequence): travel time σ `code` in 0.01 % (default 50 = 0.5 %), ANALOG_1 σ 0.1 A
                  or 0.5 bar, oil σ 0.1 °C, all clipped at 4 σ                         [leaves]
  ambient         the air around the tank is `code` (0.1 °C signed, default -200) instead of 20 °C:
                  the oil follows it with a 2 h time constant, the heater holds it near 10..12 °C
                                                                                        [blocker]
  heater_fault    the tank heater does not run                                          [blocker]
  leak            the accumulator loses `code` mbar/s (default 500); the pump (2.5 bar/s, on below
                  150 bar) makes up for a small leak and not for a large one            [blocker]

Clearing a fault (active=False) removes the input; latched bits stay until RESET, as on a real PLC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hal.profile import FaultCode, Kind
from sim_plc.condition import HYDRAULIC_KINDS
from sim_plc.errors import FaultError

if TYPE_CHECKING:
    from sim_plc.plant import SimPlc

LEAVES = frozenset({Kind.FOLDING_GATE, Kind.ROAD_BLOCKER, Kind.BOOM_BARRIER})
EVERY_KIND = frozenset(Kind)
BLOCKER = HYDRAULIC_KINDS  # a road blocker, and every registry kind that reports its KIND (spike strip)


@dataclass(frozen=True)
class FaultSpec:
    """One injectable fault: PLC-wide or per slot, which kinds, and what its `code` means."""

    name: str
    slot_kinds: frozenset[Kind] | None  # None: PLC-wide
    code_range: tuple[int, int] | None = None  # allowed `code` values; None: takes no code
    code_meaning: str = ""

    @property
    def plc_wide(self) -> bool:
        return self.slot_kinds is None


FAULTS: dict[str, FaultSpec] = {
    spec.name: spec
    for spec in (
        FaultSpec("estop", None),
        FaultSpec("mains_fail", None),
        FaultSpec("cabinet_tamper", None),
        FaultSpec("local_panel", None),
        FaultSpec("frozen_logic", None),
        FaultSpec("comms_silence", None),
        FaultSpec("watchdog_ignored", None),
        FaultSpec("local", EVERY_KIND),
        FaultSpec("lamp_fault", frozenset({Kind.TRAFFIC_SIGNAL})),
        FaultSpec("obstruction", frozenset({Kind.FOLDING_GATE, Kind.BOOM_BARRIER})),
        FaultSpec("vehicle_present", LEAVES),
        FaultSpec("drive_fault", LEAVES, (1, max(FaultCode)), "FAULT_CODE to latch (default 1)"),
        FaultSpec("manual_release", LEAVES),
        FaultSpec("low_pressure", BLOCKER, (0, 0xFFFF), "pressure in 0.1 bar (default 600)"),
        FaultSpec("oil_temp", BLOCKER, (-0x8000, 0x7FFF), "oil temperature in 0.1 °C, signed (default 850)"),
        FaultSpec("sensor_fault", LEAVES),
        FaultSpec("stuck_motion", LEAVES),
        FaultSpec("stuck_limit_open", LEAVES),
        FaultSpec("stuck_limit_closed", LEAVES),
        FaultSpec("forced_movement", LEAVES),
        FaultSpec("limit_lost", LEAVES),
        FaultSpec("wear", LEAVES, (1, 100_000), "travel time added per completed cycle in ppm (default 2000)"),
        FaultSpec("noise", LEAVES, (1, 1000), "travel time σ in 0.01 % (default 50)"),
        FaultSpec("ambient", BLOCKER, (-600, 600), "ambient temperature in 0.1 °C, signed (default -200)"),
        FaultSpec("heater_fault", BLOCKER),
        FaultSpec("leak", BLOCKER, (1, 0xFFFF), "accumulator leak in mbar/s (default 500)"),
    )
}
PLC_FAULTS = frozenset(name for name, spec in FAULTS.items() if spec.plc_wide)
SLOT_FAULTS = frozenset(name for name, spec in FAULTS.items() if not spec.plc_wide)


def inject(plc: SimPlc, fault: str, slot: int | None = None, active: bool = True, code: int | None = None) -> None:
    """Switch `fault` on or off; raise FaultError (naming what is wrong) for a request that cannot apply."""
    spec = FAULTS.get(fault)
    if spec is None:
        raise FaultError(f"unknown fault {fault!r}; known faults: {', '.join(sorted(FAULTS))}")
    if code is not None:
        if spec.code_range is None:
            raise FaultError(f"fault {fault!r} takes no code")
        low, high = spec.code_range
        if not low <= code <= high:
            raise FaultError(f"fault {fault!r}: code {code} outside {low}..{high} ({spec.code_meaning})")
    now = plc.clock.monotonic()
    if spec.plc_wide:
        if slot is not None:
            raise FaultError(f"fault {fault!r} is PLC-wide; give no slot")
        plc.set_plc_fault(fault, active)
        return
    if slot is None:
        raise FaultError(f"fault {fault!r} needs a slot (0..{len(plc.slots) - 1})")
    if not 0 <= slot < len(plc.slots):
        raise FaultError(f"PLC {plc.name!r} has no slot {slot}; slots are 0..{len(plc.slots) - 1}")
    target = plc.slots[slot]
    assert spec.slot_kinds is not None
    if target.kind not in spec.slot_kinds:
        kinds = ", ".join(k.name.lower() for k in sorted(spec.slot_kinds))
        raise FaultError(f"fault {fault!r} applies to {kinds}; slot {slot} is a {target.kind.name.lower()}")
    was_active = fault in target.faults
    if active:
        target.faults[fault] = code
    else:
        target.faults.pop(fault, None)
    if was_active != active:
        target.fault_changed(fault, active, now)


def active_faults(plc: SimPlc) -> list[dict[str, Any]]:
    """Every fault switched on, as {"plc", "fault", "slot", "code"} records."""
    found: list[dict[str, Any]] = [
        {"plc": plc.name, "fault": name, "slot": None, "code": None} for name in sorted(plc.plc_faults)
    ]
    for slot in plc.slots:
        found += [
            {"plc": plc.name, "fault": name, "slot": slot.index, "code": code}
            for name, code in sorted(slot.faults.items())
        ]
    return found
