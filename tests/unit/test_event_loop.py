"""hal.event_loop: the precise selector still reports every event, waits for it, and falls back above FD_SETSIZE."""

from __future__ import annotations

import asyncio
import selectors
import socket
import threading
from pathlib import Path

import pytest

from hal import event_loop
from hal.event_loop import PreciseEpollSelector


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_a_descriptor_that_is_ready_is_reported_with_and_without_a_timeout(pair) -> None:
    a, b = pair
    with PreciseEpollSelector() as selector:
        selector.register(a, selectors.EVENT_READ, "a")
        assert selector.select(0.001) == []
        b.send(b"x")
        for timeout in (None, 0, 0.5):
            ((key, events),) = selector.select(timeout)
            assert key.data == "a" and events & selectors.EVENT_READ


def test_a_wait_ends_when_a_descriptor_becomes_ready_not_at_its_timeout(pair) -> None:
    a, b = pair
    sender = threading.Timer(0.05, b.send, args=(b"x",))
    with PreciseEpollSelector() as selector:
        selector.register(a, selectors.EVENT_READ, "a")
        sender.start()
        ready = selector.select(30)  # the test's own timeout fails it if the wait is not woken
    sender.join()
    assert [key.data for key, _ in ready] == ["a"]


def test_without_select_for_the_epoll_descriptor_it_is_a_plain_epoll_selector(pair, monkeypatch) -> None:
    monkeypatch.setattr(event_loop, "SELECT_FD_LIMIT", 0)  # as if the epoll descriptor were above FD_SETSIZE
    a, b = pair
    with PreciseEpollSelector() as selector:
        selector.register(a, selectors.EVENT_READ, "a")
        assert selector.select(0.001) == []
        b.send(b"x")
        assert [key.data for key, _ in selector.select(0.5)] == ["a"]


@pytest.mark.real_time("a 1.7 ms timer on the precise loop itself, which looptime would replace")
def test_run_drives_a_coroutine_on_the_precise_loop_with_timer_slack_reduced() -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.0017)
        return type(loop._selector).__name__  # type: ignore[attr-defined]

    assert event_loop.run(main()) == "PreciseEpollSelector"
    assert int(Path("/proc/self/timerslack_ns").read_text()) == event_loop.TIMER_SLACK_NS


def test_without_precision_run_takes_uvloop_and_wakes_a_millisecond_past_a_due_time() -> None:
    async def main() -> tuple[str, float]:
        loop = asyncio.get_running_loop()
        return type(loop).__module__, event_loop.wake_slack_s(loop)

    module, slack = event_loop.run(main(), precise=False)
    assert module.startswith("uvloop")
    assert slack == event_loop.COARSE_WAKE_SLACK_S  # its clock counts milliseconds: a shorter slack would spin
    assert event_loop.run(main()) == ("asyncio.unix_events", event_loop.PRECISE_WAKE_SLACK_S)


def test_without_uvloop_installed_run_falls_back_to_the_precise_loop(monkeypatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "uvloop", None)  # import uvloop raises ImportError

    async def main() -> str:
        return type(asyncio.get_running_loop()._selector).__name__  # type: ignore[attr-defined]

    assert event_loop.run(main(), precise=False) == "PreciseEpollSelector"
