"""Road blocker (rising kerb): closed means raised, open means lowered; the only kind with EFO."""

from controller.devices.leaf import LeafDevice
from hal.profile import Command, Kind

PEOPLE_WORDS = {"open": "lowered", "closed": "raised", "opening": "lowering", "closing": "raising"}


class RoadBlocker(LeafDevice):
    KIND = Kind.ROAD_BLOCKER
    VERBS = {**LeafDevice.VERBS, "raise": Command.CLOSE, "lower": Command.OPEN, "efo": Command.EFO}
    OPENING_VERBS = frozenset({"open", "lower"})
    SECURE_VERB, LOCKDOWN_VERB, OPEN_VERB = "raise", "efo", "lower"

    def shown(self, state: str) -> str:
        return PEOPLE_WORDS.get(state, state)
