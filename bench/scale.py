"""Scale: barrierd polling 64, then 128 PLCs of 4 slots each at poll_ms 100 (10 Hz), against two reference loops.

For each size the same sim-plc processes serve the PLCs (split over several processes with --plc,
so the simulator is not the bottleneck; their CPU is reported so the reader can check). First
barrierd runs alone against them, then the reference bare loop (bench/bare_loop.py: the same FC4
reads and FC6 heartbeats from plain pymodbus clients, nothing else), then the hand-written one
(bench/hand_loop.py: the same exchanges framed with struct on an asyncio protocol, on uvloop: the
floor for this work in Python, which barrierd's CPU target is a ratio of). Each is measured over a window
after a warm-up: polls per PLC from its own counters (barrierd: status "plcs"[].polls_ok; bare
loop: its SIGUSR1 report), CPU seconds per wall second from /proc/PID/stat (utime + stime), peak RSS
from /proc/PID/status VmHWM at the end of the window.
"""

from __future__ import annotations

import json
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.procs import READY_S, Child, Daemon, Sim, cpu_seconds, memory_mb
from bench.sites import slots_site, write_site

SIZES = (64, 128)
SLOTS = 4
POLL_MS = 100
PLCS_PER_SIM = 32  # PLCs per sim-plc process (a process serving 64 PLCs at a 10 ms scan nears one core)
SIM_SCAN_MS = 50  # PLCs scan at 20 Hz: every 10 Hz poll sees a new heartbeat, and the sims leave CPU to barrierd
WARMUP_S = 3.0
TARGET_HZ_FRACTION = 0.95  # every PLC at ≥ 9.5 Hz of 10
TARGET_RSS_MB = 40.0
TARGET_VS_HAND = 1.3  # CPU against the hand-written uvloop loop measured in the same run
TARGET_GROWTH = 2.1  # twice the PLCs cost at most 2.1 times as much
REFERENCES = (("bare loop", "bare_loop.py"), ("hand loop (uvloop)", "hand_loop.py"))

