"""The device kinds as data: one entry per kind, read by the config schema, the controller, the CLI and sim-plc.

A kind that behaves like an existing one (two limits and a drive, or two lamp aspects) is one entry here
plus its simulated travel times; nothing else names kinds. Its profile code is what its PLC slot reports
(KIND): a spike strip reports 2, a road blocker's code, because it obeys the road blocker's commands,
STATUS bits and EFO.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from hal.profile import Command, FaultCode, Kind, SignalCommand, SignalStatus, Status

Behaviour = Literal["leaf", "signal"]

LEAF_VERBS = MappingProxyType({"open": Command.OPEN, "close": Command.CLOSE, "stop": Command.STOP,
                               "reset": Command.RESET})
LEAF_FAULTS = frozenset({FaultCode.DRIVE_OVERLOAD, FaultCode.DRIVE_OVER_TEMPERATURE, FaultCode.LIMIT_SWITCH_FAULT,
                         FaultCode.MAX_RUN_EXCEEDED, FaultCode.SAFETY_SENSOR_FAULT})
HYDRAULIC_FAULTS = LEAF_FAULTS | {FaultCode.PUMP_FAULT, FaultCode.LOW_PRESSURE}
# The alarm each STATUS bit of a leaf raises while it is set (alarm codes: controller/alarm_codes.py).
LEAF_ALARM_BITS = MappingProxyType({Status.SENSOR_FAULT: "SENSOR_FAULT", Status.LOCAL: "LOCAL_CONTROL",
                                    Status.MANUAL_RELEASE: "MANUAL_RELEASE"})
HYDRAULIC_ALARM_BITS = MappingProxyType({**LEAF_ALARM_BITS, Status.LOW_PRESSURE: "LOW_PRESSURE",
                                         Status.OIL_TEMP: "OIL_TEMP", Status.EFO_ACTIVE: "EFO_ACTIVE"})
# What each verb a person types does, for help texts.
VERB_HELP = MappingProxyType({
    "open": "open a device (a blocker: lower it)", "close": "close a device (a blocker: raise it)",
    "stop": "stop a device where it is", "raise": "raise a road blocker or spike strip",
    "lower": "lower a road blocker or spike strip", "green": "turn a traffic signal green",
    "red": "turn a traffic signal red", "reset": "clear a device's fault once its cause is gone (technician)",
})


@dataclass(frozen=True)
class KindSpec:
    """Everything barrierd, its CLI and sim-plc know of one device kind."""

    name: str  # as written in a site file
    code: Kind  # the KIND its PLC slot reports
    word: str  # for people
    behaviour: Behaviour
    lane_role: str  # the key of a [[lane]] it fills
    verbs: Mapping[str, int]  # what a person types -> COMMAND value
    opening_verbs: frozenset[str]  # what makes it passable
    secure_verb: str  # what a secure sequence sends
    lockdown_verb: str  # what a lockdown sends
    open_verb: str  # what an open sequence sends
    secured_state: str
    open_state: str
    fault_codes: frozenset[int]  # the FAULT_CODE values it can report
    alarm_bits: Mapping[int, str] = field(default_factory=dict)  # STATUS bit -> alarm code while set
    state_words: Mapping[str, str] = field(default_factory=dict)  # a state as a guard says it
    vehicle_interlocked: frozenset[str] = frozenset()  # verbs refused while the lane's loop reports a vehicle
    sim_travel_s: float = 0.0  # sim-plc: nominal travel time (0: not a leaf)
    sim_efo_travel_s: float = 0.0  # sim-plc: travel under EFO (0: no EFO)

    @property
    def valid_verbs(self) -> list[str]:
        """The verbs a person may type for it (EFO only comes from a lockdown)."""
        return [verb for verb in self.verbs if verb != "efo"]


def _leaf(name: str, code: Kind, word: str, role: str, travel_s: float) -> KindSpec:
    return KindSpec(name, code, word, "leaf", role, LEAF_VERBS, frozenset({"open"}), "close", "close", "open",
                    "closed", "open", LEAF_FAULTS, LEAF_ALARM_BITS, sim_travel_s=travel_s)


def _hydraulic(name: str, word: str, travel_s: float, efo_travel_s: float) -> KindSpec:
    return KindSpec(
        name, Kind.ROAD_BLOCKER, word, "leaf", "blocker",
        {**LEAF_VERBS, "raise": Command.CLOSE, "lower": Command.OPEN, "efo": Command.EFO},
        frozenset({"open", "lower"}), "raise", "efo", "lower", "closed", "open", HYDRAULIC_FAULTS,
        HYDRAULIC_ALARM_BITS, {"open": "lowered", "closed": "raised", "opening": "lowering", "closing": "raising"},
        frozenset({"close", "raise"}), sim_travel_s=travel_s, sim_efo_travel_s=efo_travel_s,
    )


KINDS: Mapping[str, KindSpec] = MappingProxyType({spec.name: spec for spec in (
    _leaf("folding_gate", Kind.FOLDING_GATE, "folding gate", "gate", 3.0),
    _hydraulic("road_blocker", "road blocker", 6.0, 1.5),
    _hydraulic("spike_strip", "spike strip", 1.0, 0.5),
    _leaf("boom_barrier", Kind.BOOM_BARRIER, "boom barrier", "boom", 2.0),
    KindSpec("traffic_signal", Kind.TRAFFIC_SIGNAL, "traffic signal", "signal", "signal",
             {"green": SignalCommand.GREEN, "red": SignalCommand.RED, "reset": SignalCommand.RESET},
             frozenset({"green"}), "red", "red", "green", "red", "green", frozenset({FaultCode.LAMP_FAULT}),
             {SignalStatus.LAMP_FAULT: "LAMP_FAULT", SignalStatus.LOCAL: "LOCAL_CONTROL"}),
)})
LANE_ROLES = tuple(dict.fromkeys(spec.lane_role for spec in KINDS.values()))
ALL_VERBS = tuple(dict.fromkeys(verb for spec in KINDS.values() for verb in spec.valid_verbs))
