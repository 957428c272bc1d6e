"""End to end: barrierd publishes its state and events to a real Mosquitto broker; a lost broker never slows it."""

from __future__ import annotations

import json
import os
import signal
import threading

import paho.mqtt.client as mqtt
import pytest

from tests.e2e.harness import Processes, site_copy
from tests.e2e.mqtt_broker import Broker
from tests.support import wait_until

pytestmark = pytest.mark.e2e

PREFIX = "crossings/test-site"


class Watcher:
    """A command centre's view: everything under the prefix, with the retained flag."""

    def __init__(self, port: int) -> None:
        self.messages: list[tuple[str, dict, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(f"{PREFIX}/#", qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _client, _userdata, message) -> None:
        with self.lock:
            self.messages.append((message.topic, json.loads(message.payload), bool(message.retain)))

    def latest(self, topic: str) -> dict | None:
        with self.lock:
            found = [payload for t, payload, _ in self.messages if t == f"{PREFIX}/{topic}"]
        return found[-1] if found else None

    def events(self) -> list[dict]:
        with self.lock:
            return [payload for t, payload, _ in self.messages if t == f"{PREFIX}/events"]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def crossing(tmp_path):
    broker = Broker(tmp_path)
    broker.start()
    site = site_copy(tmp_path)
    site.write_text(site.read_text() + f'\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
                    f'topic_prefix = "{PREFIX}"\nkeepalive_s = 2\nrefresh_s = 2.0\n')
    procs = Processes(tmp=tmp_path, site=site)
    procs.start_sim()
    procs.start_daemon()
    yield procs, broker
    procs.close()
    broker.stop()


def test_state_and_events_reach_the_broker_and_a_killed_daemon_is_seen_offline(crossing):
    procs, broker = crossing
    watcher = Watcher(broker.port)
    try:
        wait_until(lambda: (watcher.latest("status") or {}).get("online") is True, 10, "status online")
        wait_until(lambda: (watcher.latest("device/gate-1") or {}).get("state") == "closed", 10, "gate-1 closed")
        wait_until(lambda: (watcher.latest("lane/lane-1") or {}).get("mode") == "secured", 10, "lane-1 secured")
        wait_until(lambda: (watcher.latest("readiness/blocker-1") or {}).get("state") == "ready", 10,
                   "blocker-1's EFO readiness published")
        ready = watcher.latest("readiness/blocker-1")
        assert ready["reasons"] == [] and ready["pressure_bar"] >= 140 and watcher.latest("readiness/gate-1") is None
        assert procs.ctl("open", "gate-1")[0] == 0
        wait_until(lambda: (watcher.latest("device/gate-1") or {}).get("state") == "open", 10, "gate-1 open")
        commands = [e for e in watcher.events() if e["kind"] == "command" and e["subject"] == "gate-1"]
        assert commands and "open" in commands[-1]["summary"] and commands[-1]["data"]["uid"] == os.getuid()

        procs.daemon.send_signal(signal.SIGKILL)  # no goodbye: the broker's last will says it
        procs.daemon.wait(timeout=10)
        wait_until(lambda: (watcher.latest("status") or {}).get("online") is False, 10, "offline by the last will")
        assert watcher.latest("status")["reason"] == "connection lost"
        assert watcher.latest("status")["site"] == "demo-crossing", "the last will names the site"
    finally:
        watcher.close()


def test_a_clean_stop_publishes_every_device_unknown_and_retained_states_expire(crossing):
    procs, broker = crossing
    watcher = Watcher(broker.port)
    try:
        wait_until(lambda: (watcher.latest("device/blocker-1") or {}).get("state") == "closed", 10, "blocker up")
        assert procs.stop_daemon() == 0
        wait_until(lambda: (watcher.latest("status") or {}).get("reason") == "barrierd stopped", 10, "offline")
        for name in ("gate-1", "blocker-1", "signal-1", "bay-entry"):
            assert watcher.latest(f"device/{name}")["state"] == "unknown"
        assert watcher.latest("lane/lane-1")["mode"] == "unknown" and watcher.latest("plc/plc-bay")["comms"] == "unknown"
        assert watcher.latest("lockdown")["active"] is None
        assert watcher.latest("readiness/blocker-1") == {"name": "blocker-1", "state": "unknown",
                                                         "reasons": ["barrierd stopped"]}
    finally:
        watcher.close()
    # A command centre connecting later: the retained states expire (3 × refresh_s = 6 s) once barrierd is
    # gone, the status stays.
    wait_until(lambda: "device/gate-1" not in retained_now(broker.port), 20, "device states expired")
    assert retained_now(broker.port)["status"]["online"] is False


def retained_now(port: int) -> dict[str, dict]:
    """The retained messages under the prefix, as a client subscribing now gets them."""
    watcher = Watcher(port)
    try:
        wait_until(lambda: watcher.client.is_connected(), 5, "watcher connected")
        wait_until(lambda: watcher.latest("status") is not None, 5, "the retained status")
        watcher.client.publish(f"{PREFIX}/probe", "{}", qos=1)  # comes back after every retained message
        wait_until(lambda: watcher.latest("probe") is not None, 5, "the probe back")
        with watcher.lock:
            return {t.removeprefix(f"{PREFIX}/"): p for t, p, retained in watcher.messages if retained}
    finally:
        watcher.close()


def test_supervision_goes_on_without_the_broker_and_publication_resumes_when_it_returns(crossing):
    procs, broker = crossing
    broker.stop()
    assert procs.ctl("open", "gate-2")[0] == 0  # commands do not wait for the broker
    wait_until(lambda: procs.device("gate-2")["state"] == "open", 10, "gate-2 open without a broker")
    broker.start()
    watcher = Watcher(broker.port)
    try:
        wait_until(lambda: (watcher.latest("device/gate-2") or {}).get("state") == "open", 20, "republished")
        assert (watcher.latest("status") or {}).get("online") is True
    finally:
        watcher.close()
