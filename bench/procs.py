"""The processes a benchmark runs (sim-plc, barrierd, the bare loop), their control sockets, /proc figures
and percentiles.

Every process is started with this interpreter (`python -m ...`), its output in a log file under the
benchmark's work directory, and stopped with SIGTERM (SIGKILL after 10 s) when its with-block ends.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

READY_S = 20.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ----- figures ------------------------------------------------------------------------------------


def terminate(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); `pct` in 0..100."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc/PID/stat, in seconds (clock-tick resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def memory_mb(pid: int, key: str = "VmHWM") -> float:
    """A /proc/PID/status memory figure (VmHWM: peak RSS; VmRSS: current) in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024 / 1e6
    raise KeyError(key)


def wait_for(check: Callable[[], Any], timeout_s: float, what: str, step_s: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(step_s)
    raise RuntimeError(f"benchmark: not within {timeout_s:g} s: {what} (last: {last!r})")


# ----- line-oriented Unix socket clients ------------------------------------------------------------


class LineClient:
    """One persistent connection to a JSON-lines Unix socket; one request, one reply line."""

    IDLE_RECONNECT_S = 20.0  # barrierd closes a connection idle for 30 s: open a fresh one before that

    def __init__(self, path: Path, timeout_s: float = 60.0) -> None:
        self.path, self.timeout_s = path, timeout_s
        self._connect()

    def _connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout_s)
        self.sock.connect(str(self.path))
        self._buf = b""
        self._used = time.monotonic()

    def exchange(self, request: dict) -> tuple[dict, float, float]:
        """(reply, time.time() just before sendall, time.time() when the reply line was complete)."""
        if time.monotonic() - self._used > self.IDLE_RECONNECT_S:
            self.sock.close()
            self._connect()
        self._used = time.monotonic()
        data = json.dumps(request).encode() + b"\n"
        sent = time.time()
        self.sock.sendall(data)
        while b"\n" not in self._buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("connection closed before a reply")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line), sent, time.time()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> LineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Control(LineClient):
    """barrierd's control socket: {"command", "args"} → {"exit", "outcome", "message", "data"}."""

    def request(self, command: str, **args: Any) -> tuple[dict, float, float]:
        return self.exchange({"command": command, "args": args})

    def status(self) -> dict:
        reply, _, _ = self.request("status")
        return reply["data"]


class SimControl(LineClient):
    """sim-plc's control socket: fault injection; the reply carries "applied_at" (the sim's time.time())."""

    def inject(self, plc: str, fault: str, slot: int | None = None, active: bool = True) -> dict:
        reply, _, _ = self.exchange({"cmd": "inject", "plc": plc, "fault": fault, "slot": slot, "active": active})
        if not reply.get("ok"):
            raise RuntimeError(f"sim-plc inject failed: {reply}")
        return reply


# ----- processes ------------------------------------------------------------------------------------


