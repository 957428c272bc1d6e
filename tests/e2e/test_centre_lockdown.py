"""End to end: the command centre locks down two of three crossings over a real Mosquitto, signed; forged,
expired, replayed and stray messages are refused and recorded with nothing written; a lost broker slows nothing."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from centre import protocol
from hal.profile import Command, SlotHolding, slot_base
from tests.e2e.harness import Processes, site_copy
from tests.e2e.test_device_commands import command_writes
from tests.e2e.mqtt_broker import Broker
from tests.support import wait_until

pytestmark = pytest.mark.e2e

SITES = ("north", "south", "west")  # north and south opted in; west lists the key but has lockdown = false
BLOCKERS = {"blocker-1": ("plc-lane-1", 1), "blocker-2": ("plc-lane-2", 1)}


def prefix(site: str) -> str:
    return f"crossings/{site}"


def centre_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "centre", *args], capture_output=True, text=True,
                          timeout=90)


class Fleet:
    """A broker, three crossings (sim-plc + barrierd each) and the centre's key."""

    def __init__(self, tmp: Path) -> None:
        self.broker = Broker(tmp)
        self.key_file = tmp / "centre.pem"
        keygen = centre_cli("keygen", "--out", str(self.key_file), "--key-id", "hq-1")
        assert keygen.returncode == 0, keygen.stderr
        self.key_line = keygen.stdout.strip().splitlines()[-1]
        self.key = protocol.load_private_key(self.key_file.read_bytes())
        self.sites: dict[str, Processes] = {}
        for name in SITES:
            (tmp / name).mkdir()
            path = site_copy(tmp / name)
            opted_in = "true" if name != "west" else "false"
            path.write_text(path.read_text().replace('name = "demo-crossing"', f'name = "{name}"')
                            + f'\n[mqtt]\nhost = "127.0.0.1"\nport = {self.broker.port}\ntopic_prefix = '
                              f'"{prefix(name)}"\nkeepalive_s = 2\nconnect_timeout_s = 1.0\n'
                              f"\n[centre]\nlockdown = {opted_in}\n[centre.keys]\n{self.key_line}\n")
            self.sites[name] = Processes(tmp=tmp / name, site=path)

    def start(self) -> None:
        """The three crossings start side by side (one thread each: each start waits for its process)."""
        self.broker.start()
        failures: list[BaseException] = []

        def start(procs: Processes) -> None:
            try:
                procs.start_sim(timeout_s=60)  # three at once on a busy machine: generous deadlines
                procs.start_daemon(timeout_s=60)
                wait_until(lambda: procs.status()["centre"]["connected"], 60, "listening to the centre")
            except BaseException as exc:  # noqa: BLE001 - re-raised below, in the test's thread
                failures.append(exc)

        threads = [threading.Thread(target=start, args=(procs,)) for procs in self.sites.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]

    def close(self) -> None:
        for procs in self.sites.values():
            procs.close()
        self.broker.stop()

    def commands_written(self) -> dict[str, int]:
        return {name: len(command_writes(procs.writes())) for name, procs in self.sites.items()}

    def centre_events(self, site: str) -> list[dict]:
        with sqlite3.connect(f"file:{self.sites[site].event_db}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT summary, data FROM events WHERE kind = 'centre' ORDER BY id").fetchall()
        return [{"summary": s, **json.loads(d)} for s, d in rows]


