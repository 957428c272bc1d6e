"""The MQTT publisher's queue: never blocks supervision, drops the oldest update when full and counts it."""

from __future__ import annotations

import pytest

from config.schema import MqttSection
from controller import mqtt_publish
from controller.event_store import EventStore
from controller.mqtt_publish import MqttPublisher
from controller.site import Site
from tests.unit.test_lane_properties import CFG


@pytest.mark.asyncio
async def test_a_full_queue_drops_the_oldest_update_and_counts_it(tmp_path, monkeypatch):
    monkeypatch.setattr(mqtt_publish, "QUEUE_SIZE", 3)
    site = Site(CFG, EventStore(tmp_path / "events.sqlite"))
    publisher = MqttPublisher(MqttSection(host="broker"), site)
    for i in range(5):
        publisher.on_event({"id": i, "subject": "gate-1"})
    assert publisher.dropped == 2
    assert [publisher._queue.get_nowait()["id"] for _ in range(3)] == [2, 3, 4]
    assert publisher.prefix == f"barrier-supervisor/{CFG.site.name}"
    assert publisher.as_dict()["connected"] is False
    site.store.close()
