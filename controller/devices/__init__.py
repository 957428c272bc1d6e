"""Device machines by behaviour (leaf, signal); one class per kind of hal/kinds.py, built from its entry."""

from controller.devices.base import Device, StateChange
from controller.devices.leaf import LeafDevice
from controller.devices.traffic_signal import TrafficSignal
from hal.kinds import KINDS, KindSpec

BEHAVIOURS: dict[str, type[Device]] = {"leaf": LeafDevice, "signal": TrafficSignal}


def kind_class(spec: KindSpec) -> type[Device]:
    """The device class of one kind: its behaviour's class with the kind's verbs, states and words."""
    name = "".join(part.title() for part in spec.name.split("_"))
    return type(name, (BEHAVIOURS[spec.behaviour],), {
        "SPEC": spec, "KIND": spec.code, "VERBS": dict(spec.verbs), "OPENING_VERBS": spec.opening_verbs,
        "SECURE_VERB": spec.secure_verb, "LOCKDOWN_VERB": spec.lockdown_verb, "OPEN_VERB": spec.open_verb,
        "SECURED_STATE": spec.secured_state, "OPEN_STATE": spec.open_state,
    })


DEVICE_CLASSES: dict[str, type[Device]] = {name: kind_class(spec) for name, spec in KINDS.items()}

__all__ = ["DEVICE_CLASSES", "Device", "StateChange"]
