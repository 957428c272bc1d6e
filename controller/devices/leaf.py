"""Leaf behaviour: two limits and a drive (folding gate, road blocker, spike strip, boom barrier)."""

from __future__ import annotations

from controller.devices.base import Device
from hal.kinds import KindSpec
from hal.profile import FAULT_CODE_MEANING, FaultCode, Status
from hal.snapshot import SlotSnapshot

LEAF_STATES = ("unknown", "open", "closed", "opening", "closing", "stopped", "fault", "local")


def fault_text(code: int, kind: KindSpec | None = None) -> str:
    """FAULT_CODE in words, for the kind that reported it."""
    try:
        meaning = FAULT_CODE_MEANING[FaultCode(code)]
    except ValueError:
        return f"fault code {code}, not in the PLC profile (check the PLC program)"
    if kind is not None and code not in kind.fault_codes:
        return f"fault code {code} ({meaning}), not a fault a {kind.word} reports (check the PLC program)"
    return meaning


# STATUS bits as plain ints (IntFlag operators cost several times an int's on the poll path)
_DRIVE_FAULT, _LOCAL, _MANUAL_RELEASE = int(Status.DRIVE_FAULT), int(Status.LOCAL), int(Status.MANUAL_RELEASE)
_MOVING_OPEN, _MOVING_CLOSE = int(Status.MOVING_OPEN), int(Status.MOVING_CLOSE)
_AT_OPEN, _AT_CLOSED = int(Status.AT_OPEN), int(Status.AT_CLOSED)
_LIMITS = _AT_OPEN | _AT_CLOSED


class LeafDevice(Device):
    """A device with an open and a closed limit that travels between them."""

    STATES = LEAF_STATES
    STATUS_BITS = Status
    LOCAL_BITS = int(Status.LOCAL | Status.MANUAL_RELEASE)
    TIMED_STATES = ("opening", "closing")

    def derive_state(self, slot: SlotSnapshot) -> tuple[str, str]:
        status = slot.status  # tested with int masks: this runs for every device on every poll
        if status & _DRIVE_FAULT or slot.fault_code:
            return "fault", f"PLC fault: {fault_text(slot.fault_code, self.SPEC)}"
        if status & _LIMITS == _LIMITS:
            return "fault", "both limit switches made"
        if status & _LOCAL:
            return "local", "slot under local control"
        if status & _MANUAL_RELEASE:
            return "local", "manual release engaged"
        if status & _MOVING_OPEN:
            return "opening", "drive running toward open"
        if status & _MOVING_CLOSE:
            return "closing", "drive running toward closed"
        if status & _AT_CLOSED:
            return "closed", "closed limit made"
        if status & _AT_OPEN:
            return "open", "open limit made"
        return "stopped", "between limits, drive stopped"
