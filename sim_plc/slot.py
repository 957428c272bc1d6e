"""What every device slot of the simulated PLC shares: command handshake, fault inputs, register block."""

from __future__ import annotations

from dataclasses import dataclass

from hal.profile import SLOT_STRIDE, VALID_COMMANDS, AckResult, Command, Kind, split_u32

U16 = 0xFFFF
U32 = 0xFFFFFFFF


@dataclass(frozen=True)
class Conditions:
    """PLC-wide inputs a slot sees during one scan."""

    now: float
    estop: bool = False
    watchdog_expired: bool = False
    watchdog_tripped: bool = False  # expired during this very scan
    local_panel: bool = False


class Slot:
    """One device slot: COMMAND/COMMAND_SEQ in, ACK_SEQ/ACK_RESULT/FAULT_CODE out, injected fault inputs."""

    def __init__(self, index: int, kind: Kind, now: float) -> None:
        self.index = index
        self.kind = Kind(kind)
        self.command = 0
        self.command_seq = 0
        self._seen_seq = 0
        self.ack_seq = 0
        self.ack_result = int(AckResult.ACCEPTED)
        self.fault_code = 0
        self.faults: dict[str, int | None] = {}  # active injected fault → its value (or None)
        self._last = now

    # ---- fault inputs -------------------------------------------------------------------------
    def has(self, fault: str) -> bool:
        return fault in self.faults

    def fault_changed(self, fault: str, active: bool, now: float) -> None:
        """Hook: an injected fault was switched on or off."""

    def is_local(self, cond: Conditions) -> bool:
        return cond.local_panel or self.has("local")

    def latch_code(self, code: int) -> None:
        """FAULT_CODE is first-out: only the first fault since the last RESET is kept."""
        if self.fault_code == 0:
            self.fault_code = int(code)

    # ---- command handshake --------------------------------------------------------------------
    def process_command(self, cond: Conditions) -> None:
        """Act once on a COMMAND_SEQ the PLC has not seen yet, and acknowledge it."""
        if self.command_seq == self._seen_seq:
            return
        self._seen_seq = self.command_seq
        self.ack_result = int(self.decide(self.command, cond))
        self.ack_seq = self.command_seq

    def decide(self, command: int, cond: Conditions) -> AckResult:
        """Checks common to every kind, in order: invalid, NONE, emergency stop; then the kind's own."""
        if command not in VALID_COMMANDS[self.kind]:
            return AckResult.REJECTED_INVALID
        if command == Command.NONE:
            return AckResult.ACCEPTED
        if cond.estop:
            return AckResult.REJECTED_ESTOP
        return self.execute(command, cond)

    def execute(self, command: int, cond: Conditions) -> AckResult:
        raise NotImplementedError

    # ---- scan and image -----------------------------------------------------------------------
    def scan(self, cond: Conditions) -> None:
        raise NotImplementedError

    def resync(self, now: float) -> None:
        """Forget the time that passed while the PLC logic was frozen."""
        self._last = now

    def status(self) -> int:
        raise NotImplementedError

    def position(self) -> int:
        raise NotImplementedError

    def analogs(self) -> tuple[int, int]:
        return 0, 0

    def travel_counters(self) -> tuple[int, int]:
        """LAST_TRAVEL_MS and CYCLE_COUNT."""
        return 0, 0

    def registers(self) -> list[int]:
        """The slot's input registers B..B+11 in SlotInput order."""
        analog_1, analog_2 = self.analogs()
        last_travel_ms, cycles = self.travel_counters()
        high, low = split_u32(cycles & U32)
        block = [
            int(self.kind),
            self.status() & U16,
            self.position() & U16,
            self.ack_seq & U16,
            self.ack_result & U16,
            self.fault_code & U16,
            analog_1 & U16,
            analog_2 & U16,  # signed values in two's complement
            min(last_travel_ms, U16),
            high,
            low,
            0,  # B+11 reserved
        ]
        assert len(block) == SLOT_STRIDE
        return block
