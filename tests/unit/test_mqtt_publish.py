"""The MQTT publisher against a fake broker client, in virtual loop time: queue, refresh under load, goodbye, bounded stop, failures."""

from __future__ import annotations

import asyncio
import json

import aiomqtt
import pytest

from config.schema import MqttSection
from controller import mqtt_publish
from controller.event_store import EventStore
from controller.mqtt_publish import MqttPublisher
from controller.site import Site
from tests.support import async_wait_until
from tests.unit.test_lane_properties import CFG

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]  # every wait below is in loop time

PREFIX = f"barrier-supervisor/{CFG.site.name}"


class FakeClient:
    """Stands in for aiomqtt.Client: records every publish with the loop time."""

    def __init__(self, exit_error: Exception | None = None) -> None:
        self.published: list[tuple[float, str, object, bool]] = []
        self.exit_error = exit_error

    async def __aenter__(self) -> FakeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.exit_error is not None:
            raise self.exit_error

    async def publish(self, topic, payload=None, qos=0, retain=False, properties=None, **_: object) -> None:
        await asyncio.sleep(0)
        self.published.append((asyncio.get_running_loop().time(), topic.removeprefix(PREFIX + "/"),
                               json.loads(payload), retain))

    def times(self, topic: str) -> list[float]:
        return [t for t, name, _, _ in self.published if name == topic]

    def last(self, topic: str) -> object:
        return [payload for _, name, payload, _ in self.published if name == topic][-1]


@pytest.fixture
def site(tmp_path):
    site = Site(CFG, EventStore(tmp_path / "events.sqlite"))
    yield site
    site.store.close()


def publisher_with(site, monkeypatch, clients: list[FakeClient], **cfg) -> MqttPublisher:
    publisher = MqttPublisher(MqttSection(host="broker", **cfg), site)
    made = iter(clients)
    monkeypatch.setattr(publisher, "_new_client", lambda: next(made))
    return publisher


async def test_a_full_queue_drops_the_oldest_update_and_counts_it(site, monkeypatch):
    monkeypatch.setattr(mqtt_publish, "QUEUE_SIZE", 3)
    publisher = MqttPublisher(MqttSection(host="broker"), site)
    for i in range(5):
        publisher.on_event({"id": i, "subject": "gate-1"})
    assert publisher.dropped == 2
    assert [publisher._queue.get_nowait()["id"] for _ in range(3)] == [2, 3, 4]
    assert publisher.prefix == PREFIX and publisher.as_dict()["connected"] is False


async def test_every_topic_is_refreshed_on_time_however_busy_the_site_is(site, monkeypatch):
    client = FakeClient()
    publisher = publisher_with(site, monkeypatch, [client], refresh_s=1.0)
    publisher.start()
    for i in range(20):  # an event about gate-1 every 0.5 s, faster than refresh_s
        publisher.on_event({"id": i, "subject": "gate-1", "kind": "state_change"})
        await asyncio.sleep(0.5)
    await publisher.stop()
    refreshed = client.times("device/gate-2")  # nothing happens to gate-2: only the refresh publishes it
    assert len(refreshed) >= 9 and max(b - a for a, b in zip(refreshed, refreshed[1:])) <= 1.0 + 1e-6
    assert len(client.times("lane/lane-1")) > len(client.times("lane/lane-2")), "gate-1's events republish its lane"


async def test_a_clean_stop_publishes_every_state_unknown_and_the_site_offline(site, monkeypatch):
    client = FakeClient()
    publisher = publisher_with(site, monkeypatch, [client])
    publisher.start()
    await async_wait_until(lambda: publisher.connected, 5.0, "the publisher connected")
    await async_wait_until(lambda: client.times("alarms"), 5.0, "the first snapshot published")
    readiness = site.condition.devices["blocker-1"].readiness.as_dict()
    assert client.last("readiness/blocker-1") == {"name": "blocker-1", **readiness} and readiness["state"] == "unknown"
    assert client.last("device/blocker-1")["readiness"] == readiness, "the same readiness in the device topic"
    assert {t for _, t, _, _ in client.published if t.startswith("readiness/")} == {
        f"readiness/{name}" for name, d in site.devices.items() if d.SPEC.lockdown_verb == "efo"}, "blockers only"
    await publisher.stop()
    assert client.last("device/gate-1") == {"name": "gate-1", "state": "unknown", "reason": "barrierd stopped"}
    assert client.last("readiness/blocker-2") == {"name": "blocker-2", "state": "unknown",
                                                  "reasons": ["barrierd stopped"]}
    assert client.last("lane/lane-1")["mode"] == "unknown" and client.last("plc/plc-bay")["comms"] == "unknown"
    assert client.last("lockdown")["active"] is None and client.last("alarms") is None
    assert client.last("status")["online"] is False and client.last("status")["site"] == CFG.site.name
    online = [payload for _, name, payload, _ in client.published if name == "status"][0]
    assert online["online"] is True and online["refresh_s"] == 10.0, "a watcher learns how often to expect news"


async def test_stop_returns_and_does_not_reconnect_when_the_disconnect_fails(site, monkeypatch):
    stalled, spare = FakeClient(exit_error=aiomqtt.MqttError("disconnect timed out")), FakeClient()
    publisher = publisher_with(site, monkeypatch, [stalled, spare], connect_timeout_s=0.5)
    publisher.start()
    await async_wait_until(lambda: publisher.connected, 5.0, "the publisher connected")
    await asyncio.wait_for(publisher.stop(), 5)
    await asyncio.sleep(2 * mqtt_publish.RECONNECT_MAX_S)  # long past any reconnection back-off
    assert spare.published == [], "a stopping publisher connected again"


async def test_an_unreadable_password_file_delays_publication_and_never_ends_the_task(site, tmp_path):
    publisher = MqttPublisher(MqttSection(host="broker", password_file=str(tmp_path / "missing")), site)
    publisher.start()
    await asyncio.sleep(10)
    task = publisher._task
    assert task is not None and not task.done() and not publisher.connected
    await publisher.stop()
