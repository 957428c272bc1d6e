"""Fleet centre: the real barrier-centre following 50 simulated sites × 16 lanes, beside the plain subscriber.

The fleet and the broker are fleet_broker's (bench/fleet_sites.py publishes as barrierd does); the subscriber is
`barrier-centre web` with one live page connected (bench/centre_page_reader.py: what a browser left open on the
control room's screen keeps), or `barrier-centre watch` on a pseudo-terminal (an operator's terminal). With the
fleet still publishing, `barrier-centre status --json` is timed from its start to its exit, printing every site.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from bench.fleet_broker import LANES, REFERENCE_SUBSCRIBER, SITES, measure_subscriber
from bench.procs import percentile
from bench.sites import free_ports

FILTER = "barrier-supervisor/#"
STATUS_RUNS = 3
STATUS_TIMEOUT_S = 30.0
CENTRE = [sys.executable, "-m", "centre"]

TITLE = f"Fleet centre: barrier-centre following {SITES} sites × {LANES} lanes, and `status --json` of the fleet"
NOTES = (
    "The fleet_broker set-up (one Mosquitto, the simulated sites shaped as barrierd publishes, refresh_s 10, "
    "0.5 events/s per site); the subscriber is the real barrier-centre (`python -m centre`, the barrier-centre "
    "entry point) following barrier-supervisor/#: `web` with one live page (an SSE client in its own process, "
    "as a browser left open; received/s is the centre's own count from the pushed pictures, picture_kb the "
    "last one's size, sites_online and devices_current what it showed) or `watch` on a 200 × 60 pseudo-terminal drained by the bench "
    "(view_updates/s: frames drawn); the reference is the plain aiomqtt subscriber. subscriber_cpu in CPU s/s, "
    "subscriber_peak_mb its VmHWM. status_json_s: after the web row's window, its centre and page stopped, "
    "`barrier-centre status --json` started with the fleet still publishing, to its exit (process start and "
    f"imports included), p50 / max of {STATUS_RUNS}; status_sites: "
    "sites in the JSON it printed (online, every lane's device current / all)."
)


def time_status(port: int, runs: int = STATUS_RUNS) -> dict[str, Any]:
    """`barrier-centre status --json` against the publishing fleet: wall times and what the last one printed."""
    walls, picture = [], None
    for _ in range(runs):
        started = time.monotonic()
        done = subprocess.run([*CENTRE, "status", "--json", "--broker", f"127.0.0.1:{port}", "--prefix", FILTER,
                               "--timeout", str(STATUS_TIMEOUT_S)], capture_output=True, text=True,
                              timeout=STATUS_TIMEOUT_S + 30)
        walls.append(time.monotonic() - started)
        if done.returncode != 0:
            raise RuntimeError(f"fleet_centre: status --json exited {done.returncode}: {done.stderr[-500:]}")
        picture = json.loads(done.stdout)
    sites = picture["sites"]
    devices = [device for site in sites for lane in site["lanes"] for device in lane["devices"]]
    online = sum(site["state"] == "online" for site in sites)
    return {"status_json_s": f"{percentile(walls, 50):.2f} / {max(walls):.2f}",
            "status_sites": f"{len(sites)} ({online} online, {sum(d['current'] for d in devices)}/{len(devices)})"}


def fleet_centre(seconds: float, *, sites: int = SITES, lanes: int = LANES, status_runs: int = STATUS_RUNS,
                 refresh_s: float = 10.0) -> list[dict[str, Any]]:
    web_port = free_ports(1)[0]
    broker = ["--broker", "{host}:{port}", "--prefix", FILTER]
    runs = [
        ("aiomqtt (reference)", REFERENCE_SUBSCRIBER, {}),
        ("barrier-centre web + 1 live page", [*CENTRE, "web", *broker, "--listen", f"127.0.0.1:{web_port}"],
         {"reader_argv": [sys.executable, "-m", "bench.centre_page_reader",
                          "--url", f"http://127.0.0.1:{web_port}/api/live"],
          "after": lambda port: time_status(port, status_runs)}),
        ("barrier-centre watch (terminal 200×60)", [*CENTRE, "watch", *broker], {"terminal": True}),
    ]
    rows = [measure_subscriber(argv, seconds, refresh_s=refresh_s, sites=sites, lanes=lanes, label=label, **options)
            for label, argv, options in runs]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return [{key: row.get(key, "-") for key in columns} for row in rows]
