"""The kind registry (hal/kinds.py): consistent with the profile and the schema, and a kind added as one entry
(the spike strip) works end to end in the controller and the simulator."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from config import ConfigError
from config.loader import load_site
from config.schema import KIND_CODES, LaneRole
from controller.devices import DEVICE_CLASSES
from controller.interlocks import Refused, check_device_command
from hal.kinds import KINDS
from hal.profile import VALID_COMMANDS, AckResult, Command, SlotInput, Status
from hal.snapshot import SlotSnapshot
from hal.unit import Quality
from sim_plc.testing import PlcRig
from controller.event_store import EventStore
from controller.site import Site

STAFF_SITE = Path(__file__).resolve().parents[2] / "config" / "sites" / "staff-lane.toml"


@pytest.mark.parametrize("spec", KINDS.values(), ids=list(KINDS))
def test_every_kind_commands_only_what_its_profile_code_accepts(spec):
    assert set(spec.verbs.values()) <= VALID_COMMANDS[spec.code]
    assert spec.secure_verb in spec.verbs and spec.lockdown_verb in spec.verbs and spec.open_verb in spec.verbs
    assert spec.opening_verbs <= set(spec.verbs) and spec.vehicle_interlocked <= set(spec.verbs)


def test_the_schema_the_lanes_and_the_controller_read_the_same_kinds():
    assert set(KIND_CODES) == set(KINDS) == set(DEVICE_CLASSES)
    assert {spec.lane_role for spec in KINDS.values()} == set(typing.get_args(LaneRole))


def test_a_kind_not_in_the_registry_is_refused_naming_the_kinds(tmp_path):
    site = tmp_path / "site.toml"
    site.write_text(STAFF_SITE.read_text().replace('kind = "spike_strip"', 'kind = "spike_trip"'))
    with pytest.raises(ConfigError) as refused:
        load_site(site)
    assert "unknown kind 'spike_trip'" in str(refused.value) and "spike_strip" in str(refused.value)


@pytest.mark.asyncio
async def test_a_spike_strip_is_raised_and_lowered_has_efo_and_is_refused_raising_on_a_vehicle():
    site = Site(load_site(STAFF_SITE), EventStore(Path(":memory:")))
    strip = site.devices["spikes-s"]
    assert type(strip).__name__ == "SpikeStrip" and strip.LOCKDOWN_VERB == "efo"
    assert strip.VERBS["raise"] == Command.CLOSE and strip.VERBS["lower"] == Command.OPEN
    await strip.observe(Quality.GOOD, SlotSnapshot(2, int(Status.AT_OPEN), 0, 0, 0, 0, 0, 0, 0, 0), None)
    assert strip.state == "open" and strip.display_state == "lowered"
    await strip.observe(Quality.GOOD, SlotSnapshot(2, int(Status.AT_OPEN | Status.VEHICLE_PRESENT), 0, 0, 0, 0, 0,
                                                   0, 0, 0), None)
    with pytest.raises(Refused, match="vehicle_present"):
        check_device_command(site, strip, "raise")
    check_device_command(site, strip, "efo")  # EFO goes through: it is how a lockdown raises it
    site.store.close()


def test_the_simulated_spike_strip_travels_in_its_own_time():
    spec = KINDS["spike_strip"]
    rig = PlcRig([spec.code], positions={0: 0}, travel={0: (spec.sim_travel_s, spec.sim_efo_travel_s)})
    assert rig.command(0, Command.CLOSE) == AckResult.ACCEPTED
    took = rig.run_until(lambda: rig.has(0, Status.AT_CLOSED), 2.0)
    assert took == pytest.approx(spec.sim_travel_s, abs=0.03)
    assert rig.command(0, Command.OPEN) == AckResult.ACCEPTED
    rig.run_until(lambda: rig.has(0, Status.AT_OPEN), 2.0)
    assert rig.command(0, Command.EFO) == AckResult.ACCEPTED
    took = rig.run_until(lambda: rig.has(0, Status.AT_CLOSED), 2.0)
    assert took == pytest.approx(spec.sim_efo_travel_s, abs=0.03)
    assert rig.reg(0, SlotInput.LAST_TRAVEL_MS) == pytest.approx(spec.sim_efo_travel_s * 1000, abs=15)