class Raw:
    """A client that publishes anything to the broker and collects the sites' replies."""

    def __init__(self, port: int) -> None:
        self.replies: list[dict] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(f"crossings/+/{protocol.REPLY_TOPIC}", qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_until(self.client.is_connected, 10, "raw client connected")

    def _on_message(self, _client, _userdata, message) -> None:
        with self.lock:
            self.replies.append(json.loads(message.payload))

    def send(self, site: str, body: bytes, topic: str = protocol.LOCKDOWN_TOPIC) -> None:
        self.client.publish(f"{prefix(site)}/{topic}", body, qos=1).wait_for_publish(10)

    def reply_to(self, command_id: str | None, site: str) -> dict:
        def found():
            with self.lock:
                return next((r for r in self.replies if r.get("id") == command_id and r.get("site") == site), None)
        return wait_until(found, 20, f"reply from {site} to {command_id}")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    fleet = Fleet(tmp_path_factory.mktemp("fleet"))
    try:
        fleet.start()
        yield fleet
    finally:
        fleet.close()


@pytest.fixture(scope="module")
def raw(fleet):
    raw = Raw(fleet.broker.port)
    yield raw
    raw.close()


def signed(fleet: Fleet, sites: list[str], key=None, issued_at: float | None = None) -> tuple[bytes, str]:
    payload = protocol.new_payload(sites, "drill", "duty-1", time.time() if issued_at is None else issued_at)
    return protocol.sign(key or fleet.key, "hq-1", payload), payload["id"]


def test_forged_expired_stray_and_unwanted_commands_are_refused_recorded_and_write_nothing(fleet, raw):
    before = fleet.commands_written()
    signed_body, unsigned_id = signed(fleet, ["north"])
    body = json.loads(signed_body)
    unsigned = json.dumps({"payload": body["payload"], "key": "hq-1"}).encode()
    forged, forged_id = signed(fleet, ["north"], key=Ed25519PrivateKey.generate())
    expired, expired_id = signed(fleet, ["north"], issued_at=time.time() - 120)
    for data in (unsigned, forged, expired):
        raw.send("north", data)
    not_opted, not_opted_id = signed(fleet, ["west"])
    raw.send("west", not_opted)
    # Nothing but the signed lockdown topic is listened to: these go unanswered and move nothing.
    raw.send("north", json.dumps({"command": "open", "args": {"device": "gate-1"}}).encode(), "centre/open")
    raw.send("north", json.dumps({"command": "lockdown_release", "args": {"reason": "x"}}).encode(), "centre/lockdown/reply")
    raw.send("north", b'{"state": "open"}', "device/gate-1")

    assert raw.reply_to(unsigned_id, "north")["reason"].startswith("unsigned")
    assert raw.reply_to(forged_id, "north")["reason"] == "bad signature: not signed by key hq-1"
    assert raw.reply_to(expired_id, "north")["reason"].startswith("expired")
    assert raw.reply_to(not_opted_id, "west")["reason"].startswith("opt-in off")
    recorded = fleet.centre_events("north")
    assert [e["reason"].split(":")[0].split(" ")[0] for e in recorded] == ["unsigned", "bad", "expired"]
    assert [e["id"] for e in recorded] == [unsigned_id, forged_id, expired_id] and all(e["key"] == "hq-1" for e in recorded)
    assert fleet.centre_events("west")[0]["id"] == not_opted_id
    assert fleet.commands_written() == before  # no PLC of any site got a command
    for procs in fleet.sites.values():
        status = procs.status()
        assert status["lockdown"] is None and all(lane["mode"] != "lockdown" for lane in status["lanes"])


def test_a_group_lockdown_secures_every_lane_of_the_two_sites_named_and_leaves_the_third(fleet, raw):
    for name in ("north", "south"):  # something to secure: lane 1's gate open, its blocker lowered
        procs = fleet.sites[name]
        assert procs.ctl("open", "gate-1")[0] == 0 and procs.ctl("lower", "blocker-1")[0] == 0
    for name in ("north", "south"):
        wait_until(lambda p=fleet.sites[name]: p.device("blocker-1")["state"] == "open", 20, f"{name} blocker-1 down")
    west_before = fleet.commands_written()["west"]
    started = time.monotonic()
    result = centre_cli("lockdown", "--sites", "north,south", "--reason", "armed vehicle", "--operator", "duty-1",
                        "--key", str(fleet.key_file), "--key-id", "hq-1", "--broker", f"127.0.0.1:{fleet.broker.port}",
                        "--prefix-of", f"north={prefix('north')}", "--prefix-of", f"south={prefix('south')}",
                        "--prefix-of", f"west={prefix('west')}")
    took = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("all lanes of 2 sites secured at t = ")
    print(f"\ncentre: {result.stdout.strip()}; the command line took {took:.2f} s")
    for name in ("north", "south"):
        procs = fleet.sites[name]
        status = procs.status()
        assert status["lockdown"]["by"] == "centre:duty-1 (key hq-1)"
        assert all(lane["mode"] == "lockdown" for lane in status["lanes"])
        assert all(d["state"] in ("closed", "red") for d in status["devices"]), status["devices"]
        efo = [w for w in command_writes(procs.writes()) if w["values"][0] == Command.EFO]
        for plc, slot in BLOCKERS.values():
            assert any(w["plc"] == plc and w["address"] == slot_base(slot) + SlotHolding.COMMAND for w in efo)
    assert fleet.commands_written()["west"] == west_before
    assert fleet.sites["west"].status()["lockdown"] is None


def test_a_replayed_command_is_refused_and_moves_nothing(fleet, raw):
    body, command_id = signed(fleet, ["south"])
    raw.send("south", body)
    assert raw.reply_to(command_id, "south")["accepted"] is True
    before = fleet.commands_written()
    raw.send("south", body)  # the same bytes again

    def refused_replay():
        with raw.lock:
            return [r for r in raw.replies if r.get("id") == command_id and r.get("accepted") is False]
    assert wait_until(refused_replay, 20, "replay refused")[0]["reason"].startswith("replayed")
    assert fleet.centre_events("south")[-1]["id"] == command_id
    assert fleet.commands_written() == before


def test_a_lost_broker_delays_neither_supervision_nor_a_local_command(fleet):
    fleet.broker.stop()
    west = fleet.sites["west"]
    polls = {p["name"]: p["polls"] for p in west.status()["plcs"]}
    wait_until(lambda: all(p["polls"] > polls[p["name"]] + 20 for p in west.status()["plcs"]), 10, "polls go on")
    north = fleet.sites["north"]
    code, out, err = north.ctl("lockdown", "release", "--reason", "all clear")
    assert code == 0, err
    status = north.status()
    assert status["lockdown"] is None and not status["centre"]["connected"]
    assert west.ctl("open", "gate-2")[0] == 0
    wait_until(lambda: west.device("gate-2")["state"] == "open", 10, "west gate-2 open")
