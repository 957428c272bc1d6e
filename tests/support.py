"""Helpers shared by the test tiers: the repository's paths, poll-with-deadline waits and free loopback ports."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO_SITE = REPO / "config" / "sites" / "demo.toml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], object], timeout_s: float, what: str, step_s: float = 0.05):
    """Poll `check` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(step_s)
    raise AssertionError(f"not within {timeout_s:.1f} s: {what} (last: {last!r})")


async def async_wait_until(check: Callable[[], object], timeout_s: float, what: str, step_s: float = 0.02):
    """The asyncio form of wait_until."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last = None
    while loop.time() < deadline:
        last = check()
        if last:
            return last
        await asyncio.sleep(step_s)
    raise AssertionError(f"not within {timeout_s:.1f} s: {what} (last: {last!r})")
