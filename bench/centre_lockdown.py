"""Centre lockdown: three crossings (sim-plc + barrierd each) on one Mosquitto, `barrier-centre lockdown --all`
from the command to every device of the three confirmed secured, repeated; released locally in between."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.fleet_broker import BROKER_CONF, MOSQUITTO, _listening
from bench.lockdown_fanout import open_everything
from bench.procs import Child, Daemon, Sim, percentile, wait_for
from bench.sites import free_ports

SITES = ("north", "south", "east")
LANES = 2  # the demo site's lanes (gate, blocker, signal each) beside its inspection bay's two booms
DEMO_SITE = Path(__file__).resolve().parent.parent / "config" / "sites" / "demo.toml"
KEY_ID = "bench-hq"
CENTRE = [sys.executable, "-m", "centre"]
BARRIERCTL = [sys.executable, "-m", "controller.cli"]

TITLE = "Centre lockdown: `barrier-centre lockdown --all` to 3 crossings, until every device is confirmed secured"
NOTES = (
    "One Mosquitto on loopback; three crossings, each the demo site (3 PLCs, 8 devices: 2 lanes of gate, blocker "
    "and signal, 2 bay booms) renamed, its own sim-plc and barrierd, publishing under bench/NAME with [centre] "
    "lockdown opted in and the run's key (made with `barrier-centre keygen`). Each run is the real command line "
    "(`barrier-centre lockdown --all --json`, a new process); wall_s is its start to its exit (Python start, "
    "imports, connect, subscribe, publish, wait for the three replies). secured_s: each site's reply, from its "
    "receipt of the command to its last device confirmed secured; delivery_ms: from the centre's publish "
    "(sent_at) to each site's receipt (received_at), one clock. Between runs each site's lockdown is released "
    "with `barrierctl lockdown release` (root: technician). Start `every lane open`: before each run every "
    "lane's gate is opened, blocker lowered, signal green, so confirmation includes travel (blocker raised by "
    "EFO 1.5 s, gate closed 3 s); `every device secured`: the sites are already secured (fan-out and PLC "
    "acknowledgement only). Rows p50 / max summarise the runs above them."
)


def site_text(name: str, broker_port: int, key_line: str) -> str:
    """The demo site renamed `name`, its PLCs on free ports, publishing to the broker and taking the centre's
    lockdown signed by the run's key."""
    text = DEMO_SITE.read_text()
    ports = iter(free_ports(len(re.findall(r"(?m)^port = \d+$", text))))
    text = re.sub(r"(?m)^port = \d+$", lambda _: f"port = {next(ports)}", text)
    text = text.replace('name = "demo-crossing"', f'name = "{name}"', 1)
    return (text + f'\n[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\ntopic_prefix = "bench/{name}"\n'
                   f"keepalive_s = 5\n\n[centre]\nlockdown = true\n[centre.keys]\n{key_line}\n")


def centre_lockdown(seconds: float, *, runs: int | None = None, open_runs: int | None = None) -> list[dict[str, Any]]:
    runs = runs if runs is not None else max(5, int(seconds))
    open_runs = open_runs if open_runs is not None else max(2, runs // 2)
    with tempfile.TemporaryDirectory(prefix="bench-centre-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        port = free_ports(1)[0]
        (work / "mosquitto.conf").write_text(BROKER_CONF.format(port=port))
        stack.enter_context(Child([MOSQUITTO, "-c", str(work / "mosquitto.conf")], work / "mosquitto.log"))
        wait_for(lambda: _listening(port), 10, "mosquitto listening")
        key = work / "centre.pem"
        made = subprocess.run([*CENTRE, "keygen", "--out", str(key), "--key-id", KEY_ID], capture_output=True,
                              text=True, check=True)
        key_line = made.stdout.strip().splitlines()[-1]
        daemons = {}
        for name in SITES:
            (work / name).mkdir()
            site = work / name / "site.toml"
            site.write_text(site_text(name, port, key_line))
            stack.enter_context(Sim(site, work / name))
            daemons[name] = stack.enter_context(Daemon(site, work / name))
        for name, daemon in daemons.items():
            daemon.wait_all_ok()
            with daemon.control() as control:
                wait_for(lambda: control.status()["centre"]["connected"], 30, f"{name} listening to the centre")
        command = [*CENTRE, "lockdown", "--all", "--reason", "benchmark", "--operator", "bench", "--key", str(key),
                   "--key-id", KEY_ID, "--broker", f"127.0.0.1:{port}", "--json",
                   *(f"--prefix-of={name}=bench/{name}" for name in SITES)]
        rows = []
        for start, count in (("every lane open", open_runs), ("every device secured", runs)):
            if not count:
                continue
            trials = []
            for _ in range(count):
                if start == "every lane open":
                    for daemon in daemons.values():
                        with daemon.control() as control:
                            open_everything(control, LANES)
                trials.append(_lockdown(command))
                for daemon in daemons.values():
                    _release(daemon)
            rows += _rows(start, trials)
    return rows


def _lockdown(command: list[str]) -> dict[str, Any]:
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"centre_lockdown benchmark: lockdown exited {done.returncode}: "
                           f"{done.stdout[-1500:]}{done.stderr[-500:]}")
    outcome = json.loads(done.stdout)
    replies = outcome["sites"]
    return {"wall_s": wall,
            "secured_s": {name: replies[name]["secured_s"] for name in SITES},
            "delivery_ms": {name: (replies[name]["received_at"] - outcome["sent_at"]) * 1000 for name in SITES}}


def _release(daemon: Daemon) -> None:
    done = subprocess.run([*BARRIERCTL, "--socket", str(daemon.socket), "lockdown", "release", "--reason",
                           "benchmark"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"centre_lockdown benchmark: barrierctl lockdown release: {done.stdout}{done.stderr}")


def _rows(start: str, trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A row per run, then p50 and max over the runs (all_secured_s: each run's slowest site)."""
    def row(run: str, secured: dict[str, float], delivery: dict[str, float], slowest: float,
            wall: float) -> dict[str, Any]:
        return {"start": start, "run": run,
                "secured_s (" + " / ".join(SITES) + ")": " / ".join(f"{secured[n]:.3f}" for n in SITES),
                "delivery_ms (" + " / ".join(SITES) + ")": " / ".join(f"{delivery[n]:.1f}" for n in SITES),
                "all_secured_s": round(slowest, 3), "wall_s": round(wall, 3)}

    rows = [row(str(i), t["secured_s"], t["delivery_ms"], max(t["secured_s"].values()), t["wall_s"])
            for i, t in enumerate(trials, start=1)]
    for label, pick in (("p50", lambda values: percentile(values, 50)), ("max", max)):
        rows.append(row(label, {n: pick([t["secured_s"][n] for t in trials]) for n in SITES},
                        {n: pick([t["delivery_ms"][n] for t in trials]) for n in SITES},
                        pick([max(t["secured_s"].values()) for t in trials]), pick([t["wall_s"] for t in trials])))
    return rows
