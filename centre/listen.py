"""The centre's MQTT subscription (aiomqtt): the sites' topic filter, each message given to the Fleet with its expiry."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

import aiomqtt
import structlog

from centre.broker import BrokerAddress, mqtt_client
from centre.fleet import Fleet

log = structlog.get_logger("centre.listen")

RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 30.0
SETTLE_S = 0.3  # the retained burst is over once nothing new came for this long, or once a live message came


class BrokerUnreachable(Exception):
    """The broker did not take the connection or the subscription; the words say why."""


class Listener:
    """One subscription feeding a Fleet; `connected` and `error` say how the link to the broker is."""

    def __init__(self, fleet: Fleet, broker: BrokerAddress, topic_filter: str) -> None:
        self.fleet, self.broker, self.topic_filter = fleet, broker, topic_filter
        self.connected = False
        self.error: str | None = None
        self.last_message: float | None = None  # the fleet's clock
        self.live = False  # a message without the retain flag came: the broker has sent every retained one before it
        self.on_message: Callable[[], None] = lambda: None

    def _client(self) -> aiomqtt.Client:
        return mqtt_client(self.broker)

    async def session(self) -> None:
        """One connection: subscribe and feed the fleet until it fails (BrokerUnreachable) or is cancelled."""
        try:
            async with asyncio.timeout(self.broker.connect_timeout_s * 2):
                client = self._client()
                await client.__aenter__()
        except (aiomqtt.MqttError, OSError, TimeoutError, ssl.SSLError) as exc:
            raise BrokerUnreachable(f"broker {self.broker} not reachable: {exc or type(exc).__name__}") from exc
        try:
            await client.subscribe(self.topic_filter, qos=1)
            self.connected, self.error = True, None
            log.info("centre_subscribed", broker=str(self.broker), filter=self.topic_filter)
            async for message in client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
                expiry = getattr(message.properties, "MessageExpiryInterval", None) if message.properties else None
                self.fleet.receive(str(message.topic), payload, expiry)
                self.last_message = self.fleet.clock()
                self.live = self.live or not message.retain
                self.on_message()
        except aiomqtt.MqttError as exc:
            raise BrokerUnreachable(f"lost the broker {self.broker}: {exc}") from exc
        finally:
            self.connected = False
            await asyncio.shield(_leave(client))

    async def run(self) -> None:
        """Stay subscribed for good: a lost broker is retried with back-off (its sites meanwhile turn stale)."""
        delay = RECONNECT_MIN_S
        while True:
            try:
                await self.session()
                delay = RECONNECT_MIN_S
            except BrokerUnreachable as exc:
                self.error = str(exc)
                log.warning("centre_broker_unavailable", error=str(exc), retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(2 * delay, RECONNECT_MAX_S)

    async def retained(self, timeout_s: float, settle_s: float = SETTLE_S) -> bool:
        """Subscribe, wait for the sites' retained state or the timeout; disconnect.

        The retained state is in once every site is complete and either nothing came for `settle_s` (a quiet
        fleet) or a live message came (the broker sends a subscription's retained messages before any live
        one: a fleet that keeps publishing is never quiet). True when complete; BrokerUnreachable when the
        broker could not be reached, or had not taken the subscription by the timeout."""
        task = asyncio.create_task(self.session())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            while loop.time() < deadline:
                if task.done():
                    task.result()  # raises BrokerUnreachable
                    return self.fleet.complete()
                quiet = self.last_message is not None and self.fleet.clock() - self.last_message >= settle_s
                if self.connected and (quiet or self.live) and self.fleet.complete():
                    return True
                await asyncio.sleep(0.05)
            if not self.fleet.sites and not self.connected:  # still connecting: nothing was read from the broker
                raise BrokerUnreachable(f"broker {self.broker} not reachable within {timeout_s:g} s")
            return self.fleet.complete()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _leave(client: aiomqtt.Client) -> None:
    try:
        async with asyncio.timeout(2):
            await client.__aexit__(None, None, None)
    except (aiomqtt.MqttError, TimeoutError, OSError):
        pass
