"""End to end: deploy/mosquitto's site and centre brokers, rendered and run: the bridge, its queue, TLS and the ACL."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.e2e.mosquitto_rig import EXAMPLES, Client, TestPki, render
from tests.e2e.mqtt_broker import Mosquitto
from tests.support import free_port, wait_until

pytestmark = pytest.mark.e2e

SITE = "site-a"
OTHER = "site-b"
PREFIX = f"barrier-supervisor/{SITE}"
OTHER_PREFIX = f"barrier-supervisor/{OTHER}"
GRANTED_QOS1 = 1
NOT_AUTHORIZED = 135  # MQTT 5 reason code 0x87


class Fleet:
    """A centre broker (TLS, ACL) and one site's broker bridged to it, from the example files."""

    def __init__(self, tmp) -> None:
        self.pki = TestPki(tmp / "pki")
        server = self.pki.issue("localhost", server=True)
        site = self.pki.issue(SITE)
        self.identities = {name: self.pki.issue(name) for name in ("centre", OTHER)}
        self.centre_port, self.site_port = free_port(), free_port()
        for folder in ("centre-db", "site-db"):
            (tmp / folder).mkdir()
        (tmp / "centre.acl").write_text(render("centre.acl", {}).removeprefix("user root\n"))
        (tmp / "centre.conf").write_text(render("centre.conf", {
            "CENTRE_PORT": self.centre_port, "CENTRE_BIND": "127.0.0.1", "CA_FILE": self.pki.ca_file,
            "SERVER_CERT_FILE": server.cert, "SERVER_KEY_FILE": server.key, "ACL_FILE": tmp / "centre.acl",
            "PERSISTENCE_DIR": f"{tmp / 'centre-db'}/"}))
        (tmp / "site.conf").write_text(render("site.conf", {
            "LOCAL_PORT": self.site_port, "PERSISTENCE_DIR": f"{tmp / 'site-db'}/", "SITE_NAME": SITE,
            "SITE_PREFIX": PREFIX, "CENTRE_HOST": "localhost", "CENTRE_PORT": self.centre_port,
            "CA_FILE": self.pki.ca_file, "SITE_CERT_FILE": site.cert, "SITE_KEY_FILE": site.key,
        }, options={"restart_timeout": "1"}))  # the example's 5 to 60 s back-off, shortened for the test
        self.centre = Mosquitto(tmp / "centre.conf", self.centre_port, tmp / "centre.log")
        self.site = Mosquitto(tmp / "site.conf", self.site_port, tmp / "site.log")
        self.clients: list[Client] = []

    def at_centre(self, name: str, **kwargs) -> Client:
        """A client of the centre's broker with the certificate of `name` (the centre, or a site)."""
        client = Client(self.centre_port, identity=self.identities[name], ca_file=self.pki.ca_file, **kwargs)
        self.clients.append(client)
        return client

    def at_site(self) -> Client:
        """A local client of the site's broker, as barrierd is (loopback, no credentials)."""
        client = Client(self.site_port)
        self.clients.append(client)
        return client

    def bridge_up(self, watcher: Client) -> None:
        wait_until(lambda: watcher.payloads(f"{PREFIX}/bridge")[-1:] == [b"1"], 20, "the site's bridge connected")

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.site.stop()
        self.centre.stop()


@pytest.fixture
def fleet(tmp_path):
    rig = Fleet(tmp_path)
    rig.centre.start()
    rig.site.start()
    yield rig
    rig.close()


