"""Panel jitter: how regularly barrierd polls its PLCs with no panel open, then with 50 live pages, slow ones and a flooder.

Poll times are the kernel's send times of barrierd's FC4 requests (bench/poll_capture.py); the pages
are bench/panel_clients.py's, each logged in with its own session as a real Unix user made for the run.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.panel_clients import Background, Flooder, Reader, logged_in, server_send_queue, session_cookie, slow_page
from bench.panel_rig import UnixUser, panel_site
from bench.poll_capture import PollCapture, interval_figures, intervals_ms
from bench.procs import Daemon, Sim, SimControl, cpu_seconds, wait_for

LANES = 4  # one PLC each
POLL_MS = 100
READERS = 50
SLOW_PAGES = 3
SIM_SCAN_MS = 10
CHANGE_GAP_S = 0.1  # a gate's `local` switched every 100 ms, round the lanes, in both windows alike
WARMUP_S = 2.0
PAGES_NICE = (19, 0)  # the pages' threads: below barrierd and sim-plc, then level with them

TITLE = "Panel jitter: barrierd's poll intervals with no panel open, then with 50 live pages + 3 slow + 1 flooding"
NOTES = (
    "4 lanes on 4 PLCs, poll_ms 100, the panel on loopback. Poll interval = the gap between consecutive FC4 "
    "header reads of one PLC, timed by the kernel as barrierd sends them (AF_PACKET socket on lo with a BPF "
    "filter and SO_TIMESTAMPNS; capture_drops counts what the capture lost), all PLCs together; deviation = "
    "|interval − poll_ms|; a poll that misses its slot on barrierd's grid shows as one interval of 200 ms or "
    "more (fewer intervals). In every window the gates' `local` fault is switched every 100 ms round the "
    "lanes through sim-plc's control socket, so each open page gets a status on every change besides the "
    "250 ms heartbeat. Row 1: no page open. Rows 2 and 3: 50 aiohttp pages reading /api/live, 3 pages that "
    "open /api/live with a 4 KB receive buffer and never read, 1 page that reads its messages but sends "
    "1000-byte frames on its live socket as fast as it can and keeps 4 GET /api/status in flight; every "
    "page logged in with its own session as a real Unix user made for the run (PAM). The pages run in "
    "threads of the benchmark process on the same 2 cores as barrierd and sim-plc: at nice 19 (row 2) they "
    "get only the CPU barrierd and sim-plc leave, so what remains is barrierd's own cost of serving them; "
    "at nice 0 (row 3) they compete with both (the flooder alone takes most of a core). pages_dropped: "
    "barrierd's panel_page_dropped log lines during the row (a page whose send has waited 2 s); "
    "slow_send_queue_kb: what the panel's kernel holds for the never-reading pages at the end of the window "
    "(`ss` Send-Q): the send only waits once that buffer (autotuned up to tcp_wmem's maximum) and "
    "aiohttp's are full. load_1m: the machine's load average (other work shares it). Reported, not asserted."
)


def panel_jitter(seconds: float, *, readers: int = READERS, slow_pages: int = SLOW_PAGES, lanes: int = LANES,
                 warmup_s: float = WARMUP_S) -> list[dict[str, Any]]:
    """Rows: no page open; the pages at nice 19 (barrierd's own share); the pages at nice 0 (the whole machine's)."""
    with tempfile.TemporaryDirectory(prefix="bench-panel-jitter-") as tmp, UnixUser() as user:
        work = Path(tmp)
        site, url = panel_site(work / "site.toml", lanes, user, poll_ms=POLL_MS)
        ports = [plc["port"] for plc in tomllib.loads(site.read_text())["plc"]]
        with Sim(site, work, scan_ms=SIM_SCAN_MS, write_log=False) as sim, Daemon(site, work) as daemon, \
                PollCapture(ports) as capture, SimControl(sim.control) as sim_control:
            daemon.wait_all_ok()
            gates = _Gates(sim_control, lanes)
            time.sleep(warmup_s)
            quiet = _window(capture, gates, daemon.pid, seconds)
            quiet.update(pages=0, slow_pages=0, flooding_pages=0, pages_nice="-", messages_read=0, readers_closed=0,
                         pages_dropped=0, slow_send_queue_kb=0, flood_frames=0, flood_status_requests=0)
            rows = [quiet]
            for nice in PAGES_NICE:
                busy = Pages(url, user, readers, slow_pages, nice, warmup_s)
                rows.append(busy.measure(lambda: _window(capture, gates, daemon.pid, seconds), daemon.log))
    return [_ordered(row) for row in rows]


async def _log_in(url: str, user: UnixUser, count: int) -> list:
    """`count` sessions of one user, one login after the other: logins of one name in flight together count as
    failed until PAM accepts them (the panel holds guesses sent at once to its limit of 5)."""
    return [await logged_in(url, user.name, user.password) for _ in range(count)]


class Pages:
    """The open pages of one window: readers, slow pages and a flooder, opened before it, closed after it."""

    def __init__(self, url: str, user: UnixUser, readers: int, slow_pages: int, nice: int, warmup_s: float) -> None:
        self.url, self.user, self.readers, self.slow_pages = url, user, readers, slow_pages
        self.nice, self.warmup_s = nice, warmup_s

    def measure(self, window: Callable[[], dict[str, Any]], daemon_log: Path) -> dict[str, Any]:
        url, user = self.url, self.user
        dropped0 = _dropped_pages(daemon_log)
        with Background(self.nice) as pages, Background(self.nice) as flooding, contextlib.ExitStack() as stack:
            sessions = pages.run(_log_in(url, user, self.readers + self.slow_pages))
            reading = [Reader(http) for http in sessions[:self.readers]]
            running = [pages.start(reader.follow()) for reader in reading]
            slow = []
            for http in sessions[self.readers:]:
                slow.append(stack.enter_context(slow_page(url, session_cookie(http))))
                pages.run(http.close())
            flooder = Flooder(flooding.run(logged_in(url, user.name, user.password)))  # its own loop's client
            running.append(flooding.start(flooder.flood()))
            wait_for(lambda: all(r.messages for r in reading), 30, "every reading page's first message")
            time.sleep(self.warmup_s)
            read0, frames0, requests0 = sum(r.messages for r in reading), flooder.frames, flooder.requests
            row = window()
            row.update(pages=self.readers, slow_pages=self.slow_pages, flooding_pages=1, pages_nice=self.nice,
                       messages_read=sum(r.messages for r in reading) - read0,
                       readers_closed=sum(r.closed for r in reading),
                       slow_send_queue_kb=round(server_send_queue(url, slow) / 1024, 1),
                       flood_frames=flooder.frames - frames0, flood_status_requests=flooder.requests - requests0)
            _raise_failed(running)
        row["pages_dropped"] = _dropped_pages(daemon_log) - dropped0
        return row


def _raise_failed(running: list[concurrent.futures.Future]) -> None:
    """A page that ended on an error of its own (not a close by the panel) makes the figures meaningless."""
    for future in running:
        if future.done() and not future.cancelled() and future.exception() is not None:
            raise RuntimeError("panel jitter: a page failed") from future.exception()


class _Gates:
    """Each lane's gate switched in and out of `local` in turn, from sim-plc's control socket."""

    def __init__(self, sim_control: SimControl, lanes: int) -> None:
        self.sim_control, self.lanes = sim_control, lanes
        self.local = [False] * lanes
        self.switches = 0

    def switch_next(self) -> None:
        lane = self.switches % self.lanes
        self.local[lane] = not self.local[lane]
        self.sim_control.inject(f"plc-{lane + 1}", "local", slot=0, active=self.local[lane])
        self.switches += 1

    def all_off(self) -> None:
        while any(self.local):
            self.switch_next()


def _window(capture: PollCapture, gates: _Gates, pid: int, seconds: float) -> dict[str, Any]:
    capture.dropped()  # the kernel's counter restarts at each reading
    start, cpu0, switches0 = time.time(), cpu_seconds(pid), gates.switches
    while time.time() < start + seconds:
        gates.switch_next()
        time.sleep(CHANGE_GAP_S)
    gates.all_off()
    end, cpu1 = time.time(), cpu_seconds(pid)
    gaps = intervals_ms(capture.snapshot(), start, end)
    if not gaps:
        raise RuntimeError("panel jitter: no poll captured on loopback")
    return {"window_s": round(end - start, 1), **interval_figures(gaps, POLL_MS),
            "barrierd_cpu_s_per_s": round((cpu1 - cpu0) / (end - start), 3),
            "state_switches": gates.switches - switches0, "capture_drops": capture.dropped(),
            "load_1m": round(os.getloadavg()[0], 1)}


def _dropped_pages(log: Path) -> int:
    count = 0
    for line in log.read_text().splitlines():
        with contextlib.suppress(ValueError):
            count += json.loads(line).get("event") == "panel_page_dropped"
    return count


COLUMNS = ("pages", "slow_pages", "flooding_pages", "pages_nice", "window_s", "intervals", "interval_p50_ms", "interval_p99_ms",
           "interval_max_ms", "deviation_p50_ms", "deviation_p99_ms", "deviation_max_ms", "barrierd_cpu_s_per_s",
           "state_switches", "messages_read", "pages_dropped", "readers_closed", "slow_send_queue_kb",
           "flood_frames", "flood_status_requests", "capture_drops", "load_1m")


def _ordered(row: dict[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in COLUMNS}
