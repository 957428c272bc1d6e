"""Command rules: roles, refusals naming their rule, no write when refused, every request recorded."""

from __future__ import annotations

import pytest
import pytest_asyncio

from config import load_site
from controller.commands import ExitCode, build_registry
from controller.event_store import Caller, EventStore
from controller.site import Site
from hal.errors import CommsError
from hal.profile import AckResult, Command, Kind, Status
from hal.snapshot import SlotSnapshot
from hal.unit import CommandOutcome, Quality
from tests.e2e.harness import DEMO_SITE

GUARD = Caller(uid=1001, gid=1001, pid=42, user="guard", role="operator")
VIEWER = Caller(uid=1002, gid=1002, pid=43, user="visitor", role="viewer")
TECH = Caller(uid=1003, gid=1003, pid=44, user="tech", role="technician")


class FakeBus:
    """Stands in for hal.bus.Bus: records commands and answers with a chosen outcome."""

    def __init__(self):
        self.written: list[tuple[str, int, int]] = []
        self.answer = AckResult.ACCEPTED
        self.fail: Exception | None = None

    async def command(self, plc: str, slot: int, code: int) -> CommandOutcome:
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
