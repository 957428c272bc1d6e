"""One module per device kind: states, transition table and guards."""

from controller.devices.base import Device, StateChange
from controller.devices.boom_barrier import BoomBarrier
from controller.devices.folding_gate import FoldingGate
from controller.devices.road_blocker import RoadBlocker
from controller.devices.traffic_signal import TrafficSignal

DEVICE_CLASSES: dict[str, type[Device]] = {
    "folding_gate": FoldingGate,
    "road_blocker": RoadBlocker,
    "boom_barrier": BoomBarrier,
    "traffic_signal": TrafficSignal,
}

__all__ = ["DEVICE_CLASSES", "Device", "StateChange"]
