"""Traffic signal: shows red or green; green is the opening command."""

from __future__ import annotations

from controller.devices.base import Device
from hal.profile import Kind, SignalCommand, SignalStatus
from hal.snapshot import SlotSnapshot



_LAMP_FAULT, _LOCAL = int(SignalStatus.LAMP_FAULT), int(SignalStatus.LOCAL)
_GREEN, _RED = int(SignalStatus.GREEN), int(SignalStatus.RED)

class TrafficSignal(Device):
    KIND = Kind.TRAFFIC_SIGNAL
    STATES = ("unknown", "red", "green", "fault", "local")
    STATUS_BITS = SignalStatus
    LOCAL_BITS = int(SignalStatus.LOCAL)
    VERBS = {"green": SignalCommand.GREEN, "red": SignalCommand.RED, "reset": SignalCommand.RESET}
    OPENING_VERBS = frozenset({"green"})
    SECURE_VERB = LOCKDOWN_VERB = "red"
    OPEN_VERB = "green"
    SECURED_STATE, OPEN_STATE = "red", "green"

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
