"""sim-plc's physics read into barrierd's condition monitor on one fake clock: a gate, a boom and a blocker on
one simulated PLC, its slot registers decoded as barrierd decodes them and fed to a ConditionMonitor every poll."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from config.schema import SiteConfig
from controller.alarms import AlarmBoard
from controller.condition import ConditionMonitor, DeviceCondition
from controller.devices import DEVICE_CLASSES
from controller.event_store import EventStore
from hal.profile import SLOT_STRIDE, AckResult, Command, Kind, slot_base
from hal.snapshot import decode_slot
from sim_plc.testing import MOVING, PlcRig

GATE, BOOM, BLOCKER = 0, 1, 2
NAMES = {GATE: "gate-1", BOOM: "bay-entry", BLOCKER: "blocker-1"}  # devices of the demo site with those kinds


class SimMonitor:
    """Every `poll_s` of simulated time the PLC's slots are read, decoded and fed to the monitor; the alarm board
    is synced with its conditions as Site does, and every alarm code ever raised and readiness state ever
    shown is counted."""

    def __init__(self, cfg: SiteConfig, poll_s: float = 0.1):
        self.rig = PlcRig([Kind.FOLDING_GATE, Kind.BOOM_BARRIER, Kind.ROAD_BLOCKER], scan_ms=round(poll_s * 1000))
        self.store = EventStore(Path(":memory:"))
        self.alarms = AlarmBoard(self.store.storage, on_event=self._on_alarm)
        devices = {d.name: DEVICE_CLASSES[d.kind](d) for d in cfg.device if d.name in NAMES.values()}
        self.monitor = ConditionMonitor(cfg, devices, self.store.storage, self.alarms)
        self.raised: Counter[tuple[str, str]] = Counter()  # (code, device) -> times raised
        self.messages: list[str] = []  # each raise's summary, with the clock's time
        self.readiness: Counter[str] = Counter()  # readiness state -> polls that showed it
        self.max_drift: dict[str, float] = {}  # "gate-1 travel_ms:open" -> largest |drift| seen
        self.poll()

    def _on_alarm(self, kind: str, subject: str, summary: str, **_) -> None:
        if kind == "alarm_raised":
            self.raised[(summary.split()[0], subject)] += 1
            self.messages.append(f"t={self.rig.clock.monotonic():.1f} {summary}")

    def of(self, slot: int) -> DeviceCondition:
        return self.monitor.of(NAMES[slot])

    def poll(self) -> None:
        now = self.rig.clock.monotonic()
        for slot, name in NAMES.items():
            words = self.rig.plc.read_input(slot_base(slot), SLOT_STRIDE)
            self.alarms.sync(name, dict(self.monitor.observe(name, decode_slot(words, slot), now)))
        readiness = self.of(BLOCKER).readiness
        self.readiness[readiness.state if readiness else "none"] += 1

    def run(self, seconds: float) -> None:
        """Scan and poll for `seconds` of simulated time (one scan per poll)."""
        for _ in range(round(seconds / self.rig.scan_s)):
            self.rig.step()
            self.poll()

    def idle(self, seconds: float, step_s: float) -> None:
        """Stand still for `seconds`, scanned and polled every `step_s` (hours of oil cooling in large steps)."""
        for _ in range(round(seconds / step_s)):
            self.rig.clock.advance(step_s)
            self.rig.beat()
            self.rig.plc.scan()
            self.poll()

    def start(self, slot: int, command: Command) -> None:
        assert self.rig.command(slot, command) == AckResult.ACCEPTED, (slot, command)

    def travel(self, *moves: tuple[int, Command], timeout_s: float = 60.0) -> None:
        """Start each (slot, command) at once, run until none moves, then one more poll; note the drifts."""
        for slot, command in moves:
            self.start(slot, command)
        waited = 0.0
        while any(self.rig.status(slot) & MOVING for slot, _ in moves):
            assert waited < timeout_s, f"still moving after {timeout_s} s: {moves}"
            self.run(self.rig.scan_s)
            waited += self.rig.scan_s
        self.run(self.rig.scan_s)
        for slot, _ in moves:
            for metric, track in self.of(slot).tracks.items():
                drift = track.drift()
                if drift is not None:
                    key = f"{NAMES[slot]} {metric}"
                    self.max_drift[key] = max(self.max_drift.get(key, 0.0), abs(drift))

    def active(self, name: str) -> set[str]:
        return {a["code"] for a in self.alarms.listing() if a["active"] and a["subject"] == name}
