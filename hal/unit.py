"""What the supervisor knows of one PLC on a bus: its expected program, data quality, command sequence and acks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import NamedTuple

from hal.profile import (
    ACK_RESULT_MEANING,
    PROFILE_MAGIC,
    PROFILE_VERSION,
    SLOTS_PER_READ_WITH_HEADER,
    WATCHDOG_OFF,
    AckResult,
    HeaderInput,
    Kind,
    config_crc32,
    input_block_size,
    next_command_seq,
    slot_base,
)
from hal.errors import BadReplyError
from hal.snapshot import PlcSnapshot

_tuple_new = tuple.__new__
_HEARTBEAT_AT = 2 * int(HeaderInput.PLC_HEARTBEAT)  # its first byte in a block read as bytes


class Quality(StrEnum):
    """How far the latest data of a PLC can be trusted."""

    GOOD = "good"  # the latest poll returned valid data from the expected program
    STALE = "stale"  # the latest poll failed; older data must not be shown as a state
    INVALID = "invalid"  # comms lost, wrong program, frozen PLC, or nothing read yet


class Problem(StrEnum):
    """Why a reading is not good, as a kind the controller can act on (the text is in `reason`)."""

    COMMS = "comms"  # no reply, timeout, connection refused or lost
    BAD_REPLY = "bad_reply"  # a reply that failed validation or was an exception response
    WRONG_PROGRAM = "wrong_program"  # magic, version, slot kinds or CRC differ from config
    FROZEN = "frozen"  # PLC_HEARTBEAT stopped while replies arrive


@dataclass(frozen=True)
class UnitSpec:
    """The configured facts about one PLC: where it is and what program it must run."""

    name: str
    unit: int
    slot_kinds: tuple[Kind, ...]
    watchdog_ms: int

    def read_plan(self) -> list[tuple[int, int]]:
        """(address, count) of the FC4 reads that cover header and slots: one read up to nine slots."""
        n = len(self.slot_kinds)
        first = min(n, SLOTS_PER_READ_WITH_HEADER)
        plan = [(0, input_block_size(first))]
        if n > first:
            plan.append((slot_base(first), input_block_size(n) - input_block_size(first)))
        return plan

    @property
    def heartbeat_period_s(self) -> float:
        """How often SUPERVISOR_HEARTBEAT is written: a quarter of the watchdog timeout (1 s with the watchdog off)."""
        return (self.watchdog_ms / 1000) / 4 if self.watchdog_ms != WATCHDOG_OFF else 1.0

    @cached_property
    def expected_crc32(self) -> int:
        return config_crc32(list(self.slot_kinds))

    def identity_problem(self, snap: PlcSnapshot) -> str | None:
        """Why the PLC's reported program differs from the configured one, or None."""
        if snap.magic != PROFILE_MAGIC:
            return f"PROFILE_MAGIC is 0x{snap.magic:04X}, expected 0x{PROFILE_MAGIC:04X}"
        if snap.version != PROFILE_VERSION:
            return f"PROFILE_VERSION is {snap.version}, expected {PROFILE_VERSION}"
        if snap.slot_count != len(self.slot_kinds):
            return f"SLOT_COUNT is {snap.slot_count}, configured {len(self.slot_kinds)}"
        kinds = tuple(s.kind for s in snap.slots)
        if kinds != self.slot_kinds:
            return f"slot kinds are {[int(k) for k in kinds]}, configured {[int(k) for k in self.slot_kinds]}"
        expected_crc = self.expected_crc32
        if snap.config_crc32 != expected_crc:
            return f"CONFIG_CRC32 is 0x{snap.config_crc32:08X}, expected 0x{expected_crc:08X}"
        return None


class PlcReading(NamedTuple):
    """What one poll attempt of one PLC produced, handed to the controller (a NamedTuple: one per poll)."""

    plc: str
    quality: Quality
    snapshot: PlcSnapshot | None  # only when quality is GOOD
    reason: str | None  # why quality is not GOOD
    comms_lost: bool
    consecutive_failures: int
    watchdog_readback: int | None
    problem: Problem | None = None
    # The block read equals the previous reading's but for PLC_HEARTBEAT, and that reading was GOOD:
    # snapshot.slots is that reading's own tuple (nothing was decoded again).
    unchanged: bool = False


