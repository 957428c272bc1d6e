"""systemd service notification: READY=1 once serving, STOPPING=1, and WATCHDOG=1 only while every bus task runs.

The sd_notify protocol is one datagram to the Unix socket named in $NOTIFY_SOCKET (a leading '@'
is the abstract namespace). systemd-python needs libsystemd headers to build and the small pure
Python packages are unmaintained, so these few lines are kept here. Without $NOTIFY_SOCKET (run by
hand, in tests, under another supervisor) every call does nothing.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable

import structlog

log = structlog.get_logger("controller.systemd")


class Notifier:
    """Talks to systemd if it started us with Type=notify; otherwise a no-op."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + path[1:] if path.startswith("@") else path
        self.watchdog_s = self._watchdog_period(env)

    @staticmethod
    def _watchdog_period(env: dict[str, str] | os._Environ[str]) -> float | None:
        """systemd's WatchdogSec= in seconds, if it is meant for this process."""
        usec, pid = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        try:
            seconds = int(usec) / 1_000_000
        except ValueError:
            return None
        return seconds if seconds > 0 else None

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, **fields: object) -> bool:
        """Send e.g. notify(READY=1, STATUS="serving"); False if there is nobody to tell or it failed."""
        if not self.enabled:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self.address)
        except OSError as exc:
            log.warning("systemd_notify_failed", error=str(exc))
            return False
        return True

    async def watchdog(self, healthy: Callable[[], str | None]) -> None:
        """Ping at half the watchdog period while healthy() names no problem; stop pinging when it does,
        so systemd restarts barrierd (which moves nothing on start)."""
        if self.watchdog_s is None or not self.enabled:
            return
        while True:
            problem = healthy()
            if problem is None:
                self.notify(WATCHDOG=1)
            else:
                log.error("watchdog_withheld", problem=problem)
                self.notify(STATUS=f"unhealthy: {problem}")
            await asyncio.sleep(self.watchdog_s / 2)
