"""Audit store writes: what a durable (fsynced) command row costs against an event that is only committed."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.procs import percentile
from controller.audit_head import AuditHead
from controller.auth import Caller
from controller.event_store import EventStore

STATE_DISK = Path("/var/tmp")  # a real disk, as /var/lib/barrierd is (a tmpfs would make every fsync free)
CALLS_PER_SECOND_OF_BENCH = 50  # --seconds 10 → 500 calls of each
GUARD = Caller(uid=1001, gid=1001, pid=4242, user="guard", role="operator")

TITLE = "Audit store writes: EventStore calls on a file on the state disk"
NOTES = (
    "A fresh EventStore (SQLite, WAL, synchronous=NORMAL) in a temporary directory under /var/tmp, each "
    "call timed alone with time.perf_counter, the kinds interleaved (event, request, command, head) so they "
    "see the same disk. record_event: a sealed state-change row, committed, not synced (a power cut may "
    "lose the last ones; the chain and the head stay consistent). record_request: the durable record made "
    "before a command acts (synchronous=FULL: the commit syncs the WAL, and every row before it). "
    "record_command: the command row with its outcome (durable likewise), then the signed head file replaced "
    "(temporary file, fsync, rename), then its non-durable event; it is written after the command acted. A command that acts costs one record_request and "
    "one record_command before its reply. audit head flush: the head file replace alone (one fsync of the "
    "temporary file, no directory sync), part of record_command."
)


def audit_store_writes(seconds: float, *, calls: int | None = None, directory: Path = STATE_DISK) -> list[dict[str, Any]]:
    count = calls if calls is not None else max(200, int(CALLS_PER_SECOND_OF_BENCH * seconds))
    timings: dict[str, list[float]] = {"record_event": [], "record_request": [], "record_command": [],
                                       "audit head flush": []}
    with tempfile.TemporaryDirectory(prefix="bench-audit-", dir=directory) as tmp:
        store = EventStore(Path(tmp) / "events.sqlite")
        assert store.storage.db is not None and store._key is not None
        spare_head = AuditHead(Path(tmp) / "spare.audit-head", store._key, store.storage.db)
        try:
            for i in range(count):
                args = {"device": "gate-1"}
                steps: dict[str, Callable[[], object]] = {
                    "record_event": lambda: store.record_event("state_change", "gate-1", "gate-1: closed → opening",
                                                               step=i),
                    "record_request": lambda: store.record_request(GUARD, "open", args, required=True),
                    "record_command": lambda: store.record_command(GUARD, "open", args, "done", 0, "gate-1 opening"),
                    "audit head flush": lambda: (spare_head.note("events", i + 1, f"{i:064x}"), spare_head.flush()),
                }
                for name, step in steps.items():
                    started = time.perf_counter()
                    step()
                    timings[name].append((time.perf_counter() - started) * 1000)
            problems = [r.describe() for r in store.verify_audit() if not r.intact]
        finally:
            store.close()
    if problems:
        raise RuntimeError(f"the benchmark's own store does not verify: {problems}")
    durable = {"record_event": "no", "record_request": "fsync", "record_command": "fsync",
               "audit head flush": "fsync"}
    return [
        {"call": name, "durable": durable[name], "calls": len(values), "p50_ms": percentile(values, 50),
         "p99_ms": percentile(values, 99), "max_ms": max(values)}
        for name, values in timings.items()
    ]
