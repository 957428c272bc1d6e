"""`sim-plc vline` and `sim-plc serve --serial` as processes: ready lines, links, skipped buses, clean SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from hal.profile import PROFILE_MAGIC
from hal.rtu import RtuTransport
from tests.integration.rtu_support import BUS, TIMEOUT_S, line_site
from tests.integration.test_sim_cli import read_line, run, sim_plc_command
from tests.support import wait_until

pytestmark = pytest.mark.timeout(60)

BAUD = 38400


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*sim_plc_command(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.stderr is not None
    return code, proc.stderr.read()


def test_vline_prints_ready_links_two_ptys_and_removes_the_links_on_sigterm(tmp_path: Path):
    a, b = tmp_path / "line" / "a", tmp_path / "line" / "b"
    proc = spawn("vline", "--baud", str(BAUD), str(a), str(b))
    ready = json.loads(read_line(proc, 10))
    assert ready == {"event": "vline_ready", "a": str(a), "b": str(b), "baud": BAUD, "pid": proc.pid}
    targets = [os.readlink(a), os.readlink(b)]
    assert all(t.startswith("/dev/pts/") for t in targets) and targets[0] != targets[1]
    code, err = stop(proc)
    assert code == 0, err
    assert not a.exists() and not a.is_symlink() and not b.is_symlink()


def test_vline_refuses_a_link_path_that_is_a_file(tmp_path: Path):
    a = tmp_path / "a"
    a.write_text("not a link")
    result = run("vline", str(a), str(tmp_path / "b"))
    assert result.returncode == 1 and "exists and is not a symlink" in result.stderr
    assert a.read_text() == "not a link" and not (tmp_path / "b").exists()


@pytest.mark.asyncio
async def test_serve_with_serial_answers_over_the_line_and_names_it_in_the_ready_line(tmp_path: Path):
    master, slaves = tmp_path / "master", tmp_path / "slaves"
    site_line = line_site(tmp_path, master, BAUD)
    assert site_line.bus[0].name == BUS
    line = spawn("vline", "--baud", str(BAUD), str(master), str(slaves))
    sim = None
    try:
        read_line(line, 10)
        sim = spawn("serve", "--config", str(tmp_path / "rtu-site.toml"), "--serial", f"{BUS}={slaves}",
                    "--control", str(tmp_path / "sim.sock"), "--plc", "plc-1", "--plc", "plc-3")
        ready = json.loads(read_line(sim, 15))
        assert ready["event"] == "sim_plc_ready" and ready["plcs"] == {} and ready["serial"] == {BUS: str(slaves)}
        transport = RtuTransport(BUS, str(master), baudrate=BAUD, timeout_s=TIMEOUT_S)
        await transport.connect()
        try:
            assert (await transport.read_input(3, 0, 1)) == [PROFILE_MAGIC]
            assert (await transport.read_input(1, 0, 1)) == [PROFILE_MAGIC]
        finally:
            transport.close()
        code, err = stop(sim)
        sim = None
        assert code == 0, err
    finally:
        if sim is not None:
            stop(sim)
        stop(line)


def test_a_bus_without_a_serial_port_is_skipped_with_a_reason(tmp_path: Path):
    line_site(tmp_path, tmp_path / "master", BAUD)
    result = run("serve", "--config", str(tmp_path / "rtu-site.toml"), "--control", str(tmp_path / "sim.sock"))
    assert result.returncode == 2
    assert f"no serial port given (--serial {BUS}=PATH)" in result.stderr
    assert "no PLC to serve" in result.stderr


def test_serial_for_a_bus_the_site_does_not_have_is_a_usage_error(tmp_path: Path):
    line_site(tmp_path, tmp_path / "master", BAUD)
    result = run("serve", "--config", str(tmp_path / "rtu-site.toml"), "--serial", "rs485-nope=/tmp/x")
    assert result.returncode == 2 and "no bus named rs485-nope" in result.stderr


def test_a_serial_port_that_does_not_exist_is_a_clear_failure(tmp_path: Path):
    line_site(tmp_path, tmp_path / "master", BAUD)
    result = run("serve", "--config", str(tmp_path / "rtu-site.toml"), "--serial", f"{BUS}={tmp_path / 'nope'}",
                 "--control", str(tmp_path / "sim.sock"))
    assert result.returncode == 1 and "cannot open serial port" in result.stderr
    wait_until(lambda: not (tmp_path / "sim.sock").exists(), 5, "control socket removed")