def test_a_state_published_at_the_site_reaches_the_centre_retained_with_its_expiry(fleet):
    centre = fleet.at_centre("centre")
    assert centre.subscribe("barrier-supervisor/#") == GRANTED_QOS1
    fleet.bridge_up(centre)
    barrierd = fleet.at_site()
    assert barrierd.publish(f"{PREFIX}/device/gate-1", '{"state": "closed"}', retain=True, expiry_s=30) == 0
    assert barrierd.publish(f"{PREFIX}/events", '{"kind": "command"}') == 0

    wait_until(lambda: centre.payloads(f"{PREFIX}/events") == [b'{"kind": "command"}'], 10, "event at the centre")
    [state] = wait_until(lambda: centre.on(f"{PREFIX}/device/gate-1"), 10, "device state at the centre")
    assert state.payload == b'{"state": "closed"}'
    assert 0 < state.properties.MessageExpiryInterval <= 30  # MQTT 5 bridge: the expiry crosses it
    centre.close()  # one connection per certificate: the broker names every client after its certificate
    late = fleet.at_centre("centre")
    assert late.subscribe(f"{PREFIX}/device/#") == GRANTED_QOS1
    [kept] = wait_until(lambda: late.on(f"{PREFIX}/device/gate-1"), 10, "retained at the centre")
    assert kept.retain and kept.payload == b'{"state": "closed"}'


def test_messages_published_while_the_centre_is_down_are_queued_and_delivered_when_it_returns(fleet):
    centre = fleet.at_centre("centre", persistent=True)
    assert centre.subscribe(f"{PREFIX}/events") == GRANTED_QOS1
    assert centre.subscribe(f"{PREFIX}/bridge") == GRANTED_QOS1
    assert centre.subscribe(f"{PREFIX}/lockdown") == GRANTED_QOS1
    fleet.bridge_up(centre)
    barrierd = fleet.at_site()
    assert barrierd.publish(f"{PREFIX}/events", "before") == 0
    wait_until(lambda: centre.payloads(f"{PREFIX}/events") == [b"before"], 10, "the event before the outage")

    fleet.centre.stop()  # the WAN, or the centre, is gone
    outage = [f"during-{n}".encode() for n in range(50)]
    for payload in outage:  # barrierd keeps publishing locally: its broker answers
        assert barrierd.publish(f"{PREFIX}/events", payload) == 0
    assert barrierd.publish(f"{PREFIX}/lockdown", '{"active": null}', retain=True, expiry_s=600) == 0

    fleet.centre.start()  # the centre's persistent session for its watcher comes back from disk
    wait_until(lambda: centre.payloads(f"{PREFIX}/events") == [b"before", *outage], 30,
               "every event of the outage, once, in order")
    # A retained state may come twice (the bridge's resubscription at the site resends it); an event never.
    wait_until(lambda: centre.payloads(f"{PREFIX}/lockdown")[-1:] == [b'{"active": null}'], 10, "the retained state")


def test_the_acl_keeps_each_site_to_its_own_prefix_and_its_own_lockdown_topic(fleet):
    centre = fleet.at_centre("centre")
    assert centre.subscribe("barrier-supervisor/#") == GRANTED_QOS1
    intruder = fleet.at_centre(OTHER)

    assert intruder.publish(f"{PREFIX}/device/gate-1", '{"state": "open"}', retain=True) == NOT_AUTHORIZED
    assert intruder.publish(f"{PREFIX}/events", "forged") == NOT_AUTHORIZED
    assert intruder.publish(f"{OTHER_PREFIX}/centre/lockdown", "self-issued") == NOT_AUTHORIZED
    assert centre.publish(f"{PREFIX}/status", "the centre poses as a site") == NOT_AUTHORIZED
    # What the site may write arrives, after what it may not, which never does (one broker, one
    # subscriber: delivered in order).
    assert intruder.publish(f"{OTHER_PREFIX}/events", "own event") == 0
    wait_until(lambda: centre.payloads(f"{OTHER_PREFIX}/events") == [b"own event"], 10, "the site's own event")
    topics = {m.topic for m in centre.messages}
    assert topics.isdisjoint({f"{PREFIX}/device/gate-1", f"{PREFIX}/events", f"{OTHER_PREFIX}/centre/lockdown",
                              f"{PREFIX}/status"})

    # Mosquitto 2.0's ACL file grants every subscription and refuses each delivery the user may not read.
    for topic in (f"{PREFIX}/centre/lockdown", f"{PREFIX}/#", f"{OTHER_PREFIX}/centre/lockdown"):
        intruder.subscribe(topic)
    assert centre.publish(f"{PREFIX}/centre/lockdown", "for site-a") == 0
    assert centre.publish(f"{OTHER_PREFIX}/centre/lockdown", "for site-b") == 0
    wait_until(lambda: intruder.payloads(f"{OTHER_PREFIX}/centre/lockdown") == [b"for site-b"], 10,
               "the site's own lockdown")
    assert [m.topic for m in intruder.messages] == [f"{OTHER_PREFIX}/centre/lockdown"]


