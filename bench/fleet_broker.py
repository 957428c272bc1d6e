"""Fleet broker: 50 simulated crossings × 16 lanes into one Mosquitto, and one subscriber of all of it.

The broker is the centre's (what the site bridges feed); the sites publish as barrierd does (retained
states with a 3 × refresh_s expiry at every refresh, events between). The subscriber is a command (argv)
so that any program can be measured in the same place: `measure_subscriber` takes it; the reference is
a plain aiomqtt client (bench/fleet_subscriber.py). Broker messages per second come from Mosquitto's own
$SYS counters (sys_interval 1), read by a monitor client whose own $SYS deliveries are taken off.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from bench.procs import Child, TerminalChild, cpu_seconds, memory_mb, wait_for
from bench.sites import free_ports

SITES = 50
LANES = 16
REFRESH_S = (10.0, 1.0)  # barrierd's default refresh, and its fastest (a stress row)
EVENTS_PER_SITE_S = 0.5
WARMUP_S = 4.0
MOSQUITTO = "/usr/sbin/mosquitto"
REFERENCE_SUBSCRIBER = [sys.executable, "-m", "bench.fleet_subscriber", "--host", "{host}", "--port", "{port}"]

TITLE = f"Fleet broker: {SITES} sites × {LANES} lanes publishing into one Mosquitto, one subscriber of all"
NOTES = (
    f"One Mosquitto 2.0 (Debian) on loopback without TLS (the TLS of deploy/mosquitto/centre.conf is left out: "
    f"this row measures routing), persistence off. The sites: one process (bench/fleet_sites.py), one aiomqtt "
    f"MQTT 5 connection per site, each site publishing its status once (retained) and its {LANES * 6 + 2} "
    f"retained states shaped as a real barrierd's (per lane: the lane, gate, blocker and its readiness, signal "
    f"and its PLC; lockdown, alarms) at QoS 1 with a 3 × refresh_s expiry once "
    f"per refresh_s, sites out of step, plus {EVENTS_PER_SITE_S:g} events/s per site (Poisson). The "
    "subscriber: barrier-supervisor/# at QoS 1, each payload JSON-decoded (reference: "
    "bench/fleet_subscriber.py, plain aiomqtt). msgs_in/s: publishes the broker acknowledged (the sites' "
    "count); msgs_out/s: the broker's $SYS publish/messages/sent over the window, without the monitor's own "
    "$SYS messages (the $SYS counter arrives once a second: ±1 s of it over the window); out/in near 1 means the "
    "subscriber kept up. CPU as CPU s/s from /proc/PID/stat (1.0 = one core); broker RSS = VmRSS at the end "
    "of the window, peak = VmHWM. refresh_s 10 is barrierd's default; 1 s, its minimum, is the stress row, "
    f"where the simulated sites fall short of the {SITES * (LANES * 6 + 2) + SITES * EVENTS_PER_SITE_S:.0f} "
    "msgs/s asked (earlier payloads, 5 states per lane: ≈ 450 to 1000/s reached at 0.2 CPU s/s, something "
    "pacing aiomqtt's QoS 1 publishes; barrierd's payloads: ≈ 3000/s at 0.95 CPU s/s, one run on a loaded "
    "machine); the broker is not the limit (≈ 0.1 CPU s/s). The centre itself is measured in fleet_centre "
    "(measure_subscriber with its argv, {host} and {port} filled in)."
)

BROKER_CONF = """listener {port} 127.0.0.1
allow_anonymous true
persistence false
sys_interval 1
set_tcp_nodelay true
max_queued_messages 100000
log_dest stderr
log_type error
log_type warning
"""


class SysMonitor:
    """Mosquitto's $SYS count of publishes sent, as it arrives every sys_interval."""

    TOPICS = ("$SYS/broker/publish/messages/sent",)

    def __init__(self, port: int) -> None:
        self.values: dict[str, int] = {}
        self.own = 0  # $SYS messages delivered to this monitor (they count in the broker's "sent")
        self.updates = 0
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-monitor")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: [c.subscribe(t) for t in self.TOPICS]
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _client, _userdata, message) -> None:
        with self.lock:
            self.own += 1
            self.values[message.topic] = int(message.payload)
            self.updates += 1

    def fresh(self) -> tuple[float, int, int]:
        """After the counter's next update: (time, publishes sent, own deliveries so far)."""
        with self.lock:
            seen = self.updates
        wait_for(lambda: self.updates > seen, 5, "$SYS counters")
        with self.lock:
            return time.monotonic(), self.values[self.TOPICS[0]], self.own

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def measure_subscriber(subscriber_argv: Sequence[str], seconds: float, *, refresh_s: float = 10.0,
                       sites: int = SITES, lanes: int = LANES, label: str = "", terminal: bool = False,
                       reader_argv: Sequence[str] | None = None,
                       after: Callable[[int], dict[str, Any]] | None = None) -> dict[str, Any]:
    """One row: the broker fed by `sites` simulated sites, read by the subscriber command (argv; "{host}" and
    "{port}" in it are filled), measured for `seconds` after a warm-up.

    `terminal`: the subscriber runs on a pseudo-terminal (procs.TerminalChild), its screen updates counted.
    `reader_argv`: a second process (e.g. a web page's reader) started after it, asked with SIGUSR1 for a JSON
    line {"received": the subscriber's own count, "updates": ...}. `after(port)`: more columns, measured once
    the window is over and the subscriber and reader are stopped, with the fleet still publishing."""
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        port = free_ports(1)[0]
        (work / "mosquitto.conf").write_text(BROKER_CONF.format(port=port))
        broker = Child([MOSQUITTO, "-c", str(work / "mosquitto.conf")], work / "mosquitto.log")
        argv = [part.format(host="127.0.0.1", port=port) for part in subscriber_argv]
        publishers = Child([sys.executable, "-m", "bench.fleet_sites", "--port", str(port), "--sites", str(sites),
                            "--lanes", str(lanes), "--refresh-s", str(refresh_s),
                            "--events-per-site-s", str(EVENTS_PER_SITE_S)], work / "sites.log")
        subscriber = (TerminalChild if terminal else Child)(argv, work / "subscriber.log")
        reader = Child(list(reader_argv), work / "reader.log") if reader_argv else None
        stack.enter_context(broker)
        wait_for(lambda: _listening(port), 10, "mosquitto listening")
        monitor = SysMonitor(port)
        stack.callback(monitor.close)
        stack.enter_context(publishers)
        readers = stack.enter_context(contextlib.ExitStack())  # stopped before `after`
        for child in (subscriber, reader):
            if child is not None:
                readers.enter_context(child)
        time.sleep(WARMUP_S)
        for child, what in ((broker, "broker"), (subscriber, "subscriber"), (publishers, "sites"), (reader, "reader")):
            if child is not None and not child.alive():
                raise child.fail(f"the {what} exited")
        start, published0, read0 = monitor.fresh(), published(publishers), _read(reader, subscriber)
        cpu0 = {c: cpu_seconds(c.pid) for c in (broker, subscriber, publishers)}
        time.sleep(seconds)
        end, published1, read1 = monitor.fresh(), published(publishers), _read(reader, subscriber)
        cpu1 = {c: cpu_seconds(c.pid) for c in (broker, subscriber, publishers)}
        rss, peak = memory_mb(broker.pid, "VmRSS"), memory_mb(broker.pid)
        subscriber_peak = memory_mb(subscriber.pid)
        readers.close()
        extra = after(port) if after is not None else {}
    wall = end[0] - start[0]
    rate_in = (published1 - published0) / wall
    rate_out = ((end[1] - start[1]) - (end[2] - start[2])) / wall
    cpu = {c: (cpu1[c] - cpu0[c]) / wall for c in cpu0}
    row = {
        "subscriber": label or " ".join(subscriber_argv[:3]),
        "sites × lanes": f"{sites} × {lanes}",
        "refresh_s": refresh_s,
        "msgs_in/s": round(rate_in, 1),
        "msgs_out/s": round(rate_out, 1),
        "out/in": round(rate_out / rate_in, 3) if rate_in else None,
        "broker_cpu": round(cpu[broker], 3),
        "broker_rss_mb": round(rss, 1),
        "broker_peak_mb": round(peak, 1),
        "subscriber_cpu": round(cpu[subscriber], 3),
        "subscriber_peak_mb": round(subscriber_peak, 1),
        "sites_cpu": round(cpu[publishers], 3),
    }
    if read0 is not None and read1 is not None:
        if "received" in read1:
            row["received/s"] = round((read1["received"] - read0["received"]) / wall, 1)
        row["view_updates/s"] = round((read1["updates"] - read0["updates"]) / wall, 2)
        row |= {key: value for key, value in read1.items() if key not in ("received", "updates")}
    return row | extra