TITLE = "Scale: 64 and 128 PLCs × 4 slots at poll_ms 100, barrierd against a bare pymodbus loop and a hand-written one"
NOTES = (
    "barrierd first, then two references against the same sim-plc processes (32 PLCs each, 50 ms scan: at "
    "10 ms an idle sim-plc costs ≈ 0.35 CPU s/s per 32 PLCs, which on 2 cores would starve the process "
    "measured): the bare loop (bench/bare_loop.py: one pymodbus AsyncModbusTcpClient per PLC, one FC4 of 64 "
    "registers per poll period and an FC6 heartbeat every 0.75 s, nothing else) and the hand-written loop "
    "(bench/hand_loop.py: the same exchanges framed with struct on an asyncio protocol, on uvloop). Window "
    "after a 3 s warm-up; poll rate per PLC counts good readings (barrierd: status plcs[].polls_ok); CPU from "
    "/proc/PID/stat utime + stime; peak RSS = VmHWM at the end of the window; sim CPU per process shows "
    "whether the simulator was the bottleneck (1.0 = one core). cpu_vs_hand, cpu_vs_bare: CPU over that "
    "reference's at the same size in this run; cpu_vs_first_size: CPU at this size / CPU at 64 PLCs. Targets "
    "for barrierd: every PLC ≥ 9.5 Hz, ≤ 1.3 × the hand loop's CPU, 128 PLCs ≤ 2.1 × the 64-PLC cost, "
    "≤ 40 MB peak RSS at 64 PLCs. "
    "The poll path now: a TCP-only site runs on uvloop (an RTU line keeps hal.event_loop's precise timers); "
    "Modbus TCP goes over hal/tcp.py (struct framing, replies checked by hal/validate.py as before) instead "
    "of pymodbus; a block equal to the last GOOD one but for PLC_HEARTBEAT is not decoded again (the frozen "
    "check still reads the heartbeat), and a device at rest on it skips its movement watch and alarm sync. "
    "64 PLCs, this machine, load 2 to 4, back to back: 0.25 CPU s/s before, 0.22 with uvloop alone, 0.11 to "
    "0.16 with the TCP protocol too, ≈ 0.12 with the unchanged block (20 s windows alternating with the tree "
    "before each step); this benchmark before and after them, load 1.7 to 2.9: 64 PLCs 0.250 → 0.145 "
    "(1.8 × the hand loop's 0.081), 128 PLCs 0.444 → 0.251 CPU s/s. Then, per reading: a slot's state derived once "
    "per block, EFO readiness assessed again only when its inputs change (a pressure sample, the decay, the recharge "
    "window, the last EFO), each PLC's devices, watches and lanes listed once, no coroutine for a device whose state "
    "stays, PlcSnapshot and PlcReading as NamedTuples, the bus's empty command, ack and heartbeat work skipped: "
    "instructions per reading (valgrind callgrind, whole process, 4 PLCs, 20 s) 267k → 185k (the hand loop ≈ 62k), "
    "Bus._poll + Site._on_reading alone on a fake transport 151k → 76k, Python calls per reading (cProfile, 64 PLCs) "
    "134 → 89; this benchmark back to back, load 1.3 to 1.8: 64 PLCs 0.156 → 0.122 CPU s/s (2.6 → 2.3 × the hand "
    "loop's 0.061 / 0.053), 128 PLCs 0.290 → 0.224 (2.1 → 2.0 ×). Then an unchanged block of a calm PLC (nothing on it "
    "depends on the time: no command in force or in flight, no drive running, no travel, no readiness sample or recharge "
    "end due, its lanes as left) skips its devices and lanes, and the TCP exchange builds a request's text only for an "
    "error, checks a reply in one step (validate.py, step by step only to name a failure) and keeps one timer per "
    "connection: instructions per reading (callgrind, whole process, 4 PLCs, 20 s) 183k → 130k (hand loop ≈ 62k), "
    "Bus._poll + Site._on_reading on a fake transport 74k → 33k; back to back, load 0.5 to 1.0: 64 PLCs 0.080 → 0.074 "
    "CPU s/s (1.9 → 1.8 × the hand loop's 0.041 / 0.042), 128 PLCs 0.171 → 0.140 (2.2 → 1.8 ×). Then the poll's "
    "block is read as the reply's bytes (no reply object, unpack, range check or copy when the reply is exactly what "
    "was asked) and compared as bytes with the last GOOD one; a lone TCP PLC with nothing but its next poll due is "
    "polled quietly (hal/quiet_poll.py: the request sent from a timer, the reply to a callback, an unchanged block the "
    "site takes synchronously: no task wakes, no future), and one Ticker sends the quiet polls of all PLCs due at one "
    "time from one timer (their grid the loop clock's multiples of poll_ms): instructions per reading (callgrind, "
    "whole process, 4 PLCs, 20 s, status requests outside the window) 132k → 76k (hand loop 62k); this benchmark "
    "back to back, old tree then new, two rounds, load 1 to 3: 64 PLCs 0.046 / 0.064 → 0.033 / 0.047 CPU s/s (1.6 / "
    "1.7 → 1.1 / 1.1 × the hand loop), 128 PLCs 0.076 / 0.131 → 0.062 / 0.069 (1.7 / 1.9 → 0.8 / 1.0 ×; the hand "
    "loop's own figure moved by 70 % between runs). The shared grid puts every PLC's poll in one burst; a lockdown "
    "landing in it waits for those replies (lockdown_fanout's one-trial row, every lane open: 7.5 to 10.7 ms over "
    "three runs, 8.7 and 9.3 before; its 20-trial row's p50 5.6 to 9.6, 10.0 and 10.5 before). What is left: the heartbeat writes "
    "and the reading in whole once a second on a PLC with a blocker (its idle pressure is sampled for the decay) "
    "wake the bus task. RSS (the startup_rss benchmark has the stages, in MiB): the interpreter "
    "and asyncio ≈ 20.5 (the hand loop's floor too), structlog 2 (imported without rich: structlog.dev loaded rich "
    "and pygments whenever installed, 4.6), the config schema 1.3, the controller, sqlite3 and transitions ≈ 5.5, "
    "uvloop 1, then ≈ 6 for building and polling 64 PLCs; one thread, and the peak is the steady state (no start-up "
    "spike). 64 PLCs, peak before and after that cut and two smaller ones (devices without transitions' unused "
    "may_/is_ partials, condition histories made on first use): 56.0 → 48.7 MB. Then pydantic (≈ 11 MiB with its "
    "first schema) left barrierd's process: it validates the site file in a child forked before the loop "
    "(config/child_loader.py; the schema is stdlib dataclasses, same checks and messages): 64 PLCs 48.9 → 38.1 MB, "
    "128 PLCs 53.4 → 42.5 MB (runs alternating with the tree before, load ≈ 1; the peak within 0.1 MB run to run). "
    "asyncio's ssl (≈ 5 MiB) stays: uvloop imports it. "
    "The machine is shared with other test runs: at a load of 4 even the reference loops fall below "
    "9.5 Hz at 128 PLCs, and the CPU figures vary by tens of % from run to run."
)

