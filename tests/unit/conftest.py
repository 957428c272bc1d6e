"""The unit tier's clock rule: no real time is slept away; waits run on a fake clock or looptime's virtual loop time."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import looptime
import pytest

PROJECT = Path(__file__).resolve().parents[2]
CALL_FAILED = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "real_time(reason): a unit test that measures real timers and may sleep (say why)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


def _called_from_the_project(depth: int = 2) -> bool:
    """Whether the sleep was written in the project's code or its tests (the standard library's own polls are not)."""
    path = Path(sys._getframe(depth).f_code.co_filename).resolve()
    return path.is_relative_to(PROJECT) and "site-packages" not in path.parts


def _virtual(loop: asyncio.AbstractEventLoop) -> bool:
    return isinstance(loop, looptime.LoopTimeEventLoop) and loop.looptime_on


@pytest.fixture(autouse=True)
def no_real_sleep(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Fail a unit test during which real time is slept away.

    time.sleep written in the project's code or tests fails at once. An asyncio.sleep on a loop without
    looptime fails the test once it has run its course (at teardown, in case the sleeper swallowed the
    failure): a timer the code under test starts and that is cancelled unexpired costs no time and is
    not a wait, so it is let be.
    """
    if request.node.get_closest_marker("real_time"):
        yield
        return
    slept: list[str] = []
    real_sleep, real_async_sleep = time.sleep, asyncio.sleep

    def refuse_sleep(seconds: float) -> None:
        if _called_from_the_project():
            slept.append(f"time.sleep({seconds!r})")
            pytest.fail(f"time.sleep({seconds!r}) in the unit tier: inject a clock and a sleep")
        real_sleep(seconds)

    async def virtual_sleep(delay: float, result: object = None) -> object:
        if delay <= 0 or _virtual(asyncio.get_running_loop()):
            return await real_async_sleep(delay, result)
        await real_async_sleep(delay)
        slept.append(f"asyncio.sleep({delay!r})")
        raise pytest.fail.Exception(f"asyncio.sleep({delay!r}) in real time: mark the test @pytest.mark.looptime")

    monkeypatch.setattr(time, "sleep", refuse_sleep)
    monkeypatch.setattr(asyncio, "sleep", virtual_sleep)
    yield
    if slept and not request.node.stash.get(CALL_FAILED, False):  # not reported twice
        pytest.fail(f"real sleeps in a unit test: {', '.join(slept)}; mark it @pytest.mark.looptime", pytrace=False)
