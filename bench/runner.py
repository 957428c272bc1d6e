"""The list of benchmarks, the machine they ran on, and the report files (Markdown for people, JSON for tools)."""

from __future__ import annotations

import datetime
import json
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import (audit_store, centre_lockdown, comms_loss, fleet_broker, fleet_centre, floor, latency,
                   lockdown_fanout, panel_jitter, panel_push, scale, startup_rss)
from bench.rtu_poll import rtu_poll_rate

Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    measure: Callable[[float], Rows]  # seconds of measuring per row → rows
    notes: str = ""


BENCHMARKS: list[Benchmark] = [
    Benchmark(
        "rtu_poll_rate",
        "Modbus RTU polls per second on the paced virtual line, one unit, header + one slot",
        rtu_poll_rate,
        "hal.Bus + RtuTransport polling as fast as it can (poll period 0, heartbeat writes included) "
        "sim-plc serving one PLC over `sim-plc vline`, each in its own process. Theoretical: request "
        "and reply on the wire plus two t3.5 silences, per the Modbus serial-line spec. Target: 85 %. "
        "Where the rest goes (115200, p50 per exchange, from trace hooks on both ends): each frame reaches "
        "the other end ≈ 0.3 ms after its wire time (two pty hops through the relay and a process wake-up) "
        "and each side's t3.5 ends ≈ 0.1 to 0.2 ms late. With asyncio's default epoll loop (waits rounded "
        "up to whole milliseconds) and 50 µs timer slack the same line gave 83 to 88 %; barrierd and "
        "sim-plc now run on hal.event_loop (microsecond waits, 1 µs slack) and the master ends its silence "
        "wait early by pymodbus's own send time, finishing t3.5 exactly in the send hook.",
    ),
    Benchmark("floor", floor.TITLE, floor.floor, floor.NOTES),
    Benchmark("command_latency", latency.COMMAND_TITLE, latency.command_latency, latency.COMMAND_NOTES),
    Benchmark("event_latency", latency.EVENT_TITLE, latency.event_latency, latency.EVENT_NOTES),
    Benchmark("lockdown_fanout", lockdown_fanout.TITLE, lockdown_fanout.lockdown_fanout, lockdown_fanout.NOTES),
    Benchmark("scale", scale.TITLE, scale.scale, scale.NOTES),
    Benchmark("startup_rss", startup_rss.TITLE, startup_rss.startup_rss, startup_rss.NOTES),
    Benchmark("comms_loss", comms_loss.TITLE, comms_loss.comms_loss, comms_loss.NOTES),
    Benchmark("audit_store_writes", audit_store.TITLE, audit_store.audit_store_writes, audit_store.NOTES),
    Benchmark("panel_push", panel_push.TITLE, panel_push.panel_push, panel_push.NOTES),
    Benchmark("panel_jitter", panel_jitter.TITLE, panel_jitter.panel_jitter, panel_jitter.NOTES),
    Benchmark("fleet_broker", fleet_broker.TITLE, fleet_broker.fleet_broker, fleet_broker.NOTES),
    Benchmark("fleet_centre", fleet_centre.TITLE, fleet_centre.fleet_centre, fleet_centre.NOTES),
    Benchmark("centre_lockdown", centre_lockdown.TITLE, centre_lockdown.centre_lockdown, centre_lockdown.NOTES),
]


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }


def run(benchmarks: list[Benchmark], seconds: float, progress: Callable[[str], None] = lambda _: None) -> dict:
    """Run each benchmark; the report holds the date, the machine and every benchmark's rows."""
    results = []
    for bench in benchmarks:
        progress(f"bench: {bench.name} ({seconds:g} s per row)")
        results.append({"name": bench.name, "title": bench.title, "notes": bench.notes,
                        "rows": bench.measure(seconds)})
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "seconds_per_row": seconds,
        "benchmarks": results,
    }


def write_reports(report: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    js = out_dir / "report.json"
    js.write_text(json.dumps(report, indent=2) + "\n")
    md = out_dir / "report.md"
    md.write_text(markdown(report))
    return md, js


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# Benchmark report",
        "",
        f"{report['date']} on {m['platform']}, Python {m['python']}, {m['cpu_count']} CPUs "
        f"({m['processor']}); {report['seconds_per_row']:g} s per row.",
        "",
    ]
    for bench in report["benchmarks"]:
        lines += [f"## {bench['title']}", "", bench["notes"], ""] if bench["notes"] else [f"## {bench['title']}", ""]
        rows = bench["rows"]
        if not rows:
            lines += ["(no rows)", ""]
            continue
        columns = list(rows[0])
        lines.append("| " + " | ".join(columns) + " |")
        lines.append("|" + "---|" * len(columns))
        lines += ["| " + " | ".join(_cell(row[c]) for c in columns) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"
    return str(value)
