"""The sim-plc command as a process: ready line, control-socket fault injection, write log, clean SIGTERM."""

from __future__ import annotations

import json
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymodbus.client import ModbusTcpClient

from hal.profile import Command, HeaderHolding, slot_base

DEMO = Path(__file__).resolve().parents[2] / "config" / "sites" / "demo.toml"


def sim_plc_command() -> list[str]:
    script = Path(sys.executable).parent / "sim-plc"
    return [str(script)] if script.exists() else [sys.executable, "-m", "sim_plc.cli"]


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def read_line(proc: subprocess.Popen[str], deadline_s: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=deadline_s):
            raise AssertionError(f"no line from sim-plc within {deadline_s} s")
    return proc.stdout.readline()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*sim_plc_command(), *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def site_file(tmp_path: Path) -> tuple[Path, list[int]]:
    """The demo site on free loopback ports (the demo's fixed ports may be taken)."""
    ports = iter(free_ports(3))
    chosen: list[int] = []

    def swap(match: re.Match[str]) -> str:
        chosen.append(next(ports))
        return f"port = {chosen[-1]}"

    text = re.sub(r"^port = \d+", swap, DEMO.read_text(), flags=re.MULTILINE)
    path = tmp_path / "site.toml"
    path.write_text(text)
    return path, chosen


@pytest.fixture
def served(tmp_path: Path, site_file: tuple[Path, list[int]]) -> Iterator[dict]:
    path, ports = site_file
    control = tmp_path / "ctl.sock"
    write_log = tmp_path / "writes.jsonl"
    proc = subprocess.Popen(
        [*sim_plc_command(), "--config", str(path), "--write-log", str(write_log), "--control", str(control)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = json.loads(read_line(proc, 15.0))
        yield {"proc": proc, "ready": ready, "ports": ports, "control": control, "write_log": write_log}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_serve_inject_state_and_stop(served: dict) -> None:
    ready, control = served["ready"], str(served["control"])
    assert ready["event"] == "sim_plc_ready"
    assert ready["plcs"] == dict(zip(["plc-lane-1", "plc-lane-2", "plc-bay"], served["ports"], strict=True))

    done = run("inject", "--control", control, "plc-lane-1", "obstruction", "--slot", "0")
    assert done.returncode == 0, done.stderr
    assert {"plc": "plc-lane-1", "fault": "obstruction", "slot": 0, "code": None} in json.loads(done.stdout)
    assert run("inject", "--control", control, "plc-bay", "estop").returncode == 0
    listed = run("faults", "--control", control)
    assert listed.returncode == 0
    assert {(f["plc"], f["fault"]) for f in json.loads(listed.stdout)} == {
        ("plc-lane-1", "obstruction"),
        ("plc-bay", "estop"),
    }

    deadline = time.monotonic() + 5.0
    while True:  # the fault shows after the PLC's next scan
        state = run("state", "--control", control, "plc-lane-1")
        assert state.returncode == 0, state.stderr
        gate = json.loads(state.stdout)["plc-lane-1"]["slots"][0]
        if "OBSTRUCTED" in gate["status_bits"]:
            break
        assert time.monotonic() < deadline, gate
    assert run("inject", "--control", control, "plc-lane-1", "obstruction", "--slot", "0", "--off").returncode == 0
    assert run("inject", "--control", control, "plc-bay", "estop", "--off").returncode == 0
    assert json.loads(run("faults", "--control", control).stdout) == []

    client = ModbusTcpClient("127.0.0.1", port=ready["plcs"]["plc-lane-1"], timeout=2, retries=0)
    assert client.connect()
    try:
        assert not client.write_registers(slot_base(0), [Command.OPEN, 1], device_id=1).isError()
        assert client.write_register(HeaderHolding.WATCHDOG_TIMEOUT_MS, 7, device_id=1).exception_code == 3
    finally:
        client.close()
    entries = [json.loads(line) for line in served["write_log"].read_text().splitlines()]
    assert [(e["plc"], e["fc"], e["address"], e["values"], e["result"]) for e in entries] == [
        ("plc-lane-1", 16, slot_base(0), [Command.OPEN, 1], "ok"),
        ("plc-lane-1", 6, HeaderHolding.WATCHDOG_TIMEOUT_MS, [7], "exception 3"),
    ]

    proc = served["proc"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert not served["control"].exists()


def test_condition_inputs_go_through_the_control_socket(served: dict) -> None:
    """A leak on plc-lane-1's blocker, given in mbar/s, drains its accumulator in the running sim."""
    control = str(served["control"])

    def blocker() -> dict:
        state = run("state", "--control", control, "plc-lane-1")
        assert state.returncode == 0, state.stderr
        return json.loads(state.stdout)["plc-lane-1"]["slots"][1]

    assert blocker()["analog_1"] == 1600
    done = run("inject", "--control", control, "plc-lane-1", "leak", "--slot", "1", "--value", "20000")
    assert done.returncode == 0, done.stderr
    assert {"plc": "plc-lane-1", "fault": "leak", "slot": 1, "code": 20000} in json.loads(done.stdout)
    wear = run("inject", "--control", control, "plc-lane-1", "wear", "--slot", "0", "--value", "2000")
    assert wear.returncode == 0, wear.stderr
    deadline = time.monotonic() + 10.0
    while "LOW_PRESSURE" not in (slot := blocker())["status_bits"]:  # 20 bar/s, less 2.5 from the pump
        assert time.monotonic() < deadline, slot
    assert slot["analog_1"] < 1000 and slot["fault_code_name"] == "LOW_PRESSURE"
    assert run("inject", "--control", control, "plc-lane-1", "leak", "--slot", "1", "--off").returncode == 0
    assert {f["fault"] for f in json.loads(run("faults", "--control", control).stdout)} == {"wear"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["inject", "plc-nope", "estop"], "unknown PLC"),
        (["inject", "plc-lane-1", "melted"], "unknown fault"),
        (["inject", "plc-lane-1", "obstruction", "--slot", "9"], "no slot 9"),
        (["inject", "plc-lane-1", "obstruction", "--slot", "1"], "road_blocker"),
        (["state", "plc-nope"], "unknown PLC"),
        (["inject", "plc-lane-1", "ambient", "--slot", "0", "--value", "-200"], "road_blocker"),
        (["inject", "plc-lane-1", "wear", "--slot", "0", "--value", "0"], "outside 1..100000"),
    ],
)
def test_bad_requests_exit_2_with_a_clear_message(served: dict, args: list[str], message: str) -> None:
    done = run(args[0], "--control", str(served["control"]), *args[1:])
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""


def test_no_running_server_and_bad_config(tmp_path: Path) -> None:
    done = run("faults", "--control", str(tmp_path / "none.sock"))
    assert done.returncode == 1
    assert "cannot reach control socket" in done.stderr
    done = run("--config", str(tmp_path / "missing.toml"))
    assert done.returncode == 2
    assert "missing.toml" in done.stderr
