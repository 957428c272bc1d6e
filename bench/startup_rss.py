"""Start-up memory: barrierd's resident set after each group of its imports, then polling 64 PLCs.

A child interpreter imports what barrierd imports, group by group in barrierd's order, and prints its
VmRSS after each (a group's figure is what it adds to those before it: a module shared with an earlier
group is counted there). Then the real barrierd polls the 64-PLC site of the scale benchmark: VmRSS once
every PLC is read, and VmRSS and VmHWM (peak) after the window, so a start-up peak above the steady state
would show.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.procs import Daemon, Sim, memory_mb
from bench.scale import PLCS_PER_SIM, SIM_SCAN_MS, SLOTS
from bench.sites import slots_site, write_site

PLCS = 64
MIB = 1 << 20

# (stage, the imports that make it): barrierd's own order, its heaviest libraries apart
STAGES = (
    ("interpreter", ""),
    ("argparse, asyncio (ssl, concurrent.futures)", "import argparse, asyncio"),
    ("structlog (without rich)", "import controller.structlog_without_rich"),
    ("the config schema (dataclasses, annotated_types), hal's kinds, the child loader", "import config.child_loader"),
    ("sqlite3, audit", "import controller.audit"),
    ("the controller core, transitions, hal's bus", "import controller.commands, controller.site"),
    ("the rest of barrierd (controller.daemon, serve)", "import controller.daemon, controller.serve"),
    ("uvloop", "import uvloop"),
)
CHILD = """
import json, sys
def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
for code in json.loads(sys.argv[1]):
    exec(code, {})
    print(rss(), len(sys.modules), flush=True)
print(json.dumps(sorted(m for m in ("rich", "pygments", "aiohttp", "aiomqtt", "pymodbus", "serial", "cryptography")
                        if m in sys.modules)))
"""

TITLE = "Start-up memory: barrierd's RSS after each group of imports, then polling 64 PLCs × 4 slots"
NOTES = (
    "Import stages in a child interpreter in barrierd's order, VmRSS after each in MiB (2^20 bytes; the scale "
    "benchmark's MB are 10^6 bytes: 40 MB = 38.1 MiB); `added_mib` is what the stage adds to those before it. "
    "Then the real barrierd on the scale benchmark's 64-PLC site: VmRSS when every PLC is read, VmRSS and VmHWM "
    "after the window. The reference hand loop (bench/hand_loop.py: asyncio, uvloop, struct) peaks at ≈ 25 MiB. "
    "pydantic is not among the stages: it validates the site file in a child barrierd forks before its loop "
    "(config/child_loader.py), and pydantic with its first schema (≈ 11 MiB) is never in barrierd's own process. "
    "heavy_loaded lists any of rich, pygments, aiohttp, aiomqtt, pymodbus, serial, cryptography the imports "
    "loaded (none on a plain TCP site)."
)


def startup_rss(seconds: float, *, plcs: int = PLCS) -> list[dict[str, Any]]:
    rows = _import_stages()
    with tempfile.TemporaryDirectory(prefix="bench-rss-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        site = write_site(work / "site.toml", slots_site(plcs, SLOTS))
        names = [f"plc-{i}" for i in range(1, plcs + 1)]
        for k in range(0, plcs, PLCS_PER_SIM):
            stack.enter_context(Sim(site, work, name=f"sim-{k}", plcs=names[k:k + PLCS_PER_SIM], scan_ms=SIM_SCAN_MS,
                                    write_log=False))
        with Daemon(site, work) as daemon:
            daemon.wait_all_ok(timeout_s=60)
            polling = memory_mb(daemon.pid, "VmRSS") * 1e6 / MIB
            time.sleep(seconds)
            steady, peak = (memory_mb(daemon.pid, key) * 1e6 / MIB for key in ("VmRSS", "VmHWM"))
    before = rows[-1]["rss_mib"]
    for stage, value in ((f"barrierd, every one of {plcs} PLCs read", polling),
                         (f"barrierd after {seconds:g} s more", steady), ("barrierd's peak (VmHWM)", peak)):
        rows.append({"stage": stage, "rss_mib": round(value, 1), "added_mib": round(value - before, 1),
                     "modules": "-", "heavy_loaded": "-"})
        before = value
    return rows


def _import_stages() -> list[dict[str, Any]]:
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps([code for _, code in STAGES])], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parents[1]).stdout.splitlines()
    heavy = ", ".join(json.loads(out[-1])) or "none"
    rows, before = [], 0.0
    for (stage, _), line in zip(STAGES, out, strict=False):
        rss, modules = (int(field) for field in line.split())
        rows.append({"stage": stage, "rss_mib": round(rss / MIB, 1), "added_mib": round((rss - before) / MIB, 1),
                     "modules": modules, "heavy_loaded": heavy if stage == STAGES[-1][0] else "-"})
        before = rss
    return rows
