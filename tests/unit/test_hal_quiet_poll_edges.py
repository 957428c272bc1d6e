"""Quiet polls at their edges, each the same with quiet polls on and off: a command waits for a reply already in
flight (it may show another program), a reply from before a dropped link is never taken after it, and a slow
reply does not halve the poll rate."""

from __future__ import annotations

import asyncio

import pytest

from hal.bus import Bus
from hal.errors import CommsError
from hal.profile import Command, HeaderInput, Kind, Status
from hal.unit import Quality, UnitSpec
from tests.unit.bus_rig import PLC, FakeTransport, Readings, now, running, until

KINDS = [Kind.FOLDING_GATE, Kind.ROAD_BLOCKER]


def bus_for(fake: FakeTransport, readings: Readings, quiet: bool, kinds=KINDS, watchdog_ms: int = 2000) -> Bus:
    spec = UnitSpec(name=PLC, unit=fake.unit, slot_kinds=tuple(kinds), watchdog_ms=watchdog_ms)
    return Bus(fake, [spec], poll_s=0.1, timeout_s=0.3, comms_lost_polls=3, frozen_polls=5,
               on_reading=readings, on_quiet_reading=readings.quietly if quiet else None)


def command_while_the_next_read_is_in_flight(bus: Bus, fake: FakeTransport, results: list, then=None):
    """On the next poll's read: `then()` (the PLC changes under it), and an OPEN queued 5 ms into the read."""
    armed = {"go": True}

    def on_call(call):
        if call.op == "read_input" and armed["go"]:
            armed["go"] = False
            if then is not None:
                then()

            async def queue():
                await asyncio.sleep(0.005)
                try:
                    results.append(await bus.command(PLC, 0, Command.OPEN))
                except CommsError as exc:
                    results.append(exc)
            asyncio.get_running_loop().create_task(queue())

    return on_call


@pytest.mark.parametrize("quiet", [False, True], ids=["task", "quiet"])
@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_command_queued_during_a_read_waits_for_its_reply_which_shows_another_program(quiet):
    fake, readings = FakeTransport(KINDS), Readings()
    bus = bus_for(fake, readings, quiet)
    results: list = []
    async with running(bus):
        await until(lambda: len(readings.items) >= 8)
        fake.delay = 0.02

        def reprogrammed():
            fake.input[HeaderInput.CONFIG_CRC32] ^= 0xFFFF

        fake.on_call = command_while_the_next_read_is_in_flight(bus, fake, results, then=reprogrammed)
        mark = fake.mark()
        await until(lambda: results, timeout=3)
    assert isinstance(results[0], CommsError)
    assert fake.calls("write_registers", since=mark) == []  # nothing written to a PLC running another program


@pytest.mark.parametrize("quiet", [False, True], ids=["task", "quiet"])
@pytest.mark.asyncio
@pytest.mark.looptime
async def test_after_a_dropped_link_the_first_good_reading_is_read_on_the_new_connection(quiet):
    fake, readings = FakeTransport(KINDS[:1]), Readings()
    bus = bus_for(fake, readings, quiet, kinds=KINDS[:1])
    results: list = []
    async with running(bus):
        await until(lambda: len(readings.items) >= 8)
        fake.delay = 0.02
        on_read = command_while_the_next_read_is_in_flight(bus, fake, results)

        def on_call(call):
            on_read(call)
            if call.op == "write_registers":
                fake.drop()  # the link goes down under the command write, for a few seconds
                fake.connect_failures = 30
                fake.ack_result = None
                fake.set_slot(0, STATUS=Status.AT_OPEN, POSITION=0)  # meanwhile the gate is opened by hand

        fake.on_call = on_call
        mark = readings.mark()
        await until(lambda: results, timeout=3)
        dropped_at = now()
        await until(lambda: any(r.quality is Quality.GOOD for r in readings.since(mark)[2:]), timeout=20)
    first = next(r for t, r in readings.items[mark:] if r.quality is Quality.GOOD and t > dropped_at)
    assert first.snapshot.read_at > dropped_at and first.snapshot.slots[0].position == 0


@pytest.mark.parametrize("quiet", [False, True], ids=["task", "quiet"])
@pytest.mark.parametrize("reply_s", [0.04, 0.06])
@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_reply_slower_than_half_the_period_keeps_the_poll_rate(quiet, reply_s):
    fake, readings = FakeTransport(KINDS[:1]), Readings()
    bus = bus_for(fake, readings, quiet, kinds=KINDS[:1], watchdog_ms=8000)
    async with running(bus):
        await until(lambda: len(readings.items) >= 3)
        fake.delay = reply_s
        await until(lambda: now() >= 2.0, timeout=5)
        mark, started = fake.mark(), now()
        await until(lambda: now() >= started + 5.0, timeout=10)
    assert len(fake.calls("read_input", since=mark)) >= 48  # 10 Hz for 5 s
