"""A real Mosquitto broker on a free loopback port, for the end-to-end tests of publication and the centre."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.support import free_port, wait_until


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto", path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/local/sbin")
    if found is None:
        pytest.fail("mosquitto is not installed: `make test` installs it (Debian package mosquitto)")
    return found


class Mosquitto:
    """A Mosquitto process on a config file; `start` waits for its port, `stop` for its exit."""

    def __init__(self, conf: Path, port: int, log: Path) -> None:
        self.conf, self.port, self.log = conf, port, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("a") as log:
            self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(self.conf)], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)
        wait_until(self._up, 10, f"mosquitto listening on {self.port} (log: {self.log})")

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"mosquitto exited with {self.proc.returncode}: {self.log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


class Broker(Mosquitto):
    """A plain Mosquitto on a free loopback port (anonymous, no persistence)."""

    def __init__(self, tmp: Path) -> None:
        port = free_port()
        conf = tmp / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        super().__init__(conf, port, tmp / "mosquitto.log")
