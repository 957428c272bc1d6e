"""Publication of the site's state and events to an MQTT broker, for a command centre watching many crossings.

Read only: the publisher acts on nothing it receives (the centre's signed lockdown is centre_lockdown.py's). Topics under the site's prefix (default
`barrier-supervisor/SITE`):
- `status`: retained {"online": true, "refresh_s": ..., ...}; the broker publishes {"online": false, "site": ...}
  (the last will) if barrierd vanishes, and barrierd publishes it itself when it stops;
- `device/NAME`, `lane/NAME`, `plc/NAME`, `lockdown`, `alarms`: retained JSON, republished whenever an
  event concerns them and every `refresh_s`; `readiness/NAME` for each blocker (a kind with EFO): its EFO
  readiness (state ready / degraded / not_ready / unknown, reasons, pressure, oil), the same as in its
  device topic, for a centre that watches only that. Each expires at the broker after 3 × refresh_s (MQTT 5
  message expiry), so a state nobody refreshes any more is never shown as still true; on a clean
  stop every device, lane, PLC, readiness and the lockdown are published `unknown` and the alarm list null;
- `events`: every event of the event store as it is recorded (not retained).
Supervision never waits for the broker: updates go through a bounded queue (the oldest are dropped
and counted when it is full), and a lost broker is reconnected with back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from config.schema import MqttSection

if TYPE_CHECKING:
    from controller.site import Site

log = structlog.get_logger("controller.mqtt")

QUEUE_SIZE = 1000
RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 30.0
STOP_GRACE_CONNECT_TIMEOUTS = 3  # stop() waits at most this many connect timeouts for the goodbye
EXPIRY_REFRESHES = 3  # a retained state expires after this many refresh periods without news


class MqttPublisher:
    """One task publishing the site to one broker; feed it with on_event (an EventStore listener)."""

    def __init__(self, cfg: MqttSection, site: Site) -> None:
        self.cfg = cfg
        self.site = site
        self.prefix = cfg.topic_prefix or f"barrier-supervisor/{site.cfg.site.name}"
        self.connected = False
        self.published = 0
        self.dropped = 0
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected_at: float | None = None

    # ----- feeding ----------------------------------------------------------------------------

    def on_event(self, event: dict[str, Any]) -> None:
        """Called for every recorded event; never blocks: when the queue is full the oldest update goes."""
        while True:
            try:
                self._queue.put_nowait(event)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self._queue.get_nowait()
                    self.dropped += 1

    def as_dict(self) -> dict[str, Any]:
        return {"broker": f"{self.cfg.host}:{self.cfg.port}", "prefix": self.prefix, "connected": self.connected,
                "published": self.published, "dropped": self.dropped}

    # ----- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mqtt-publisher")

    async def stop(self) -> None:
        """Publish the site's states as unknown and the site offline, then disconnect; bounded in time."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=STOP_GRACE_CONNECT_TIMEOUTS * self.cfg.connect_timeout_s)
        if not done:  # the broker stalls the goodbye or the disconnect: stop waiting for it
            log.warning("mqtt_stop_abandoned", broker=f"{self.cfg.host}:{self.cfg.port}")
            task.cancel()

    async def _run(self) -> None:
        delay = RECONNECT_MIN_S
        while True:
            try:
                await self._connection()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the broker, TLS, a password file: all only delay publication
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise asyncio.CancelledError from exc  # stopping: the goodbye failed, do not reconnect
                if self._connected_for() > RECONNECT_MAX_S:
                    delay = RECONNECT_MIN_S  # it had worked for a while: a new failure starts the back-off again
                log.warning("mqtt_unavailable", broker=f"{self.cfg.host}:{self.cfg.port}", error=repr(exc),
                            retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(2 * delay, RECONNECT_MAX_S)

    def _connected_for(self) -> float:
        """How long the last connection lasted (0 if it never got a CONNACK); forgets it."""
        since, self._connected_at = self._connected_at, None
        return 0.0 if since is None else asyncio.get_running_loop().time() - since

    async def _connection(self) -> None:
        """One connection to the broker, from CONNACK until it fails or the task is cancelled."""
        async with contextlib.AsyncExitStack() as stack:
            client = self._new_client()
            async with asyncio.timeout(self.cfg.connect_timeout_s):
                await stack.enter_async_context(client)
            self._client, self.connected = client, True
            self._connected_at = asyncio.get_running_loop().time()
            log.info("mqtt_connected", broker=f"{self.cfg.host}:{self.cfg.port}", prefix=self.prefix)
            try:
                await self._serve(client)
            finally:
                self.connected, self._client = False, None
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    await self._goodbye(client)

    def _new_client(self) -> aiomqtt.Client:
        password = Path(self.cfg.password_file).read_text().strip() if self.cfg.password_file else None
        tls = ssl.create_default_context(cafile=str(self.cfg.tls_ca_file)) if self.cfg.tls_ca_file else None
        will = aiomqtt.Will(self._topic("status"), json.dumps({"online": False, "reason": "connection lost",
                                                               "site": self.site.cfg.site.name}), qos=1, retain=True)
        return aiomqtt.Client(
            self.cfg.host, self.cfg.port, username=self.cfg.username, password=password,
            identifier=self.cfg.client_id or f"barrierd-{self.site.cfg.site.name}",
            protocol=aiomqtt.ProtocolVersion.V5, will=will, keepalive=self.cfg.keepalive_s,
            timeout=self.cfg.connect_timeout_s, tls_context=tls,
        )

    # ----- publishing -------------------------------------------------------------------------

    async def _serve(self, client: aiomqtt.Client) -> None:
        """The status, then everything every refresh_s (however busy the site) and each event as it comes."""
        await self._send(client, "status", {"online": True, "since": time.time(), "site": self.site.cfg.site.name,
                                            "refresh_s": self.cfg.refresh_s})
        loop = asyncio.get_running_loop()
        while True:
            await self._snapshot(client)
            next_snapshot = loop.time() + self.cfg.refresh_s
            while (left := next_snapshot - loop.time()) > 0:
                try:
                    async with asyncio.timeout(left):
                        event = await self._queue.get()
                except TimeoutError:
                    break
                await self._send(client, "events", event, retain=False)
                await self._subject(client, event["subject"])

    async def _snapshot(self, client: aiomqtt.Client) -> None:
        status = self.site.status()
        for device in status["devices"]:
            await self._send_device(client, device)
        for lane in status["lanes"]:
            await self._send(client, f"lane/{lane['name']}", lane)
        for plc in status["plcs"]:
            await self._send(client, f"plc/{plc['name']}", plc)
        await self._send(client, "lockdown", status["lockdown"] or {"active": False})
        await self._send(client, "alarms", status["alarms"])

    async def _subject(self, client: aiomqtt.Client, subject: str) -> None:
        """Republish what an event concerns: its device, lane or PLC, and the site-wide topics."""
        status = self.site.status()
        for device in status["devices"]:
            if device["name"] == subject:
                await self._send_device(client, device)
        for group, topic in (("lanes", "lane"), ("plcs", "plc")):
            for item in status[group]:
                if item["name"] == subject or (group == "lanes" and subject in item["devices"]):
                    await self._send(client, f"{topic}/{item['name']}", item)
        await self._send(client, "lockdown", status["lockdown"] or {"active": False})
        await self._send(client, "alarms", status["alarms"])

    async def _send_device(self, client: aiomqtt.Client, device: dict) -> None:
        await self._send(client, f"device/{device['name']}", device)
        if device.get("readiness") is not None:
            await self._send(client, f"readiness/{device['name']}", {"name": device["name"], **device["readiness"]})

    async def _goodbye(self, client: aiomqtt.Client) -> None:
        """barrierd is stopping: nothing it published stays as if it were still true."""
        why = "barrierd stopped"
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            async with asyncio.timeout(self.cfg.connect_timeout_s):
                for name in self.site.devices:
                    await self._send(client, f"device/{name}", {"name": name, "state": "unknown", "reason": why})
                for name, watched in self.site.condition.devices.items():
                    if watched.readiness is not None:
                        await self._send(client, f"readiness/{name}", {"name": name, "state": "unknown",
                                                                        "reasons": [why]})
                for name in self.site.lanes:
                    await self._send(client, f"lane/{name}", {"name": name, "mode": "unknown", "reason": why})
                for name in self.site.plcs:
                    await self._send(client, f"plc/{name}", {"name": name, "comms": "unknown", "reason": why})
                await self._send(client, "lockdown", {"active": None, "reason": why})
                await self._send(client, "alarms", None)  # no list rather than an old one
                await self._send(client, "status", {"online": False, "reason": why, "at": time.time(),
                                                    "site": self.site.cfg.site.name})

    async def _send(self, client: aiomqtt.Client, topic: str, payload: object, *, retain: bool = True) -> None:
        properties = None
        if retain and topic != "status":
            properties = Properties(PacketTypes.PUBLISH)
            properties.MessageExpiryInterval = int(EXPIRY_REFRESHES * self.cfg.refresh_s)
        await client.publish(self._topic(topic), json.dumps(payload, default=str), qos=self.cfg.qos, retain=retain,
                             properties=properties)
        self.published += 1

    def _topic(self, name: str) -> str:
        return f"{self.prefix}/{name}"
