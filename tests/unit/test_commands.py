"""Command rules: roles, refusals naming their rule, no write when refused, every request recorded."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio

from config.loader import load_site
from controller.commands import ExitCode, build_registry
from controller.auth import Caller
from controller.event_store import EventStore
from controller.site import Site
from controller.states import LaneMode
from hal.errors import CommsError
from hal.profile import AckResult, Command, Kind, SignalCommand, Status
from hal.snapshot import SlotSnapshot
from hal.unit import CommandOutcome, Quality
from tests.support import DEMO_SITE

GUARD = Caller(uid=1001, gid=1001, pid=42, user="guard", role="operator")
VIEWER = Caller(uid=1002, gid=1002, pid=43, user="visitor", role="viewer")
TECH = Caller(uid=1003, gid=1003, pid=44, user="tech", role="technician")


class FakeBus:
    """Stands in for hal.bus.Bus: records commands and answers with a chosen outcome."""

    def __init__(self):
        self.written: list[tuple[str, int, int]] = []
        self.answer = AckResult.ACCEPTED
        self.fail: Exception | None = None

    async def command(self, plc: str, slot: int, code: int, recheck=None) -> CommandOutcome:
        if recheck is not None:
            recheck()
        if self.fail is not None:
            raise self.fail
        self.written.append((plc, slot, code))
        return CommandOutcome(acknowledged=self.answer is not None, result=self.answer, seq=len(self.written))


@pytest_asyncio.fixture
async def site(tmp_path):
    site = Site(load_site(DEMO_SITE), EventStore(tmp_path / "events.sqlite"))
    bus = FakeBus()
    site.buses = {name: bus for name in site.plcs}
    for device in site.devices.values():
        kind = device.KIND
        status = Status.AT_CLOSED if kind != Kind.TRAFFIC_SIGNAL else 2
        await device.observe(Quality.GOOD, SlotSnapshot(kind, status, 1000, 0, 0, 0, 0, 0, 0, 0), None)
    yield site, bus
    site.store.close()


def commands_table(site):
    return [(c["user"], c["command"], c["outcome"], c["exit_code"]) for c in site.store.recent_commands()]


@pytest.mark.asyncio
async def test_operator_closes_a_gate(site):
    site, bus = site
    reply = await build_registry().dispatch(site, {"command": "close", "args": {"device": "gate-1"}}, GUARD)
    assert reply.code is ExitCode.DONE
    assert bus.written == [("plc-lane-1", 0, Command.CLOSE)]
    assert site.devices["gate-1"].intent.verb == "close" and site.devices["gate-1"].intent.by == "guard"
    assert commands_table(site) == [("guard", "close", "done", 0)]


@pytest.mark.asyncio
async def test_blocker_raise_and_lower_map_to_close_and_open(site):
    site, bus = site
    registry = build_registry()
    await registry.dispatch(site, {"command": "lower", "args": {"device": "blocker-2"}}, GUARD)
    await registry.dispatch(site, {"command": "raise", "args": {"device": "blocker-2"}}, GUARD)
    assert bus.written == [("plc-lane-2", 1, Command.OPEN), ("plc-lane-2", 1, Command.CLOSE)]


@pytest.mark.asyncio
async def test_viewer_is_not_authorised_and_nothing_is_written(site):
    site, bus = site
    reply = await build_registry().dispatch(site, {"command": "open", "args": {"device": "gate-1"}}, VIEWER)
    assert reply.code is ExitCode.NOT_AUTHORISED and "needs role operator" in reply.message
    assert bus.written == []
    assert commands_table(site) == [("visitor", "open", "not_authorised", 4)]


@pytest.mark.asyncio
async def test_reset_needs_a_technician(site):
    site, bus = site
    registry = build_registry()
    assert (await registry.dispatch(site, {"command": "reset", "args": {"device": "gate-1"}}, GUARD)).code is ExitCode.NOT_AUTHORISED
    assert (await registry.dispatch(site, {"command": "reset", "args": {"device": "gate-1"}}, TECH)).code is ExitCode.DONE
    assert bus.written == [("plc-lane-1", 0, Command.RESET)]


@pytest.mark.asyncio
async def test_unknown_data_refuses_with_the_rule_named_and_writes_nothing(site):
    site, bus = site
    await site.devices["gate-1"].observe(Quality.INVALID, None, "comms lost")
    reply = await build_registry().dispatch(site, {"command": "open", "args": {"device": "gate-1"}}, GUARD)
    assert reply.code is ExitCode.REFUSED
    assert "rule data_not_valid" in reply.message
    assert bus.written == []


@pytest.mark.asyncio
async def test_fault_refuses_opening_but_allows_closing(site):
    site, bus = site
    gate = site.devices["gate-1"]
    await gate.observe(Quality.GOOD, SlotSnapshot(Kind.FOLDING_GATE, Status.AT_OPEN | Status.AT_CLOSED, 0, 0, 0, 0, 0, 0, 0, 0), None)
    assert gate.state == "fault"
    registry = build_registry()
    refused = await registry.dispatch(site, {"command": "open", "args": {"device": "gate-1"}}, GUARD)
    assert refused.code is ExitCode.REFUSED and "rule device_fault" in refused.message
    allowed = await registry.dispatch(site, {"command": "close", "args": {"device": "gate-1"}}, GUARD)
    assert allowed.code is ExitCode.DONE
    assert bus.written == [("plc-lane-1", 0, Command.CLOSE)]


@pytest.mark.asyncio
async def test_plc_rejection_is_a_refusal_with_its_reason(site):
    site, bus = site
    bus.answer = AckResult.REJECTED_INTERLOCK
    reply = await build_registry().dispatch(site, {"command": "raise", "args": {"device": "blocker-1"}}, GUARD)
    assert reply.code is ExitCode.REFUSED
    assert "REJECTED_INTERLOCK" in reply.message and "rule plc_rejected" in reply.message
    assert site.devices["blocker-1"].intent is None


@pytest.mark.asyncio
async def test_unacknowledged_and_comms_errors_are_errors(site):
    site, bus = site
    registry = build_registry()
    bus.answer = None
    reply = await registry.dispatch(site, {"command": "close", "args": {"device": "gate-1"}}, GUARD)
    assert reply.code is ExitCode.ERROR and "not acknowledged" in reply.message
    bus.fail = CommsError("link down")
    reply = await registry.dispatch(site, {"command": "close", "args": {"device": "gate-1"}}, GUARD)
    assert reply.code is ExitCode.ERROR and "link down" in reply.message


@pytest.mark.parametrize(
    ("request_", "text"),
    [
        ({"command": "fly", "args": {}}, "unknown command"),
        ({"command": "open", "args": {"device": "nope"}}, "no device named"),
        ({"command": "raise", "args": {"device": "gate-1"}}, "not a command for gate-1"),
        ({"command": "green", "args": {"device": "gate-1"}}, "not a command for gate-1"),
        ({"command": "open", "args": {"device": "signal-1"}}, "not a command for signal-1"),
    ],
)
@pytest.mark.asyncio
async def test_usage_errors(site, request_, text):
    site, bus = site
    reply = await build_registry().dispatch(site, request_, GUARD)
    assert reply.code is ExitCode.USAGE and text in reply.message
    assert bus.written == []


class SlowBus(FakeBus):
    """A bus whose queue is busy: the write happens a little after the command is queued."""

    async def command(self, plc: str, slot: int, code: int, recheck=None) -> CommandOutcome:
        await asyncio.sleep(0.01)
        return await super().command(plc, slot, code, recheck)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_airlock_pair_opened_at_the_same_moment_opens_only_one(site):
    site, _ = site
    bus = SlowBus()
    site.buses = {name: bus for name in site.plcs}
    registry = build_registry()
    replies = await asyncio.gather(
        registry.dispatch(site, {"command": "open", "args": {"device": "bay-entry"}}, GUARD),
        registry.dispatch(site, {"command": "open", "args": {"device": "bay-exit"}}, GUARD),
    )
    assert sorted(r.code for r in replies) == [ExitCode.DONE, ExitCode.REFUSED]
    assert "rule never_both_open" in next(r.message for r in replies if r.code is ExitCode.REFUSED)
    assert len(bus.written) == 1


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_an_open_queued_before_a_lockdown_is_not_written_after_it(site):
    site, _ = site
    bus = SlowBus()
    site.buses = {name: bus for name in site.plcs}
    registry = build_registry()
    opening = asyncio.ensure_future(registry.dispatch(site, {"command": "green", "args": {"device": "signal-1"}}, GUARD))
    await asyncio.sleep(0)  # the green is checked and queued
    lockdown = asyncio.ensure_future(
        registry.dispatch(site, {"command": "lockdown", "args": {"lane": "lane-1", "reason": "test"}}, GUARD))
    reply = await opening
    await lockdown
    assert reply.code is ExitCode.REFUSED and "rule lockdown" in reply.message
    assert ("plc-lane-1", 2, SignalCommand.GREEN) not in bus.written


@pytest.mark.asyncio
async def test_a_reset_that_fails_keeps_the_latched_fault(site):
    site, bus = site
    gate = site.devices["gate-1"]
    gate.latched_fault = "travel timeout: no limit reached within 4.5 s"
    bus.fail = CommsError("link down")
    reply = await build_registry().dispatch(site, {"command": "reset", "args": {"device": "gate-1"}}, TECH)
    assert reply.code is ExitCode.ERROR
    assert gate.latched_fault is not None
    bus.fail, bus.answer = None, AckResult.REJECTED_ESTOP
    reply = await build_registry().dispatch(site, {"command": "reset", "args": {"device": "gate-1"}}, TECH)
    assert reply.code is ExitCode.REFUSED and gate.latched_fault is not None


@pytest.mark.asyncio
async def test_a_site_lockdown_hands_every_securing_write_to_the_buses_before_the_lanes_bookkeeping(site):
    site, bus = site
    lane_modes_at_each_write = []
    command = bus.command

    async def noting_lane_modes(plc, slot, code, recheck=None):
        lane_modes_at_each_write.append({lane.name: lane.mode for lane in site.lanes.values()})
        return await command(plc, slot, code, recheck)

    bus.command = noting_lane_modes
    reply = await build_registry().dispatch(site, {"command": "lockdown", "args": {"reason": "test"}}, GUARD)
    assert reply.code is ExitCode.DONE, reply.message
    assert len(lane_modes_at_each_write) == len(site.devices)
    assert all(LaneMode.LOCKDOWN not in modes.values() for modes in lane_modes_at_each_write), \
        "a lane's mode change (transition, two SQLite rows, a log line) ran before a securing write was queued"
    assert all(lane.mode == LaneMode.LOCKDOWN for lane in site.lanes.values())


@pytest.mark.asyncio
async def test_an_opening_command_is_refused_from_the_moment_a_lane_lockdown_latches_even_before_its_mode_shows(site):
    """A reading's shown-mode change in progress queues the lane's lock behind it; the latch refuses at once."""
    site, bus = site
    lane = site.lanes["lane-1"]
    registry = build_registry()
    showing = asyncio.ensure_future(lane.trigger(f"show_{'mixed' if lane.mode != 'mixed' else 'unknown'}",
                                                 reason="a device moved"))
    await asyncio.sleep(0)
    lockdown = asyncio.ensure_future(
        registry.dispatch(site, {"command": "lockdown", "args": {"lane": "lane-1", "reason": "test"}}, GUARD))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    green = await registry.dispatch(site, {"command": "green", "args": {"device": "signal-1"}}, GUARD)
    sequence = await registry.dispatch(site, {"command": "lane_open", "args": {"lane": "lane-1"}}, GUARD)
    await showing
    assert (await lockdown).code is ExitCode.DONE
    assert green.code is ExitCode.REFUSED and "rule lockdown" in green.message, green.message
    assert sequence.code is ExitCode.REFUSED and "lockdown" in sequence.message, sequence.message
    assert ("plc-lane-1", 2, SignalCommand.GREEN) not in bus.written
    assert lane.mode == LaneMode.LOCKDOWN
