"""Folding gate: a fast bi-folding leaf with a lock bolt at the closed limit."""

from controller.devices.leaf import LeafDevice
from hal.profile import Kind


class FoldingGate(LeafDevice):
    KIND = Kind.FOLDING_GATE