Counts = Callable[[], tuple[dict[str, int], float]]


class BareLoop(Child):
    """A reference loop (bench/bare_loop.py or hand_loop.py) as a child process; counts() asks it for its poll
    counters with SIGUSR1."""

    def __init__(self, site: Path, work: Path, script: str = "bare_loop.py") -> None:
        path = Path(__file__).with_name(script)  # run as a script: it imports nothing from bench
        super().__init__([sys.executable, str(path), "--config", str(site)], work / f"{path.stem}.log")

    def start(self) -> None:
        with self.log.open("w") as err:
            self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                         text=True, bufsize=1)

    def _line(self, timeout_s: float) -> dict:
        assert self.proc is not None and self.proc.stdout is not None
        readable, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        line = self.proc.stdout.readline() if readable else ""
        if not line.startswith("{"):
            raise self.fail(f"bare loop: no report ({line!r})")
        return json.loads(line)

    def ready(self) -> None:
        if self._line(READY_S + 30).get("event") != "bare_loop_ready":
            raise self.fail("bare loop did not start")

    def counts(self) -> tuple[dict[str, int], float]:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGUSR1)
        report = self._line(10)
        return report["polls"], report["t"]


def scale(seconds: float, *, sizes: tuple[int, ...] = SIZES, slots: int = SLOTS, poll_ms: int = POLL_MS,
          warmup_s: float = WARMUP_S, plcs_per_sim: int = PLCS_PER_SIM) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for plcs in sizes:
        rows += _size(plcs, slots, poll_ms, seconds, warmup_s, plcs_per_sim)
    first = {r["process"]: r["cpu_s_per_s"] for r in rows if r["plcs"] == sizes[0]}
    for row in rows:
        row["cpu_vs_first_size"] = _ratio(row["cpu_s_per_s"], first[row["process"]])
    for row in rows:
        if row["process"] == "barrierd":
            row["targets_missed"] = _missed(row, poll_ms, sizes[0]) or "none"
        else:
            row["targets_missed"] = "-"
    return rows


