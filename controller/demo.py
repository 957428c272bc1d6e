"""`make demo`: run sim-plc and barrierd on a site file, show live status, stop both cleanly on Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from config.loader import load_site
from controller.cli import DaemonUnreachable, request, watch
from controller.paths import NoDefaultSocket, default_socket

DEMO_RUNS = Path("demo-run")  # one folder per site file: two demo sites never share state
READY_TIMEOUT_S = 20.0


def start(argv: list[str], log_path: Path) -> subprocess.Popen:
    log = log_path.open("w")
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(what: str, check, proc: subprocess.Popen, log_path: Path) -> None:
    """Poll `check()` until true; fail with the process's log if it dies or the deadline passes."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if check():
            return
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}; see {log_path}:\n{log_path.read_text()[-2000:]}")
        time.sleep(0.1)
    raise SystemExit(f"{what} not ready within {READY_TIMEOUT_S:.0f} s; see {log_path}")


def daemon_answers(sock: Path) -> bool:
    try:
        return request(sock, "status", timeout_s=2)["exit"] == 0
    except DaemonUnreachable:
        return False


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    site_file = Path(args[0] if args else "config/sites/demo.toml")
    bin_dir = Path(sys.executable).parent
    run_dir = DEMO_RUNS / site_file.stem
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        sock = default_socket()
    except NoDefaultSocket:
        sock = run_dir / "barrierd.sock"  # no runtime directory: the demo's own directory
    console = Console()
    sim_log, daemon_log = run_dir / "sim-plc.log", run_dir / "barrierd.log"
    lines, serial_args = [], []
    for bus in load_site(site_file).bus:  # an RS-485 line: a paced virtual line, sim-plc on its far end
        far_end = f"{bus.port}-slaves"
        line_log = run_dir / f"vline-{bus.name}.log"
        lines.append(start([str(bin_dir / "sim-plc"), "vline", "--baud", str(bus.baudrate), bus.port, far_end], line_log))
        wait_for(f"virtual line {bus.name}", lambda: Path(far_end).exists(), lines[-1], line_log)
        serial_args += ["--serial", f"{bus.name}={far_end}"]
    sim = start(
        [str(bin_dir / "sim-plc"), "--config", str(site_file), "--write-log", str(run_dir / "sim-writes.jsonl"),
         "--control", str(run_dir / "sim-plc.sock"), *serial_args],
        sim_log,
    )
    daemon = None
    try:
        wait_for("sim-plc", lambda: "sim_plc_ready" in sim_log.read_text(), sim, sim_log)
        daemon = start(
            [str(bin_dir / "barrierd"), "--config", str(site_file), "--socket", str(sock),
             "--state-dir", str(run_dir / "state")],
            daemon_log,
        )
        wait_for("barrierd", lambda: daemon_answers(sock), daemon, daemon_log)
        console.print(f"[bold]Demo site {site_file} running.[/] In a second terminal try:\n"
                      f"  .venv/bin/barrierctl --socket {sock} lower blocker-1\n"
                      f"  .venv/bin/sim-plc inject --control {run_dir / 'sim-plc.sock'} plc-lane-1 vehicle_present --slot 1\n"
                      f"Logs in {run_dir}/. Ctrl-C stops both.")
        watch(sock, 0.5, console)
    except KeyboardInterrupt:
        pass
    finally:
        for proc in (daemon, sim, *lines):
            if proc is not None:
                stop(proc)
        console.print(json.dumps({"sim-plc": sim.returncode, "barrierd": daemon.returncode if daemon else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
