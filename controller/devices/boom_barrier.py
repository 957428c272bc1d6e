"""Boom barrier: the drive-through arm."""

from controller.devices.leaf import LeafDevice
from hal.profile import Kind


class BoomBarrier(LeafDevice):
    KIND = Kind.BOOM_BARRIER