def _read(reader: Child | None, subscriber: Child) -> dict[str, Any] | None:
    """The reader's counts (SIGUSR1), or a terminal subscriber's screen updates; None for neither."""
    if reader is not None:
        return _asked(reader, "received")
    if isinstance(subscriber, TerminalChild):
        return {"updates": subscriber.frames}
    return None


def published(publishers: Child) -> int:
    """The sites' count of acknowledged publishes, asked with SIGUSR1 (a JSON line in their log)."""
    return _asked(publishers, "published")["published"]


def _asked(child: Child, key: str) -> dict[str, Any]:
    """Send SIGUSR1 and wait for the JSON line starting with `key` that the child prints in answer."""
    lines_before = child.log.read_text().count("\n")
    child.proc.send_signal(signal.SIGUSR1)
    line = wait_for(lambda: _line_after(child.log, lines_before, key), 5, f"the {key} count")
    return json.loads(line)


def _line_after(log: Path, count: int, key: str) -> str | None:
    found = [line for line in log.read_text().splitlines()[count:] if line.startswith(f'{{"{key}"')]
    return found[0] if found else None


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def fleet_broker(seconds: float) -> list[dict[str, Any]]:
    return [measure_subscriber(REFERENCE_SUBSCRIBER, seconds, refresh_s=refresh, label="aiomqtt (reference)")
            for refresh in REFRESH_S]
