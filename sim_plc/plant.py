"""The simulated PLC without any I/O: header, watchdog, slots, one scan, and the two register tables."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from pymodbus.constants import ExcCodes

from hal.profile import (
    HEADER_SIZE,
    MAX_SLOTS,
    MIN_SLOTS,
    POSITION_CLOSED,
    PROFILE_MAGIC,
    PROFILE_VERSION,
    SLOT_STRIDE,
    WATCHDOG_POWER_UP_MS,
    HeaderHolding,
    HeaderInput,
    Kind,
    PlcStatus,
    SlotHolding,
    config_crc32,
    input_block_size,
    slot_base,
    split_u32,
    watchdog_value_valid,
)
from sim_plc import faults, state
from sim_plc.clock import Clock
from sim_plc.errors import ModbusError
from sim_plc.leaf import Leaf
from sim_plc.traffic_signal import Signal
from sim_plc.slot import U16, Conditions, Slot

PLC_STATUS_FAULTS = {
    "estop": PlcStatus.ESTOP,
    "mains_fail": PlcStatus.MAINS_FAIL,
    "cabinet_tamper": PlcStatus.CABINET_TAMPER,
    "local_panel": PlcStatus.LOCAL_PANEL,
}


class SimPlc:
    """One lane PLC speaking barrier profile v1. Call scan() every scan period; nothing here sleeps."""

    def __init__(
        self,
        name: str,
        kinds: Sequence[Kind | int],
        clock: Clock,
        scan_ms: int = 10,
        unit: int = 1,
        positions: Mapping[int, int] | None = None,
        travel: Mapping[int, tuple[float, float]] | None = None,
    ) -> None:
        if not MIN_SLOTS <= len(kinds) <= MAX_SLOTS:
            raise ValueError(f"a PLC has {MIN_SLOTS}..{MAX_SLOTS} slots, not {len(kinds)}")
        if not 1 <= scan_ms <= U16:
            raise ValueError(f"scan_ms {scan_ms} outside 1..65535")
        self.name = name
        self.clock = clock
        self.scan_ms = scan_ms
        self.unit = unit
        self.kinds = [Kind(k) for k in kinds]
        now = clock.monotonic()
        positions = dict(positions or {})
        self.slots: list[Slot] = []
        for index, kind in enumerate(self.kinds):
            if kind == Kind.TRAFFIC_SIGNAL:
                if index in positions:
                    raise ValueError(f"slot {index} is a traffic signal and has no position")
                self.slots.append(Signal(index, now))
            else:
                travel_s, efo_s = (travel or {}).get(index, (None, None))
                self.slots.append(Leaf(index, kind, now, positions.pop(index, POSITION_CLOSED), travel_s, efo_s,
                                       seed=zlib.crc32(f"{name}/{index}".encode())))
        if unknown := set(positions) - set(range(len(self.kinds))):
            raise ValueError(f"positions for slots that do not exist: {sorted(unknown)}")
        self.crc = config_crc32([int(k) for k in self.kinds])
        self.heartbeat = 0
        self.supervisor_heartbeat = 0
        self.watchdog_timeout_ms = WATCHDOG_POWER_UP_MS
        self.watchdog_expired = False
        self._seen_supervisor_heartbeat = 0
        self._heartbeat_seen_at = now
        self.plc_faults: set[str] = set()
        self._image = self._build_image()

    # ---- faults -------------------------------------------------------------------------------
    def inject(self, fault: str, slot: int | None = None, active: bool = True, code: int | None = None) -> None:
        """Switch an injected fault on or off (see sim_plc.faults for the names); FaultError if invalid."""
        faults.inject(self, fault, slot, active, code)

    def active_faults(self) -> list[dict[str, Any]]:
        return faults.active_faults(self)

    def set_plc_fault(self, fault: str, active: bool) -> None:
        was_frozen = self.frozen
        if active:
            self.plc_faults.add(fault)
        else:
            self.plc_faults.discard(fault)
        if was_frozen and not self.frozen:  # the program restarts its timers where it hung
            now = self.clock.monotonic()
            self._heartbeat_seen_at = now
            for slot in self.slots:
                slot.resync(now)

    @property
    def frozen(self) -> bool:
        return "frozen_logic" in self.plc_faults

    @property
    def comms_silent(self) -> bool:
        return "comms_silence" in self.plc_faults

    # ---- scan ---------------------------------------------------------------------------------
    def scan(self) -> None:
        """One PLC scan at the clock's current time: inputs, watchdog, slots, heartbeat, status image."""
        if self.frozen:
            return
        now = self.clock.monotonic()
        tripped = self._run_watchdog(now)
        cond = Conditions(
            now=now,
            estop="estop" in self.plc_faults,
            watchdog_expired=self.watchdog_expired,
            watchdog_tripped=tripped,
            local_panel="local_panel" in self.plc_faults,
        )
        for slot in self.slots:
            slot.scan(cond)
        self.heartbeat = (self.heartbeat + 1) & U16
        self._image = self._build_image()

    def _run_watchdog(self, now: float) -> bool:
        """Update WATCHDOG_EXPIRED; True when it expired during this scan."""
        if self.supervisor_heartbeat != self._seen_supervisor_heartbeat:
            self._seen_supervisor_heartbeat = self.supervisor_heartbeat
            self._heartbeat_seen_at = now
            self.watchdog_expired = False
        if self.watchdog_timeout_ms == 0:
            self.watchdog_expired = False
            return False
        if not self.watchdog_expired and now - self._heartbeat_seen_at >= self.watchdog_timeout_ms / 1000 - 1e-9:
            self.watchdog_expired = True
            return True
        return False

    def plc_status(self) -> int:
        value = PlcStatus.WATCHDOG_EXPIRED if self.watchdog_expired else PlcStatus(0)
        for fault, bit in PLC_STATUS_FAULTS.items():
            if fault in self.plc_faults:
                value |= bit
        return int(value)

    def _build_image(self) -> list[int]:
        header = [0] * HEADER_SIZE
        header[HeaderInput.PROFILE_MAGIC] = PROFILE_MAGIC
        header[HeaderInput.PROFILE_VERSION] = PROFILE_VERSION
        header[HeaderInput.PLC_HEARTBEAT] = self.heartbeat
        header[HeaderInput.PLC_STATUS] = self.plc_status()
        header[HeaderInput.SLOT_COUNT] = len(self.slots)
        header[HeaderInput.SCAN_TIME_MS] = self.scan_ms
        crc_high, crc_low = split_u32(self.crc)
        header[HeaderInput.CONFIG_CRC32] = crc_high
        header[HeaderInput.CONFIG_CRC32 + 1] = crc_low
        for slot in self.slots:
            header += slot.registers()
        return header

    # ---- register tables ----------------------------------------------------------------------
    @property
    def input_size(self) -> int:
        return input_block_size(len(self.slots))

    def read_input(self, address: int, count: int) -> list[int]:
        """FC4: the status image published by the last scan."""
        if count < 1:
            raise ModbusError(ExcCodes.ILLEGAL_VALUE, f"count {count}")
        if address < 0 or address + count > self.input_size:
            last = self.input_size - 1
            raise ModbusError(
                ExcCodes.ILLEGAL_ADDRESS, f"input registers {address}..{address + count - 1} outside 0..{last}"
            )
        return self._image[address : address + count]

    def _holding_slot(self, address: int) -> tuple[Slot, int] | None:
        offset = address - slot_base(0)
        if offset < 0:
            return None
        index, register = divmod(offset, SLOT_STRIDE)
        if index >= len(self.slots) or register not in (SlotHolding.COMMAND, SlotHolding.COMMAND_SEQ):
            return None
        return self.slots[index], register

    def _check_holding(self, address: int, count: int) -> None:
        for addr in range(address, address + count):
            if addr in (HeaderHolding.SUPERVISOR_HEARTBEAT, HeaderHolding.WATCHDOG_TIMEOUT_MS):
                continue
            if self._holding_slot(addr) is None:
                raise ModbusError(ExcCodes.ILLEGAL_ADDRESS, f"holding register {addr} does not exist")

    def read_holding(self, address: int, count: int) -> list[int]:
        """FC3: HR 0-1 and each slot's COMMAND/COMMAND_SEQ, as last written."""
        if count < 1:
            raise ModbusError(ExcCodes.ILLEGAL_VALUE, f"count {count}")
        self._check_holding(address, count)
        values = []
        for addr in range(address, address + count):
            if addr == HeaderHolding.SUPERVISOR_HEARTBEAT:
                values.append(self.supervisor_heartbeat)
            elif addr == HeaderHolding.WATCHDOG_TIMEOUT_MS:
                values.append(self.watchdog_timeout_ms)
            else:
                slot, register = self._holding_slot(addr)  # type: ignore[misc]
                values.append(slot.command if register == SlotHolding.COMMAND else slot.command_seq)
        return values

    def write_holding(self, address: int, values: Sequence[int]) -> None:
        """FC6/FC16: all or nothing; 0x02 for a missing register, 0x03 for a value out of range."""
        if not values:
            raise ModbusError(ExcCodes.ILLEGAL_VALUE, "no values")
        self._check_holding(address, len(values))
        for addr, value in enumerate(values, start=address):
            if not 0 <= value <= U16:
                raise ModbusError(ExcCodes.ILLEGAL_VALUE, f"value {value} at {addr} is not a 16-bit word")
            if addr == HeaderHolding.WATCHDOG_TIMEOUT_MS and not watchdog_value_valid(value):
                raise ModbusError(ExcCodes.ILLEGAL_VALUE, f"WATCHDOG_TIMEOUT_MS {value}: 0 or 100..60000")
        for addr, value in enumerate(values, start=address):
            if addr == HeaderHolding.SUPERVISOR_HEARTBEAT:
                self.supervisor_heartbeat = value
            elif addr == HeaderHolding.WATCHDOG_TIMEOUT_MS:
                if "watchdog_ignored" not in self.plc_faults:  # else acknowledged, but not applied
                    self.watchdog_timeout_ms = value
            else:
                slot, register = self._holding_slot(addr)  # type: ignore[misc]
                if register == SlotHolding.COMMAND:
                    slot.command = value
                else:
                    slot.command_seq = value

    # ---- inspection ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The register image and decoded slot states, JSON-ready (what `sim-plc state` prints)."""
        return state.snapshot(self)
