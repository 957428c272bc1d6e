"""Start the real sim-plc, barrierd and barrierctl processes on a copy of a site file, for end-to-end tests."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from controller.cli import main as barrierctl
from tests.support import DEMO_SITE, REPO, free_port, wait_until

BIN = Path(sys.executable).parent


def site_copy(tmp: Path, source: Path = DEMO_SITE) -> Path:
    """The site file with every TCP port replaced by a free one, written into `tmp`."""
    text = re.sub(r"(?m)^port = \d+$", lambda _: f"port = {free_port()}", source.read_text())
    path = tmp / source.name
    path.write_text(text)
    return path


@dataclass
class Processes:
    """sim-plc and barrierd for one test, with their logs and sockets under `tmp`."""

    tmp: Path
    site: Path
    sim: subprocess.Popen | None = None
    daemon: subprocess.Popen | None = None
    daemon_starts: int = 0
    daemon_answered_at: float = 0.0  # time.time() when the last barrierd started answered on its socket
    logs: list = field(default_factory=list)
    run_daemon_as: list[str] = field(default_factory=list)  # a command barrierd runs under, e.g. setpriv's
    sim_args: list[str] = field(default_factory=list)  # more `sim-plc serve` options, e.g. --travel-scale

    @property
    def socket(self) -> Path:
        return self.tmp / "barrierd.sock"

    @property
    def sim_control(self) -> Path:
        return self.tmp / "sim-plc.sock"

    @property
    def write_log(self) -> Path:
        return self.tmp / "sim-writes.jsonl"

    @property
    def event_db(self) -> Path:
        return self.tmp / "state" / "events.sqlite"

    def _spawn(self, argv: list[str], log_name: str) -> subprocess.Popen:
        log = (self.tmp / log_name).open("w")
        self.logs.append(log)
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def start_sim(self, timeout_s: float = 15) -> None:
        self.sim = self._spawn(
            [str(BIN / "sim-plc"), "--config", str(self.site), "--write-log", str(self.write_log),
             "--control", str(self.sim_control), *self.sim_args],
            "sim-plc.log",
        )
        wait_until(lambda: "sim_plc_ready" in (self.tmp / "sim-plc.log").read_text() or self.sim.poll() is not None,
                   timeout_s, "sim-plc ready")
        assert self.sim.poll() is None, (self.tmp / "sim-plc.log").read_text()

    def start_daemon(self, timeout_s: float = 15) -> None:
        self.daemon_starts += 1
        self.daemon = self._spawn(
            [*self.run_daemon_as, str(BIN / "barrierd"), "--config", str(self.site), "--socket", str(self.socket),
             "--state-dir", str(self.tmp / "state")],
            f"barrierd-{self.daemon_starts}.log",
        )
        wait_until(lambda: self.ctl("status")[0] == 0 or self.daemon.poll() is not None, timeout_s,
                   "barrierd answers")
        assert self.daemon.poll() is None, self.daemon_log()
        self.daemon_answered_at = time.time()

    def daemon_log(self) -> str:
        return (self.tmp / f"barrierd-{self.daemon_starts}.log").read_text()

    def stop_daemon(self, sig: int = signal.SIGTERM) -> int:
        assert self.daemon is not None
        self.daemon.send_signal(sig)
        return self.daemon.wait(timeout=15)

    def ctl(self, *args: str, env: dict | None = None) -> tuple[int, str, str]:
        proc = subprocess.run(
            [str(BIN / "barrierctl"), "--socket", str(self.socket), *args],
            capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
        )
        return proc.returncode, proc.stdout, proc.stderr

    def status(self) -> dict:
        code, out, err = self.ctl("status", "--json")
        assert code == 0, err
        return json.loads(out)

    def device(self, name: str) -> dict:
        return next(d for d in self.status()["devices"] if d["name"] == name)

    def writes(self) -> list[dict]:
        if not self.write_log.exists():
            return []
        return [json.loads(line) for line in self.write_log.read_text().splitlines() if line.strip()]

    def sim_ctl(self, *args: str) -> tuple[int, str, str]:
        proc = subprocess.run([str(BIN / "sim-plc"), *args[:1], "--control", str(self.sim_control), *args[1:]],
                              capture_output=True, text=True, timeout=30)
        return proc.returncode, proc.stdout, proc.stderr

    def close(self) -> None:
        for proc in (self.daemon, self.sim):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for log in self.logs:
            log.close()


def barrierctl_as(user: tuple[str, int, int], argv: list[str], cwd: Path) -> int:
    """barrierctl run by a local user (a forked child with its uid and gid, started in `cwd`: the socket is
    reached by a relative path, the test's parent folders being root's alone); its exit code."""
    _, uid, gid = user
    cwd.chmod(0o711)
    (cwd / "barrierd.sock").chmod(0o666)
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            os.chdir(cwd)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            code = barrierctl(argv)
        finally:
            os._exit(int(code))
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
