"""A traffic-signal slot: shows GREEN or RED, turns RED on watchdog expiry, latches lamp faults."""

from __future__ import annotations

from hal.profile import POSITION_NO_ENCODER, AckResult, FaultCode, Kind, SignalCommand, SignalStatus
from sim_plc.slot import Conditions, Slot


class Signal(Slot):
    """Kind 4. Power-up aspect is RED. A signal has no encoder: POSITION reads 0xFFFF."""

    def __init__(self, index: int, now: float, green: bool = False) -> None:
        super().__init__(index, Kind.TRAFFIC_SIGNAL, now)
        self.green = green
        self.lamp_fault = False
        self._panel_local = False

    def scan(self, cond: Conditions) -> None:
        self._last = cond.now
        self._panel_local = cond.local_panel
        if self.has("lamp_fault"):
            self.lamp_fault = True
            self.latch_code(FaultCode.LAMP_FAULT)
        if cond.watchdog_expired:
            self.green = False  # fail secure
        self.process_command(cond)

    def execute(self, command: int, cond: Conditions) -> AckResult:
        if self.is_local(cond):
            return AckResult.REJECTED_LOCAL
        if cond.watchdog_expired:
            return AckResult.REJECTED_WATCHDOG
        if command == SignalCommand.RESET:
            if not self.has("lamp_fault"):
                self.lamp_fault = False
                self.fault_code = FaultCode.NONE
        elif command == SignalCommand.GREEN:
            self.green = True
        elif command == SignalCommand.RED:
            self.green = False
        return AckResult.ACCEPTED

    def status(self) -> int:
        value = 0
        if not self.has("lamp_fault"):  # a failed lamp shows nothing
            value |= SignalStatus.GREEN if self.green else SignalStatus.RED
        if self.lamp_fault:
            value |= SignalStatus.LAMP_FAULT
        if self._panel_local or self.has("local"):
            value |= SignalStatus.LOCAL
        return int(value)

    def position(self) -> int:
        return POSITION_NO_ENCODER
