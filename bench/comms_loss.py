"""Comms-loss detection: sim-plc is frozen with SIGSTOP (its sockets stay open, nothing answers) at a random
phase of the poll cycle; the time until barrierd's status shows the PLC's devices `unknown`, and until
it shows the PLC's comms `lost`, against 3 × (poll + timeout) (comms_lost_polls = 3 failed polls).
"""

from __future__ import annotations

import os
import random
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.procs import Daemon, Sim, percentile, wait_for
from bench.sites import slots_site, write_site

CONFIGS = ((100, 300), (20, 50))  # (poll_ms, timeout_ms); 300 ms is the schema's default timeout
LOST_POLLS = 3  # the schema's default comms_lost_polls
HEARTBEAT_S = 0.75  # barrierd's heartbeat period at the default watchdog_ms 3000

TITLE = "Comms-loss detection: sim-plc frozen with SIGSTOP → devices unknown, PLC comms lost"
NOTES = (
    "One PLC with two devices. sim-plc is stopped with SIGSTOP at a random phase of the poll and heartbeat cycles (the "
    "kernel keeps its sockets: requests go unanswered, as with a hung PLC or a cut cable behind a switch); "
    "barrierd's status is polled every millisecond until every device shows unknown and the PLC shows "
    "comms lost; then SIGCONT and wait for recovery. Reference: 3 × (poll + timeout), comms_lost_polls = 3. "
    "A failed write (the FC6 heartbeat every watchdog/4 = 0.75 s, or a command) publishes a stale "
    "reading at once, as a failed poll does, so the devices are unknown one timeout after the first "
    "unanswered exchange whichever it is (before, a failed heartbeat left them showing their last state "
    "for one more timeout: ≈ 650 ms instead of ≈ 400 ms, about one trial in eight)."
)


def comms_loss(seconds: float, *, configs: tuple[tuple[int, int], ...] = CONFIGS,
               trials: int | None = None) -> list[dict[str, Any]]:
    count = trials if trials is not None else max(3, int(seconds * 0.8))
    return [_row(poll_ms, timeout_ms, count) for poll_ms, timeout_ms in configs]


def _row(poll_ms: int, timeout_ms: int, trials: int) -> dict[str, Any]:
    unknown, lost, recovered = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-comms-") as tmp:
        work = Path(tmp)
        site = write_site(work / "site.toml", slots_site(1, 2, poll_ms=poll_ms, timeout_ms=timeout_ms))
        with Sim(site, work, write_log=False) as sim, Daemon(site, work) as daemon:
            daemon.wait_all_ok()
            with daemon.control() as control:
                for _ in range(trials):
                    # a random phase of both the poll cycle and the heartbeat cycle (watchdog_ms / 4 = 0.75 s)
                    time.sleep(random.uniform(0, HEARTBEAT_S + poll_ms / 1000))
                    stopped = time.time()
                    os.kill(sim.pid, signal.SIGSTOP)
                    try:
                        seen: dict[str, float] = {}

                        def detected() -> bool:
                            reply, _, received = control.request("status")
                            status = reply["data"]
                            if "unknown" not in seen and all(d["state"] == "unknown" for d in status["devices"]):
                                seen["unknown"] = received
                            if status["plcs"][0]["comms"] == "lost":
                                seen["lost"] = received
                            return "unknown" in seen and "lost" in seen

                        wait_for(detected, 30, "comms lost", step_s=0.001)
                    finally:
                        os.kill(sim.pid, signal.SIGCONT)
                    unknown.append(seen["unknown"] - stopped)
                    lost.append(seen["lost"] - stopped)
                    resumed = time.time()
                    daemon.wait_all_ok()
                    recovered.append(time.time() - resumed)
    reference = LOST_POLLS * (poll_ms + timeout_ms)
    lost_ms = [x * 1000 for x in lost]
    return {
        "poll_ms": poll_ms,
        "timeout_ms": timeout_ms,
        "trials": trials,
        "unknown_ms_p50": round(percentile(unknown, 50) * 1000, 1),
        "unknown_ms_max": round(max(unknown) * 1000, 1),
        "lost_ms_p50": round(percentile(lost_ms, 50), 1),
        "lost_ms_max": round(max(lost_ms), 1),
        "reference_ms": reference,
        "lost_max_over_reference": round(max(lost_ms) / reference, 2),
        "within_reference": max(lost_ms) <= reference,
        "recovered_s_max": round(max(recovered), 2),
    }
