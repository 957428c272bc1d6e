"""A site with the kind added by one registry entry (a spike strip): sim-plc and barrierd drive it like a
road blocker, with its own travel time, and a lockdown raises it by EFO."""

from __future__ import annotations

import json

import pytest

from hal.profile import SLOT_BASE, SLOT_STRIDE, Command, SlotHolding
from tests.e2e.harness import REPO, Processes, site_copy
from tests.support import wait_until

pytestmark = pytest.mark.e2e
STAFF_SITE = REPO / "config" / "sites" / "staff-lane.toml"


@pytest.fixture
def staff_lane(tmp_path):
    procs = Processes(tmp=tmp_path, site=site_copy(tmp_path, STAFF_SITE))
    procs.start_sim()
    procs.start_daemon()
    yield procs
    procs.close()


def test_a_spike_strip_lowers_in_its_own_time_and_a_lockdown_raises_it_by_efo(staff_lane):
    procs = staff_lane
    wait_until(lambda: procs.device("spikes-s")["display"] == "raised", 5, "spike strip read raised")
    assert procs.device("spikes-s")["kind"] == "spike_strip"
    code, out, err = procs.ctl("lower", "spikes-s", "--wait")  # --wait gives up after 1.5 s + 2 s
    assert code == 0, err
    assert "spikes-s lowered: in place" in out
    code, out, err = procs.ctl("lockdown", "--reason", "staff lane breach", "--json")
    assert code == 0, err
    assert "spikes-s" in json.loads(out)["secured_at"]
    command = SLOT_BASE + 1 * SLOT_STRIDE + SlotHolding.COMMAND
    sent = [w["values"][0] for w in procs.writes() if w["address"] == command]
    assert sent == [Command.OPEN, Command.EFO]
    assert procs.device("spikes-s")["display"] == "raised"
