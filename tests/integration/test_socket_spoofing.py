"""barrierctl as a process against a planted socket: another user's fake daemon gets no byte of the guard's command."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

BARRIERCTL = Path(sys.executable).parent / "barrierctl"
NOBODY = 65534
FAKE_REPLY = {"exit": 0, "outcome": "done", "message": "gate-1 closed", "data": None}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")


class FakeDaemon:
    """Answers every request with "gate-1 closed" and keeps every byte it was sent."""

    def __init__(self, path: Path):
        self.path = path
        self.received = bytearray()
        self.connections = 0
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                self.received += conn.recv(65536)
                conn.sendall(json.dumps(FAKE_REPLY).encode() + b"\n")

    def close(self) -> None:
        self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        self._thread.join(timeout=5)


@pytest.fixture
def fake_daemon(tmp_path):
    fake = FakeDaemon(tmp_path / "barrierd.sock")
    yield fake
    fake.close()


def barrierctl(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BARRIERCTL), *args], capture_output=True, text=True, timeout=30,
                          env={**os.environ, **(env or {})})


def test_a_socket_planted_by_another_user_gets_nothing_and_barrierctl_exits_5(fake_daemon):
    os.chown(fake_daemon.path, NOBODY, NOBODY)
    proc = barrierctl("--socket", str(fake_daemon.path), "open", "gate-1")
    assert proc.returncode == 5, proc.stderr
    assert "uid 65534 (nobody)" in proc.stderr and "gate-1 closed" not in proc.stdout
    assert fake_daemon.connections == 0 and fake_daemon.received == b""


def test_the_same_fake_owned_by_root_would_have_been_believed(fake_daemon):
    """The control case: what the owner check stops is real."""
    proc = barrierctl("--socket", str(fake_daemon.path), "open", "gate-1")
    assert proc.returncode == 0 and "gate-1 closed" in proc.stdout
    assert b'"gate-1"' in fake_daemon.received
