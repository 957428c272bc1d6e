"""The names barrierd's logic compares: lane modes, device states and roles, as enums with no dependencies.

Lane modes and device states are StrEnums: each member is the plain string it stands for, so the status,
the event store and the state machines (which are given the values) keep the words people read.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class LaneMode(StrEnum):
    UNKNOWN = "unknown"  # some device's data are not valid, or not read yet
    OPEN = "open"  # every device open, lowered or green
    SECURING = "securing"  # the secure sequence runs
    SECURED = "secured"  # every device closed, raised or red
    OPENING = "opening"  # the open sequence runs
    MIXED = "mixed"  # some of each: the reason names the devices that are not secured
    LOCKDOWN = "lockdown"  # latched; released only by a technician
    MAINTENANCE = "maintenance"  # latched; sequencing off, devices driven one by one
    FAULT = "fault"  # a sequence step failed; latched until the lane is secured


# Modes read from the devices on every poll, never latched.
DERIVED_MODES = (LaneMode.SECURED, LaneMode.OPEN, LaneMode.MIXED, LaneMode.UNKNOWN)


class DeviceState(StrEnum):
    UNKNOWN = "unknown"  # data not valid: never a stale value
    OPEN = "open"
    CLOSED = "closed"
    OPENING = "opening"
    CLOSING = "closing"
    STOPPED = "stopped"  # between limits, drive stopped
    RED = "red"
    GREEN = "green"
    FAULT = "fault"  # latched until reset
    LOCAL = "local"  # a person at the cabinet has it (key switch or manual release)


class Role(IntEnum):
    """Cumulative roles; NONE may do nothing."""

    NONE = 0
    VIEWER = 1
    OPERATOR = 2
    TECHNICIAN = 3

    @property
    def label(self) -> str:
        return self.name.lower()
