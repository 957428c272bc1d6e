"""Lane behaviour on a fake plant: step order, a failing step named, maintenance, restore after restart."""

from __future__ import annotations


import pytest
import pytest_asyncio

from controller.commands import ExitCode, build_registry
from controller.event_store import EventStore
from controller.site import Site
from hal.profile import Command, SignalCommand, SignalStatus, Status
from tests.unit.test_lane_properties import CFG, GUARD, PLCS, TECH, FakePlant, plant_site


@pytest_asyncio.fixture
async def plant(tmp_path):
    fake = await plant_site(EventStore(tmp_path / "events.sqlite"))
    yield fake
    fake.site.store.close()


async def run(site, command, caller=GUARD, **args):
    return await build_registry().dispatch(site, {"command": command, "args": args}, caller)


@pytest.mark.asyncio
async def test_lane_classified_secured_and_sequences_run_in_order(plant):
    site = plant.site
    assert site.lanes["lane-1"].mode == "secured"
    assert (await run(site, "lane_open", lane="lane-1")).code is ExitCode.DONE
    assert plant.writes == [("gate-1", Command.OPEN), ("blocker-1", Command.OPEN), ("signal-1", SignalCommand.GREEN)]
    assert site.lanes["lane-1"].mode == "open"
    plant.writes.clear()
    assert (await run(site, "lane_secure", lane="lane-1")).code is ExitCode.DONE
    assert plant.writes == [("signal-1", SignalCommand.RED), ("blocker-1", Command.CLOSE), ("gate-1", Command.CLOSE)]


@pytest.mark.asyncio
async def test_a_failing_step_puts_the_lane_in_fault_naming_step_and_device(plant):
    site = plant.site
    await run(site, "lane_open", lane="lane-1")
    plant.status["blocker-1"] |= int(Status.VEHICLE_PRESENT)
    await plant.feed(site.devices["blocker-1"])
    reply = await run(site, "lane_secure", lane="lane-1")
    assert reply.code is ExitCode.ERROR, "steps 1 and 2 had written: not a plain refusal"
    assert "step 3 (blocker blocker-1 raise)" in reply.message and "vehicle_present" in reply.message
    assert site.lanes["lane-1"].mode == "fault"
    assert ("gate-1", Command.CLOSE) not in plant.writes[-2:], "the sequence stops at the failing step"
    refused = await run(site, "lane_open", lane="lane-1")
    assert refused.code is ExitCode.REFUSED and "lane_not_secured" in refused.message


@pytest.mark.asyncio
async def test_maintenance_turns_sequencing_off_and_exit_checks_devices(plant):
    site = plant.site
    assert (await run(site, "maintenance_enter", TECH, lane="lane-2", reason="loop repair")).code is ExitCode.DONE
    refused = await run(site, "lane_open", lane="lane-2")
    assert refused.code is ExitCode.REFUSED and "maintenance" in refused.message
    not_tech = await run(site, "open", GUARD, device="gate-2")
    assert not_tech.code is ExitCode.NOT_AUTHORISED
    assert (await run(site, "open", TECH, device="gate-2")).code is ExitCode.DONE
    await run(site, "maintenance_exit", TECH, lane="lane-2", reason="done")
    assert site.lanes["lane-2"].mode == "mixed" and "gate-2 open" in site.lanes["lane-2"].reason
    await run(site, "maintenance_enter", TECH, lane="lane-2", reason="again")
    await run(site, "close", TECH, device="gate-2")
    await run(site, "maintenance_exit", TECH, lane="lane-2", reason="done")
    assert site.lanes["lane-2"].mode == "secured"


@pytest.mark.asyncio
async def test_modes_survive_a_restart_and_interrupted_sequences_become_faults(tmp_path):
    store = EventStore(tmp_path / "events.sqlite")
    store.save_mode("lane:lane-1", "opening", "guard", "open requested")
    store.save_mode("lane:lane-2", "lockdown", "guard", "drill")
    store.save_mode("site", "lockdown", "guard", "drill")
    store.save_in_flight("gate-1", "open", "guard")
    site = Site(CFG, store)
    assert site.lanes["lane-1"].mode == "fault" and "interrupted by a restart" in site.lanes["lane-1"].reason
    assert site.lanes["lane-2"].mode == "lockdown" and site.lanes["lane-2"].reason == "drill"
    assert site.lockdown.latch is not None and site.lockdown.latch.by == "guard"
    interrupted = [e for e in store.recent_events() if e["kind"] == "command_interrupted"]
    assert [e["subject"] for e in interrupted] == ["gate-1"]
    assert store.load_in_flight() == {}
    store.close()


@pytest.mark.asyncio
async def test_an_unlatched_mode_is_read_again_after_a_restart_not_restored(tmp_path):
    store = EventStore(tmp_path / "events.sqlite")
    store.save_mode("lane:lane-1", "secured", "guard", "secured in 9.1 s")
    site = Site(CFG, store)
    assert site.lanes["lane-1"].mode == "unknown", "a saved 'secured' must not be shown before the devices are read"
    fake = FakePlant(site)
    fake.status["gate-1"] = int(Status.AT_OPEN)  # opened at the cabinet while barrierd was down
    for device in site.devices.values():
        await fake.feed(device)
    await site.lanes["lane-1"].on_devices_read()
    assert site.lanes["lane-1"].mode == "mixed" and "gate-1 open" in site.lanes["lane-1"].reason
    store.close()