def _size(plcs: int, slots: int, poll_ms: int, seconds: float, warmup_s: float,
          plcs_per_sim: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        site = write_site(work / "site.toml", slots_site(plcs, slots, poll_ms=poll_ms))
        names = [f"plc-{i}" for i in range(1, plcs + 1)]
        groups = [names[i:i + plcs_per_sim] for i in range(0, plcs, plcs_per_sim)]
        sims = [stack.enter_context(Sim(site, work, name=f"sim-{k}", plcs=group, scan_ms=SIM_SCAN_MS,
                                        write_log=False))
                for k, group in enumerate(groups)]
        sim_pids = [s.pid for s in sims]
        with Daemon(site, work) as daemon:
            daemon.wait_all_ok(timeout_s=60)
            with daemon.control() as control:
                def barrierd_counts() -> tuple[dict[str, int], float]:
                    reply, _, received = control.request("status")
                    return {p["name"]: p["polls_ok"] for p in reply["data"]["plcs"]}, received

                time.sleep(warmup_s)
                barrierd = _window("barrierd", daemon.pid, barrierd_counts, sim_pids, seconds)
        references = []
        for process, script in REFERENCES:
            with BareLoop(site, work, script) as loop:
                time.sleep(warmup_s)
                references.append(_window(process, loop.pid, loop.counts, sim_pids, seconds))
    rows = [barrierd, *references]
    bare, hand = (r["cpu_s_per_s"] for r in references)
    for row in rows:
        row["plcs"], row["slots"] = plcs, slots
        row["cpu_vs_hand"] = _ratio(row["cpu_s_per_s"], hand)
        row["cpu_vs_bare"] = _ratio(row["cpu_s_per_s"], bare)
    return [_ordered(row) for row in rows]


def _ratio(value: float, base: float) -> float | None:
    """value / base, or None when base rounds to nothing (a window shorter than a few clock ticks)."""
    return round(value / base, 2) if base else None


def _window(process: str, pid: int, counts: Counts, sim_pids: list[int], seconds: float) -> dict[str, Any]:
    before, t0 = counts()
    cpu0 = cpu_seconds(pid)
    sims0 = [cpu_seconds(p) for p in sim_pids]
    time.sleep(seconds)
    after, t1 = counts()
    cpu1 = cpu_seconds(pid)
    sims1 = [cpu_seconds(p) for p in sim_pids]
    wall = t1 - t0
    rates = [(after[name] - before[name]) / wall for name in before]
    sim_load = [(b - a) / wall for a, b in zip(sims0, sims1, strict=True)]
    return {
        "process": process,
        "poll_hz_min": round(min(rates), 2),
        "poll_hz_median": round(statistics.median(rates), 2),
        "cpu_s_per_s": round((cpu1 - cpu0) / wall, 3),
        "peak_rss_mb": round(memory_mb(pid, "VmHWM"), 1),
        "sim_processes": len(sim_pids),
        "sim_cpu_s_per_s_total": round(sum(sim_load), 2),
        "sim_cpu_s_per_s_max": round(max(sim_load), 2),
    }


COLUMNS = ("plcs", "slots", "process", "poll_hz_min", "poll_hz_median", "cpu_s_per_s", "cpu_vs_hand", "cpu_vs_bare",
           "peak_rss_mb", "sim_processes", "sim_cpu_s_per_s_total", "sim_cpu_s_per_s_max")


def _ordered(row: dict[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in COLUMNS}


def _missed(row: dict[str, Any], poll_ms: int, first_size: int) -> str:
    missed = []
    if row["poll_hz_min"] < TARGET_HZ_FRACTION * 1000 / poll_ms:
        missed.append(f"rate<{TARGET_HZ_FRACTION * 1000 / poll_ms:g}Hz")
    if row["peak_rss_mb"] > TARGET_RSS_MB and row["plcs"] == first_size:
        missed.append(f"rss>{TARGET_RSS_MB:g}MB")
    if row["cpu_vs_hand"] is not None and row["cpu_vs_hand"] > TARGET_VS_HAND:
        missed.append(f"cpu>{TARGET_VS_HAND:g}x hand")
    growth = row["cpu_vs_first_size"]
    if row["plcs"] != first_size and growth is not None and growth > TARGET_GROWTH * row["plcs"] / first_size / 2:
        missed.append(f"growth>{TARGET_GROWTH * row['plcs'] / first_size / 2:g}x")
    return ", ".join(missed)