def test_the_centre_publishes_a_sites_lockdown_and_the_sites_local_subscriber_gets_it_and_replies(fleet):
    centre = fleet.at_centre("centre")
    assert centre.subscribe("barrier-supervisor/#") == GRANTED_QOS1
    fleet.bridge_up(centre)
    barrierd = fleet.at_site()
    assert barrierd.subscribe(f"{PREFIX}/centre/lockdown") == GRANTED_QOS1

    assert centre.publish(f"{PREFIX}/centre/lockdown", '{"payload": "signed"}') == 0
    wait_until(lambda: barrierd.payloads(f"{PREFIX}/centre/lockdown") == [b'{"payload": "signed"}'], 10,
               "the lockdown at the site")
    assert barrierd.publish(f"{PREFIX}/centre/lockdown/reply", '{"accepted": false}') == 0
    wait_until(lambda: centre.payloads(f"{PREFIX}/centre/lockdown/reply") == [b'{"accepted": false}'], 10,
               "the reply at the centre")
    # The lockdown came in only: it was never sent back out to the centre.
    assert centre.payloads(f"{PREFIX}/centre/lockdown") == [b'{"payload": "signed"}']


def barrier_centre_status(fleet, *login: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "centre", "status", "--json", "--broker", f"localhost:{fleet.centre_port}",
         "--prefix", "barrier-supervisor/#", "--timeout", "3", "--tls-ca", str(fleet.pki.ca_file), *login],
        capture_output=True, text=True, timeout=60)


def test_barrier_centre_reads_the_fleet_at_the_centres_broker_with_its_certificate_and_not_without(fleet):
    watcher = fleet.at_centre("centre")
    assert watcher.subscribe("barrier-supervisor/#") == GRANTED_QOS1
    fleet.bridge_up(watcher)
    status = json.dumps({"online": True, "site": SITE, "refresh_s": 10, "since": 1.0})
    assert fleet.at_site().publish(f"{PREFIX}/status", status, retain=True, expiry_s=60) == 0
    wait_until(lambda: watcher.payloads(f"{PREFIX}/status"), 10, "the site's status at the centre")
    watcher.close()  # one connection per certificate: the broker's client id is the certificate's name

    centre = fleet.identities["centre"]
    shown = barrier_centre_status(fleet, "--client-cert", str(centre.cert), "--client-key", str(centre.key))
    assert shown.returncode == 0, shown.stderr
    (site,) = json.loads(shown.stdout)["sites"]
    assert (site["prefix"], site["site"], site["state"]) == (PREFIX, SITE, "online"), site

    refused = barrier_centre_status(fleet)  # TLS, but no certificate: the centre's broker takes no such client
    assert refused.returncode == 5 and f"localhost:{fleet.centre_port}" in refused.stderr, refused.stderr


def test_the_bridge_reports_a_lost_link_to_the_centre(fleet):
    centre = fleet.at_centre("centre")
    assert centre.subscribe(f"{PREFIX}/bridge") == GRANTED_QOS1
    fleet.bridge_up(centre)
    fleet.site.proc.kill()  # the site's broker vanishes without a goodbye: its last will at the centre
    wait_until(lambda: centre.payloads(f"{PREFIX}/bridge")[-1:] == [b"0"], 60, "link lost, by the bridge's will")


@pytest.mark.parametrize("example", ["site.conf", "centre.conf"])
def test_an_example_left_unfilled_is_refused_at_start(example, tmp_path):
    """Debian's Mosquitto 2.0 has no config-test option: starting it is the check, and it does check."""
    log = tmp_path / "mosquitto.log"
    broker = Mosquitto(EXAMPLES / example, free_port(), log)
    with pytest.raises(AssertionError, match="mosquitto exited with [1-9]"):
        broker.start()
    assert "Error" in log.read_text()
