"""A test harness: one SimPlc on a FakeClock, driven scan by scan, with the command handshake built in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hal.profile import (
    HeaderHolding,
    HeaderInput,
    Kind,
    PlcStatus,
    SlotInput,
    Status,
    join_u32,
    next_command_seq,
    slot_base,
    to_signed16,
)
from sim_plc.clock import FakeClock
from sim_plc.plant import SimPlc

SCAN_S = 0.01
MOVING = int(Status.MOVING_OPEN | Status.MOVING_CLOSE)


class PlcRig:
    """Drive a SimPlc in simulated time. By default it feeds SUPERVISOR_HEARTBEAT every scan,
    like a healthy supervisor; set `feed_heartbeat = False` to starve the watchdog."""

    def __init__(
        self,
        kinds: Sequence[Kind | int],
        positions: Mapping[int, int] | None = None,
        scan_ms: int = 10,
        travel: Mapping[int, tuple[float, float]] | None = None,
    ) -> None:
        self.clock = FakeClock()
        self.plc = SimPlc("test-plc", kinds, self.clock, scan_ms=scan_ms, positions=positions, travel=travel)
        self.scan_s = scan_ms / 1000
        self.feed_heartbeat = True
        self.seq = 0
        self._supervisor_heartbeat = 0

    # ---- time ---------------------------------------------------------------------------------
    def step(self) -> None:
        """Advance one scan period, feed the heartbeat if enabled, run one scan."""
        self.clock.advance(self.scan_s)
        if self.feed_heartbeat:
            self.beat()
        self.plc.scan()

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / self.scan_s)):
            self.step()

    def run_until(self, predicate, timeout: float) -> float:
        """Step until predicate() holds; return the simulated seconds it took; AssertionError on timeout."""
        start = self.clock.monotonic()
        while not predicate():
            if self.clock.monotonic() - start > timeout:
                raise AssertionError(f"condition not reached within {timeout} s of simulated time")
            self.step()
        return self.clock.monotonic() - start

    def soak(self, seconds: float, step_s: float = 1.0) -> None:
        """Let slow physics run (oil temperature, a leak): one scan every `step_s` of simulated time."""
        for _ in range(round(seconds / step_s)):
            self.clock.advance(step_s)
            if self.feed_heartbeat:
                self.beat()
            self.plc.scan()

    def beat(self) -> None:
        self._supervisor_heartbeat = (self._supervisor_heartbeat + 1) & 0xFFFF
        self.plc.write_holding(HeaderHolding.SUPERVISOR_HEARTBEAT, [self._supervisor_heartbeat])

    # ---- commands -----------------------------------------------------------------------------
    def send(self, slot: int, command: int) -> int:
        """Write COMMAND and a new COMMAND_SEQ (one FC16-like write) without scanning; return the seq."""
        self.seq = next_command_seq(self.seq)
        self.plc.write_holding(slot_base(slot), [command, self.seq])
        return self.seq

    def command(self, slot: int, command: int) -> int:
        """Send a command, run one scan at the same instant, and return ACK_RESULT (checks ACK_SEQ)."""
        seq = self.send(slot, command)
        self.plc.scan()
        assert self.reg(slot, SlotInput.ACK_SEQ) == seq, "the PLC did not acknowledge within one scan"
        return self.reg(slot, SlotInput.ACK_RESULT)

    def travel(self, slot: int, command: int, timeout: float = 30.0) -> int:
        """Command a travel, run until the drive stops; return LAST_TRAVEL_MS (AssertionError if refused)."""
        result = self.command(slot, command)
        assert result == 0, f"command {command} to slot {slot} refused with ACK_RESULT {result}"
        self.run_until(lambda: not self.status(slot) & MOVING, timeout)
        return self.reg(slot, SlotInput.LAST_TRAVEL_MS)

    # ---- reading ------------------------------------------------------------------------------
    def reg(self, slot: int, offset: int) -> int:
        return self.plc.read_input(slot_base(slot) + offset, 1)[0]

    def status(self, slot: int) -> int:
        return self.reg(slot, SlotInput.STATUS)

    def has(self, slot: int, bits: int) -> bool:
        """True when every bit of `bits` is set in the slot's STATUS."""
        return self.status(slot) & int(bits) == int(bits)

    def position(self, slot: int) -> int:
        return self.reg(slot, SlotInput.POSITION)

    def pressure_bar(self, slot: int) -> float:
        """A blocker's ANALOG_1 in bar."""
        return self.reg(slot, SlotInput.ANALOG_1) / 10

    def oil_c(self, slot: int) -> float:
        """A blocker's ANALOG_2 (signed) in °C."""
        return to_signed16(self.reg(slot, SlotInput.ANALOG_2)) / 10

    def cycle_count(self, slot: int) -> int:
        high, low = self.plc.read_input(slot_base(slot) + SlotInput.CYCLE_COUNT, 2)
        return join_u32(high, low)

    def header(self, register: HeaderInput) -> int:
        return self.plc.read_input(register, 1)[0]

    def plc_status(self) -> PlcStatus:
        return PlcStatus(self.header(HeaderInput.PLC_STATUS))


GATE, BLOCKER, SIGNAL = 0, 1, 2  # slots of the lane rig


def lane_rig(**positions: int) -> PlcRig:
    """A lane PLC (gate, blocker, signal) on a fake clock; positions by name, e.g. gate=0."""
    slots = {"gate": GATE, "blocker": BLOCKER}
    return PlcRig(
        [Kind.FOLDING_GATE, Kind.ROAD_BLOCKER, Kind.TRAFFIC_SIGNAL],
        positions={slots[name]: pos for name, pos in positions.items()},
    )