class Child:
    """A child process for the length of a with-block; its stdout and stderr go to `log`."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.argv = argv
        self.log = log
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # in case a benchmark left it stopped
        terminate(self.proc)
        self.proc = None

    def __enter__(self):
        self.start()
        try:
            self.ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def ready(self) -> None:
        pass

    def fail(self, what: str) -> RuntimeError:
        tail = self.log.read_text()[-2000:] if self.log.exists() else ""
        return RuntimeError(f"{what}: {' '.join(self.argv)}\n{tail}")


class TerminalChild(Child):
    """A child on a pseudo-terminal of `columns` × `rows`, as in an operator's terminal; the bench reads the
    screen (the last 64 kB kept for the log) and counts its updates: each a frame starting with `marker`."""

    def __init__(self, argv: list[str], log: Path, *, marker: bytes = b"barrier-centre  ", columns: int = 200,
                 rows: int = 60) -> None:
        super().__init__(argv, log)
        self.marker, self.size = marker, (rows, columns)
        self.frames = 0
        self._tail = b""
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *self.size, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color"}
        env.pop("COLUMNS", None), env.pop("LINES", None)
        self.proc = subprocess.Popen(self.argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True)
        os.close(slave)
        self._reader = threading.Thread(target=self._drain, args=(master,), daemon=True)
        self._reader.start()

    def _drain(self, master: int) -> None:
        keep = len(self.marker) - 1
        try:
            while chunk := os.read(master, 1 << 16):
                seen = self._tail[-keep:] + chunk  # a marker split between two reads is counted once
                self.frames += seen.count(self.marker)
                self._tail = (self._tail + chunk)[-(1 << 16):]
        except OSError:  # EIO: the child closed the terminal
            pass
        finally:
            os.close(master)
            self.log.write_bytes(self._tail)

    def stop(self) -> None:
        super().stop()
        if self._reader is not None:
            self._reader.join(timeout=5)


class Sim(Child):
    """`sim-plc serve`, optionally for some PLCs only; ready when it prints its sim_plc_ready line."""

    def __init__(self, site: Path, work: Path, *, name: str = "sim", plcs: Sequence[str] | None = None,
                 scan_ms: int = 10, write_log: bool = True) -> None:
        self.control = work / f"{name}.sock"
        self.write_log = work / f"{name}-writes.jsonl" if write_log else None
        argv = [sys.executable, "-m", "sim_plc.cli", "serve", "--config", str(site), "--control", str(self.control),
                "--scan-ms", str(scan_ms), "--log-level", "WARNING"]
        if self.write_log is not None:
            argv += ["--write-log", str(self.write_log)]
        for plc in plcs or ():
            argv += ["--plc", plc]
        super().__init__(argv, work / f"{name}.log")

    def start(self) -> None:  # stdout is a pipe until the ready line, to read it without polling a file
        with self.log.open("w") as err:
            self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                         text=True)

    def ready(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        readable, _, _ = select.select([self.proc.stdout], [], [], READY_S)
        line = self.proc.stdout.readline() if readable else ""
        if not line.startswith("{") or json.loads(line).get("event") != "sim_plc_ready":
            raise self.fail(f"sim-plc did not start ({line!r})")
        self.proc.stdout.close()  # it prints nothing else; nothing blocks on a closed pipe it never writes

    def writes(self, since: float = 0.0) -> list[dict]:
        """Write-log entries with t ≥ since."""
        if self.write_log is None or not self.write_log.exists():
            return []
        entries = (json.loads(line) for line in self.write_log.read_text().splitlines() if line.strip())
        return [e for e in entries if e["t"] >= since]


class Daemon(Child):
    """barrierd on a site file; ready when its control socket answers status."""

    def __init__(self, site: Path, work: Path, *, log_level: str = "INFO") -> None:
        self.socket = work / "barrierd.sock"
        argv = [sys.executable, "-m", "controller.daemon", "--config", str(site), "--socket", str(self.socket),
                "--state-dir", str(work / "state"), "--log-level", log_level]
        super().__init__(argv, work / "barrierd.log")

    def ready(self) -> None:
        def answers() -> bool:
            if not self.alive():
                raise self.fail("barrierd exited")
            try:
                with Control(self.socket, timeout_s=5) as control:
                    return control.status() is not None
            except OSError:
                return False

        wait_for(answers, READY_S, "barrierd answers on its control socket", step_s=0.05)

    def control(self) -> Control:
        return Control(self.socket)

    def wait_all_ok(self, timeout_s: float = 30.0) -> dict:
        """Wait until every PLC's comms are ok and no device is unknown; return that status."""
        with self.control() as control:
            def settled() -> dict | None:
                status = control.status()
                ok = all(p["comms"] == "ok" for p in status["plcs"]) and all(
                    d["state"] != "unknown" for d in status["devices"])
                return status if ok else None

            return wait_for(settled, timeout_s, "every PLC ok and every device known", step_s=0.05)