@pytest.mark.asyncio
async def test_a_lanes_own_lockdown_outlives_the_release_of_a_site_lockdown_and_a_restart(tmp_path):
    store_path = tmp_path / "events.sqlite"
    site = Site(CFG, EventStore(store_path))
    fake = FakePlant(site)
    site.buses = {name: fake for name in PLCS}
    for device in site.devices.values():
        await fake.feed(device)
    assert (await run(site, "lockdown", lane="lane-1", reason="suspect vehicle")).code is ExitCode.DONE
    assert (await run(site, "lockdown", reason="site drill")).code is ExitCode.DONE
    reply = await run(site, "lockdown_release", TECH, reason="drill over")
    assert reply.code is ExitCode.DONE and "still in lockdown: lane-1" in reply.message
    assert site.lanes["lane-1"].mode == "lockdown" and site.lanes["lane-2"].mode == "secured"
    refused = await run(site, "open", GUARD, device="gate-1")
    assert refused.code is ExitCode.REFUSED and "rule lockdown" in refused.message
    site.store.close()

    site = Site(CFG, EventStore(store_path))  # barrierd restarted
    assert site.lanes["lane-1"].mode == "lockdown" and "lane-1" in site.lockdown.lane_latches
    fake = FakePlant(site)
    site.buses = {name: fake for name in PLCS}
    for device in site.devices.values():
        await fake.feed(device)
    assert (await run(site, "lockdown", reason="second drill")).code is ExitCode.DONE
    await run(site, "lockdown_release", TECH, reason="second drill over")
    assert site.lanes["lane-1"].mode == "lockdown"
    assert (await run(site, "lockdown_release", TECH, lane="lane-1", reason="vehicle cleared")).code is ExitCode.DONE
    assert site.lanes["lane-1"].mode == "secured" and site.lockdown.lane_latches == {}
    site.store.close()


@pytest.mark.asyncio
async def test_a_lane_latch_saved_without_its_lane_mode_still_locks_the_lane_after_a_restart(tmp_path):
    store = EventStore(tmp_path / "events.sqlite")
    store.save_mode("lockdown:lane:lane-1", "lockdown", "guard", "suspect vehicle")  # stopped before the lane mode
    site = Site(CFG, store)
    assert site.lanes["lane-1"].mode == "lockdown" and site.locked("gate-1")
    store.close()


@pytest.mark.asyncio
async def test_a_locked_lane_without_a_latch_row_gets_one_that_outlives_a_later_site_lockdown(tmp_path):
    path = tmp_path / "events.sqlite"
    store = EventStore(path)
    store.save_mode("lane:lane-1", "lockdown", "guard", "from an older barrierd")  # no latch row
    Site(CFG, store)
    store.save_mode("site", "lockdown", "guard", "site drill")  # a site lockdown later, then a restart
    store.close()
    store = EventStore(path)
    site = Site(CFG, store)
    fake = FakePlant(site)
    site.buses = {name: fake for name in PLCS}
    for device in site.devices.values():
        await fake.feed(device)
    await run(site, "lockdown_release", TECH, reason="drill over")
    assert site.lanes["lane-1"].mode == "lockdown", "the lane's own lockdown was lost"
    store.close()


@pytest.mark.asyncio
async def test_a_device_moved_singly_makes_the_lane_show_what_it_is(plant):
    site = plant.site
    lane = site.lanes["lane-1"]
    assert (await run(site, "open", device="gate-1")).code is ExitCode.DONE
    await lane.on_devices_read()
    assert lane.mode == "mixed" and "gate-1 open" in lane.reason and "lane secure lane-1" in lane.reason
    refused = await run(site, "lane_open", lane="lane-1")
    assert refused.code is ExitCode.REFUSED and "mixed" in refused.message, "interlocks read the same derived truth"
    assert (await run(site, "lower", device="blocker-1")).code is ExitCode.DONE
    assert (await run(site, "green", device="signal-1")).code is ExitCode.DONE
    await lane.on_devices_read()
    assert lane.mode == "open", "every device open by hand: the lane is open, whatever sequence ran last"
    assert (await run(site, "close", device="gate-1")).code is ExitCode.DONE
    await lane.on_devices_read()
    assert lane.mode == "mixed" and "blocker-1 lowered" in lane.reason
    assert (await run(site, "lane_secure", lane="lane-1")).code is ExitCode.DONE
    await lane.on_devices_read()
    assert lane.mode == "secured"
    shown = [e["summary"] for e in site.store.recent_events(500) if e["kind"] == "lane_mode"]
    assert shown[-4:] == ["lane-1: mixed → open", "lane-1: open → mixed", "lane-1: mixed → securing",
                          "lane-1: securing → secured"]


@pytest.mark.asyncio
async def test_events_read_as_a_guard_says_them(plant):
    site = plant.site
    assert (await run(site, "lower", device="blocker-1")).code is ExitCode.DONE
    summaries = [e["summary"] for e in site.store.recent_events(100)]
    assert "blocker-1: raised → lowered" in summaries, "blockers are raised / lowered, not closed / open"
    assert "guard: lower → accepted by the PLC" in summaries, "accepted is not in place"
    changes = [e["data"] for e in site.store.recent_events(100) if e["kind"] == "state_change"]
    assert {"from_state": "closed", "to_state": "open"}.items() <= changes[-1].items(), "data keep the states"


@pytest.mark.asyncio
async def test_a_sequence_refused_by_a_rule_before_it_wrote_anything_exits_3(plant):
    site = plant.site
    await run(site, "lane_open", lane="lane-1")
    plant.writes.clear()
    plant.status["signal-1"] |= int(SignalStatus.LOCAL)  # its key switch: the first step (red) is refused
    await plant.feed(site.devices["signal-1"])
    reply = await run(site, "lane_secure", lane="lane-1")
    assert reply.code is ExitCode.REFUSED and "device_local" in reply.message
    assert plant.writes == []
