"""Signal behaviour: shows red or green (a lamp fault, or local control); the traffic signal kind."""

from __future__ import annotations

from controller.devices.base import Device
from hal.profile import SignalStatus
from hal.snapshot import SlotSnapshot



_LAMP_FAULT, _LOCAL = int(SignalStatus.LAMP_FAULT), int(SignalStatus.LOCAL)
_GREEN, _RED = int(SignalStatus.GREEN), int(SignalStatus.RED)

class TrafficSignal(Device):
    STATES = ("unknown", "red", "green", "fault", "local")
    STATUS_BITS = SignalStatus
    LOCAL_BITS = int(SignalStatus.LOCAL)

    def derive_state(self, slot: SlotSnapshot) -> tuple[str, str]:
        status = slot.status  # int masks: every signal on every poll
        if status & _LAMP_FAULT:
            return "fault", "lamp fault"
        if status & _LOCAL:
            return "local", "signal under local control"
        green, red = bool(status & _GREEN), bool(status & _RED)
        if green and not red:
            return "green", "green shown"
        if red and not green:
            return "red", "red shown"
        return "unknown", "signal shows neither or both aspects without a lamp fault"
