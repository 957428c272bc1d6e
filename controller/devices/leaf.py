"""Feedback rules shared by the leaf kinds (folding gate, road blocker, boom barrier)."""

from __future__ import annotations

from typing import ClassVar

from controller.devices.base import Device
from hal.profile import FAULT_CODE_MEANING, Command, FaultCode, Status
from hal.snapshot import SlotSnapshot

LEAF_STATES = ("unknown", "open", "closed", "opening", "closing", "stopped", "fault", "local")


def fault_text(code: int) -> str:
    try:
        return FAULT_CODE_MEANING[FaultCode(code)]
    except ValueError:
        return f"unknown fault code {code}"


class LeafDevice(Device):
    """A device with an open and a closed limit that travels between them."""

    STATES = LEAF_STATES
    STATUS_BITS = Status
    LOCAL_BITS = Status.LOCAL | Status.MANUAL_RELEASE
    TIMED_STATES = ("opening", "closing")
    VERBS: ClassVar[dict[str, int]] = {
        "open": Command.OPEN,
        "close": Command.CLOSE,
        "stop": Command.STOP,
        "reset": Command.RESET,
    }
    OPENING_VERBS = frozenset({"open"})
    SECURE_VERB = LOCKDOWN_VERB = "close"
    OPEN_VERB = "open"
    SECURED_STATE, OPEN_STATE = "closed", "open"

    def derive_state(self, slot: SlotSnapshot) -> tuple[str, str]:
        status = Status(slot.status)
        if Status.DRIVE_FAULT in status or slot.fault_code:
            return "fault", f"PLC fault: {fault_text(slot.fault_code)}"
        if Status.AT_OPEN in status and Status.AT_CLOSED in status:
            return "fault", "both limit switches made"
        if Status.LOCAL in status:
            return "local", "slot under local control"
        if Status.MANUAL_RELEASE in status:
            return "local", "manual release engaged"
        if Status.MOVING_OPEN in status:
            return "opening", "drive running toward open"
        if Status.MOVING_CLOSE in status:
            return "closing", "drive running toward closed"
        if Status.AT_CLOSED in status:
            return "closed", "closed limit made"
        if Status.AT_OPEN in status:
            return "open", "open limit made"
        return "stopped", "between limits, drive stopped"
