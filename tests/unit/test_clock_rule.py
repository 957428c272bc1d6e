"""The unit tier's clock rule (tests/unit/conftest.py) fails real sleeps and lets virtual time, timers and real_time tests be."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

SLEEPERS = '''
import asyncio
import time

import pytest


def test_time_sleep():
    time.sleep(0.01)


@pytest.mark.asyncio
async def test_asyncio_sleep_in_real_time():
    await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_real_sleep_in_a_task_that_swallows_the_failure():
    async def swallow():
        try:
            await asyncio.sleep(0.01)
        except BaseException:
            pass
    await asyncio.create_task(swallow())


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_asyncio_sleep_in_loop_time():
    await asyncio.sleep(3600)


@pytest.mark.asyncio
async def test_a_timer_cancelled_before_it_expires():
    timer = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    timer.cancel()


@pytest.mark.real_time("this one measures a real timer")
def test_marked_real_time():
    time.sleep(0.001)
'''


def test_real_sleeps_fail_and_virtual_ones_pass(tmp_path: Path) -> None:
    tier = tmp_path / "tests" / "unit"
    tier.mkdir(parents=True)
    shutil.copy(Path(__file__).with_name("conftest.py"), tier)
    (tier / "test_sleepers.py").write_text(SLEEPERS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=strict", "-rfE", str(tier)],
        cwd=tmp_path, capture_output=True, text=True, check=False)
    report = result.stdout
    assert "2 failed, 4 passed, 1 error" in report, report  # the swallowed sleep fails at teardown
    for name in ("test_time_sleep", "test_asyncio_sleep_in_real_time"):
        assert f"FAILED tests/unit/test_sleepers.py::{name}" in report, report
    assert "ERROR tests/unit/test_sleepers.py::test_real_sleep_in_a_task_that_swallows_the_failure" in report, report
