"""sd_notify: READY / STOPPING / WATCHDOG datagrams, the watchdog withheld while a bus task is dead, and no-ops without systemd."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from controller.event_store import EventStore
from controller.site import Site
from controller.systemd import Notifier
from tests.unit.test_lane_properties import CFG


@pytest.fixture
def listener(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(5)
    yield sock, str(path)
    sock.close()


def received(sock: socket.socket) -> list[str]:
    """Every datagram waiting on the socket, without blocking."""
    sock.setblocking(False)
    messages = []
    try:
        while True:
            messages.append(sock.recv(4096).decode())
    except BlockingIOError:
        return messages
    finally:
        sock.settimeout(5)


def test_notify_sends_one_datagram_of_key_value_lines(listener) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled and notifier.notify(READY=1, STATUS="supervising 8 devices")
    assert sock.recv(4096).decode() == "READY=1\nSTATUS=supervising 8 devices"


def test_an_abstract_socket_name_is_used_as_such() -> None:
    name = f"barrierd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).notify(STOPPING=1)
        assert sock.recv(4096) == b"STOPPING=1"


def test_without_systemd_nothing_is_sent_and_no_watchdog_runs() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and not notifier.notify(READY=1)
    assert notifier.watchdog_s is None
    asyncio.run(asyncio.wait_for(notifier.watchdog(lambda: None), 1))  # returns at once


@pytest.mark.parametrize(
    ("env", "period"),
    [
        ({"WATCHDOG_USEC": "10000000"}, 10.0),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}, 10.0),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "ten"}, None),
        ({}, None),
    ],
)
def test_the_watchdog_period_is_taken_only_when_it_is_meant_for_this_process(env, period) -> None:
    assert Notifier({"NOTIFY_SOCKET": "/nonexistent", **env}).watchdog_s == period


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_watchdog_is_pinged_while_healthy_and_withheld_while_not(listener) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
    problem: list[str | None] = [None]
    task = asyncio.create_task(notifier.watchdog(lambda: problem[0]))
    await asyncio.sleep(4.5)  # virtual time: pings at 0, 1, 2, 3, 4
    healthy = received(sock)
    problem[0] = "bus-plc-lane-1 ended: RuntimeError('boom')"
    await asyncio.sleep(3.0)
    unhealthy = received(sock)
    task.cancel()
    assert healthy == ["WATCHDOG=1"] * 5
    assert unhealthy and all(m.startswith("STATUS=unhealthy: bus-plc-lane-1 ended") for m in unhealthy)


@pytest.mark.asyncio
async def test_the_site_names_a_bus_task_that_ended(tmp_path) -> None:
    site = Site(CFG, EventStore(tmp_path / "events.sqlite"))
    assert site.health_problem() is None

    async def crash() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(crash(), name="bus-plc-lane-1")
    await asyncio.gather(task, return_exceptions=True)
    site._tasks.append(task)
    assert site.health_problem() == "bus-plc-lane-1 ended: RuntimeError('boom')"
    site.store.close()