@dataclass(frozen=True)
class CommandOutcome:
    """The PLC's answer to one command: accepted, rejected with a reason, or never acknowledged."""

    acknowledged: bool
    result: AckResult | None
    seq: int

    @property
    def accepted(self) -> bool:
        return self.acknowledged and self.result == AckResult.ACCEPTED

    def describe(self) -> str:
        if not self.acknowledged:
            return f"not acknowledged by the PLC (COMMAND_SEQ {self.seq})"
        assert self.result is not None
        return f"{self.result.name}: {ACK_RESULT_MEANING[self.result]}"


@dataclass
class PendingCommand:
    slot: int
    code: int
    future: asyncio.Future
    seq: int = 0
    deadline: float = 0.0
    recheck: Callable[[], None] | None = None  # run just before the write; raises to cancel it


@dataclass
class UnitState:
    """Mutable per-PLC bookkeeping kept by the bus."""

    spec: UnitSpec
    consecutive_failures: int = 0
    good: bool = False
    heartbeat_out: int = 0
    next_heartbeat_at: float = 0.0
    watchdog_readback: int | None = None
    last_plc_heartbeat: int | None = None
    unchanged_heartbeats: int = 0
    seq: dict[int, int] = field(default_factory=dict)  # slot -> last COMMAND_SEQ written or read back
    awaiting_ack: dict[int, PendingCommand] = field(default_factory=dict)
    armed: bool = False
    last_scan_ms: int = 0
    ack_poll_at: float = 0.0  # when to read the acknowledgement of a command written (the next scan)
    last_block: bytes | None = None  # the block of the last GOOD reading as read, and its snapshot
    last_snapshot: PlcSnapshot | None = None

    def forget_block(self) -> None:
        """The next block is decoded and checked afresh (after any reading that was not GOOD)."""
        self.last_block = self.last_snapshot = None

    def same_block(self, block: bytes, read_at: float) -> PlcSnapshot | None:
        """The last GOOD snapshot with this read's heartbeat and time if every other byte is as it was, else None.

        PLC_HEARTBEAT changes every scan: it is left out of the comparison (the frozen check reads it)."""
        last, snap = self.last_block, self.last_snapshot
        if (last is None or snap is None or len(last) != len(block) or block[:_HEARTBEAT_AT] != last[:_HEARTBEAT_AT]
                or block[_HEARTBEAT_AT + 2:] != last[_HEARTBEAT_AT + 2:]):
            return None
        heartbeat = block[_HEARTBEAT_AT] << 8 | block[_HEARTBEAT_AT + 1]
        # tuple.__new__ as NamedTuple's own __new__ does it, without its Python frame (this runs for most polls)
        return _tuple_new(PlcSnapshot, (snap.magic, snap.version, heartbeat, snap.plc_status, snap.slot_count,
                                        snap.scan_time_ms, snap.config_crc32, snap.slots, read_at))

    def frozen_problem(self, snap: PlcSnapshot, frozen_polls: int) -> str | None:
        """Count the polls PLC_HEARTBEAT stayed the same; why the PLC is frozen once they reach `frozen_polls`."""
        if snap.heartbeat == self.last_plc_heartbeat:
            self.unchanged_heartbeats += 1
        else:
            self.unchanged_heartbeats = 0
        self.last_plc_heartbeat = snap.heartbeat
        if self.unchanged_heartbeats >= frozen_polls:
            return f"PLC frozen: PLC_HEARTBEAT unchanged for {self.unchanged_heartbeats} polls"
        return None

    def check_acks(self, snap: PlcSnapshot | None, now: float) -> None:
        """Resolve commands acknowledged in `snap` (None: no valid data this poll) or past their deadline at `now`."""
        for slot, cmd in list(self.awaiting_ack.items()):
            slot_snap = snap.slots[slot] if snap is not None else None
            if slot_snap is not None and slot_snap.ack_seq == cmd.seq:
                try:
                    result = AckResult(slot_snap.ack_result)
                except ValueError:
                    cmd.future.set_exception(BadReplyError(f"slot {slot}: ACK_RESULT {slot_snap.ack_result} unknown"))
                else:
                    cmd.future.set_result(CommandOutcome(acknowledged=True, result=result, seq=cmd.seq))
                del self.awaiting_ack[slot]
            elif now >= cmd.deadline:
                cmd.future.set_result(CommandOutcome(acknowledged=False, result=None, seq=cmd.seq))
                del self.awaiting_ack[slot]

    def next_seq(self, slot: int) -> int:
        self.seq[slot] = next_command_seq(self.seq[slot])
        return self.seq[slot]
