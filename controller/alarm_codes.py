"""Stable alarm codes with their severity and the advice a technician reads; codes never change meaning."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Severity(IntEnum):
    INFO = 1
    WARNING = 2
    FAULT = 3  # the device or PLC cannot be trusted to open: opening commands are refused
    CRITICAL = 4  # security breach or loss of control


@dataclass(frozen=True)
class AlarmCode:
    code: str
    severity: Severity
    text: str
    latched: bool = False  # stays active until acknowledged, even when the condition is gone


CODES: dict[str, AlarmCode] = {
    c.code: c
    for c in (
        AlarmCode("COMMS_LOST", Severity.FAULT, "no valid reply from the PLC; its devices are unknown"),
        AlarmCode("BAD_REPLY", Severity.WARNING, "the PLC sent a reply that failed validation"),
        AlarmCode("PLC_FROZEN", Severity.FAULT, "PLC heartbeat stopped while it still answers: its data are stale"),
        AlarmCode("WATCHDOG_NOT_ARMED", Severity.FAULT, "WATCHDOG_TIMEOUT_MS reads back different from the configured value"),
        AlarmCode("WRONG_PROGRAM", Severity.FAULT, "PLC program differs from the site configuration; no command is sent to it"),
        AlarmCode("WATCHDOG_EXPIRED", Severity.FAULT, "the PLC's supervisor watchdog expired; it failed secure"),
        AlarmCode("ESTOP", Severity.CRITICAL, "emergency stop chain open: all travel stopped"),
        AlarmCode("MAINS_FAIL", Severity.WARNING, "cabinet on UPS: mains supply failed"),
        AlarmCode("CABINET_TAMPER", Severity.CRITICAL, "cabinet door open"),
        AlarmCode("LOCAL_PANEL", Severity.WARNING, "cabinet key switch in LOCAL: every slot under local control"),
        AlarmCode("COMMAND_NOT_ACKNOWLEDGED", Severity.FAULT, "the PLC did not acknowledge a command", latched=True),
        AlarmCode("COMMAND_REJECTED", Severity.WARNING, "the PLC rejected a command", latched=True),
        AlarmCode("TRAVEL_TIMEOUT", Severity.FAULT, "no limit reached within the travel time", latched=True),
        AlarmCode("BOTH_LIMITS", Severity.FAULT, "open and closed limit switches both made"),
        AlarmCode("LIMIT_LOST", Severity.FAULT, "a limit switch dropped without motion", latched=True),
        AlarmCode("UNCOMMANDED_MOVEMENT", Severity.CRITICAL, "the device moved with no command in force", latched=True),
        AlarmCode("DRIVE_FAULT", Severity.FAULT, "drive, motor or pump fault latched in the PLC"),
        AlarmCode("LOW_PRESSURE", Severity.FAULT, "hydraulic pressure below minimum"),
        AlarmCode("OIL_TEMP", Severity.WARNING, "oil temperature outside its working range"),
        AlarmCode("SENSOR_FAULT", Severity.FAULT, "a loop detector or safety device failed its self-test"),
        AlarmCode("LAMP_FAULT", Severity.FAULT, "signal lamp fault"),
        AlarmCode("LOCAL_CONTROL", Severity.WARNING, "slot under local control"),
        AlarmCode("MANUAL_RELEASE", Severity.WARNING, "hand crank or manual pump engaged"),
        AlarmCode("STORAGE_FAILED", Severity.FAULT, "the event store cannot write: only securing commands are "
                  "carried out; records are kept in memory and the journal until it can"),
        AlarmCode("EFO_ACTIVE", Severity.INFO, "emergency fast operation latched; reset after the lockdown"),
        # condition monitoring (controller/condition.py, controller/readiness.py)
        AlarmCode("TRAVEL_SLOW", Severity.WARNING, "a travel took longer than the device's travel_s (the stored "
                  "travel is named)", latched=True),
        AlarmCode("EFO_SLOW", Severity.WARNING, "an EFO raise took longer than the site's EFO limit (the stored "
                  "travel is named)", latched=True),
        AlarmCode("TRAVEL_DRIFT", Severity.WARNING, "recent travels are slower than the device's baseline by more "
                  "than the margin: wear, before the limit is reached"),
        AlarmCode("CURRENT_DRIFT", Severity.WARNING, "motor current during travel is above the baseline by more "
                  "than the margin"),
        AlarmCode("PRESSURE_DRIFT", Severity.WARNING, "hydraulic pressure during travel is below the baseline by "
                  "more than the margin"),
        AlarmCode("SERVICE_DUE", Severity.WARNING, "the device has travelled its service interval since its last "
                  "service; `barrierctl service DEVICE --reason` records the service"),
        AlarmCode("EFO_NOT_READY", Severity.WARNING, "the blocker's emergency fast operation is not ready (the "
                  "reasons are named); lockdown and EFO are still sent"),
    )
}
