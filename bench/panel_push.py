"""Panel push: a device's state change, from barrierd's own event time to the new state in headless Chromium's DOM.

Clocks: barrierd's events table `ts` (time.time() when it records the state_change), the browser's
performance.timeOrigin + performance.now() in a MutationObserver the benchmark installs on the page,
and time.time() in the reference WebSocket client: one machine, one wall clock.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.latency import ack_cleared
from bench.panel_clients import Background, Reader, logged_in
from bench.panel_rig import UnixUser, chromium, panel_site
from bench.procs import Daemon, Sim, SimControl, percentile, wait_for

GATE, PLC = "gate-1", "plc-1"  # panel_site(…, 1 lane): gate-1 in slot 0 of plc-1
POLL_MS = 100
TICK_S = 0.25  # the panel's heartbeat (controller/panel_live.py TICK_S): changes come at a random phase of it
TARGET_MS = 200.0
SIM_SCAN_MS = 1
CHANGES_PER_SECOND_OF_BENCH = 3  # --seconds 10 → 30 changes

TITLE = "Panel push: state change recorded by barrierd → new state in headless Chromium's DOM"
NOTES = (
    "One lane (gate, blocker, signal on one PLC), poll_ms 100, the panel on loopback. A real Unix user is "
    "made for the run (useradd + chpasswd, removed after) and logs in through the page's form in headless "
    "Chromium (Debian's, through chromedriver). The gate's `local` fault is switched on and off through "
    "sim-plc's control socket at a random phase of the poll and of the panel's 250 ms heartbeat; each "
    "switch is one state_change event (closed ↔ local). Latency = the first moment the page's DOM shows the "
    "new state (a MutationObserver installed by the benchmark on the tiles' data-state attribute, "
    "performance.timeOrigin + performance.now()) minus barrierd's own time of the change (the event's ts). "
    "next_frame: the first animation frame after that mutation (requestAnimationFrame), when it can be "
    "painted. Reference row: an aiohttp WebSocket client on /api/live in the benchmark process, logged "
    "in with its own session, running at the same time (the first status message showing the new state): "
    "the difference is the browser's share (its JSON parsing, the page's render). clock_check_ms: the "
    "browser's clock minus the benchmark's, read once, ± half the call's round trip. Target: p95 ≤ 200 ms "
    "(reported, not enforced)."
)

OBSERVER = """
window.benchMarks = [];
new MutationObserver(records => {
  const now = (performance.timeOrigin + performance.now()) / 1000;
  for (const r of records) {
    const value = r.target.getAttribute("data-state");
    if (r.oldValue === value) continue;  // the page sets every tile on every message: keep only changes
    const mark = {t: now, device: r.target.dataset.device, value: value, frame: null};
    window.benchMarks.push(mark);
    requestAnimationFrame(() => { mark.frame = (performance.timeOrigin + performance.now()) / 1000; });
  }
}).observe(document.body, {subtree: true, attributes: true, attributeFilter: ["data-state"], attributeOldValue: true});
"""


def first_shown(changes: list[tuple[float, str]], shown: list[tuple[float, str]]) -> list[float | None]:
    """For each change (time, new value), in time order, the delay until the first observation (time, value)
    showing that value at or after the change and before the next change; None if there is none."""
    delays: list[float | None] = []
    ordered = sorted(shown)
    for i, (at, value) in enumerate(changes):
        until = changes[i + 1][0] if i + 1 < len(changes) else float("inf")
        seen = next((t for t, v in ordered if at <= t < until and v == value), None)
        delays.append(None if seen is None else seen - at)
    return delays


def panel_push(seconds: float, *, changes: int | None = None) -> list[dict[str, Any]]:
    count = changes if changes is not None else max(10, int(CHANGES_PER_SECOND_OF_BENCH * seconds))
    with tempfile.TemporaryDirectory(prefix="bench-panel-push-") as tmp, UnixUser() as user:
        work = Path(tmp)
        site, url = panel_site(work / "site.toml", 1, user, poll_ms=POLL_MS)
        with Sim(site, work, scan_ms=SIM_SCAN_MS, write_log=False) as sim, Daemon(site, work) as daemon:
            daemon.wait_all_ok()
            driver = chromium(work / "chromium-profile")
            try:
                _open_and_log_in(driver, url, user)
                clock_check = _clock_check(driver)
                driver.execute_script(OBSERVER)
                with Background() as pages:
                    reference = Reader(pages.run(logged_in(url, user.name, user.password)), keep=True)
                    pages.start(reference.follow())
                    wait_for(lambda: reference.seen, 10, "the reference client's first status")
                    events = _drive(daemon, sim, reference, count)
                    wait_for(lambda: _marks(driver, events[-1][1]), 10, "the browser shows the last change")
                    marks = driver.execute_script("return window.benchMarks")
            finally:
                driver.quit()
    browser = [(m["t"], m["value"]) for m in marks if m["device"] == GATE]
    frames = [(m["frame"], m["value"]) for m in marks if m["device"] == GATE and m["frame"] is not None]
    python = [(t, states[GATE]) for t, states in reference.seen]
    return [
        _row("headless Chromium: DOM (MutationObserver)", first_shown(events, browser),
             first_shown(events, frames), clock_check),
        _row("aiohttp client on /api/live (reference)", first_shown(events, python), None, None),
    ]


def _open_and_log_in(driver, url: str, user: UnixUser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.get(url)
    wait_for(lambda: _shown(driver) == "closed", 20, f"{GATE} drawn closed on the page", step_s=0.1)
    driver.find_element(By.ID, "login-user").send_keys(user.name)
    driver.find_element(By.ID, "login-password").send_keys(user.password + Keys.ENTER)
    wait_for(lambda: driver.find_element(By.ID, "session-user").text.startswith(user.name), 10, "logged in",
             step_s=0.1)


def _shown(driver) -> str | None:
    return driver.execute_script(f"const t = document.querySelector('.device[data-device=\"{GATE}\"]');"
                                 "return t ? t.dataset.state : null;")


def _clock_check(driver) -> str:
    """The browser's clock minus ours, ± half the call's round trip (the bound of what one reading shows)."""
    before = time.time()
    browser = driver.execute_script("return (performance.timeOrigin + performance.now()) / 1000;")
    after = time.time()
    return f"{(browser - (before + after) / 2) * 1000:.1f} ± {(after - before) * 500:.1f}"


def _marks(driver, value: str) -> bool:
    marks = driver.execute_script("return window.benchMarks.filter(m => m.frame !== null)")
    return bool(marks) and marks[-1]["value"] == value


def _drive(daemon: Daemon, sim: Sim, reference: Reader, count: int) -> list[tuple[float, str]]:
    """Switch the gate's `local` fault `count` times; barrierd's state_change events for the gate (ts, new state)."""
    with daemon.control() as control, SimControl(sim.control) as sim_control:
        reply, _, _ = control.request("events", limit=1)
        after = reply["data"]["events"][-1]["id"] if reply["data"]["events"] else 0
        for i in range(count):
            local = i % 2 == 0
            wanted = "local" if local else "closed"
            time.sleep(random.uniform(0, max(POLL_MS / 1000, TICK_S)))
            sim_control.inject(PLC, "local", slot=0, active=local)
            wait_for(lambda: reference.seen[-1][1][GATE] == wanted, 10, f"{GATE} {wanted} on /api/live", step_s=0.005)
            if not local:
                ack_cleared(control)
        reply, _, _ = control.request("events", after=after, limit=10_000)
    changes = [(e["ts"], e["data"]["to_state"]) for e in reply["data"]["events"]
               if e["kind"] == "state_change" and e["subject"] == GATE]
    if len(changes) < count:
        raise RuntimeError(f"panel push: {len(changes)} state changes of {GATE} recorded for {count} switches")
    return changes


def _row(path: str, delays: list[float | None], frames: list[float | None] | None,
         clock_check: str | None) -> dict[str, Any]:
    shown = [d * 1000 for d in delays if d is not None]
    frame_ms = [d * 1000 for d in frames or [] if d is not None]
    p95 = percentile(shown, 95)
    return {
        "path": path,
        "changes": len(delays),
        "not_shown": len(delays) - len(shown),
        "p50_ms": round(percentile(shown, 50), 1),
        "p95_ms": round(p95, 1),
        "max_ms": round(max(shown), 1) if shown else None,
        "next_frame_p50_ms": round(percentile(frame_ms, 50), 1) if frames is not None else "-",
        "next_frame_max_ms": round(max(frame_ms), 1) if frame_ms else "-",
        "target_p95_ms": TARGET_MS,
        "meets_target": p95 <= TARGET_MS,
        "clock_check_ms": clock_check or "-",
    }
