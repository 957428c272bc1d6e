"""Group lockdown from the command centre: a signed command on `PREFIX/centre/lockdown` runs the local lockdown.

An adapter beside mqtt_publish.py, with its own MQTT connection (so neither waits for the other, and
supervision waits for neither). Subscribed only when the site file has a `[centre]` section; with
`lockdown = false` every command is refused. Each command is checked by centre/protocol.py (signature by a
key listed in `[centre.keys]`, validity window, site named, not replayed); a refused one is recorded as a
`centre` event and answered, never acted on; an accepted one goes through the command registry as the
`lockdown` command with the caller `centre:OPERATOR (key KEY_ID)`, so the latch, the EFO fan-out and the
audit are the local ones. The reply names each device's secured time once all are confirmed or at a
deadline. Nothing else received over MQTT is acted on; release stays local.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import aiomqtt
import structlog

from centre import protocol
from config.schema import CentreSection, MqttSection
from controller.auth import Caller, Role
from controller.lockdown import CONFIRM_MARGIN_S

if TYPE_CHECKING:
    from controller.commands import Registry
    from controller.site import Site

log = structlog.get_logger("controller.centre")

RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 30.0
DEADLINE_MARGIN_S = 2.0  # beyond the slowest device's travel limit and the confirmation margin
REFUSALS_RECORDED_PER_MINUTE = 30  # beyond this a flood is counted, not recorded one by one
CENTRE_UID = -1  # the command row's uid for a command from the centre (no local Unix user gave it)


class Refused(NamedTuple):
    """A refused envelope: the reply for the centre, and whether it is answered (a flood beyond the
    recorded rate is counted only)."""

    reply: dict
    answered: bool


class CentreLockdown:
    """Listens for the centre's lockdown on its own connection to the site's broker; start() / stop()."""

    def __init__(self, cfg: CentreSection, mqtt: MqttSection, site: Site, registry: Registry,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg, self.mqtt, self.site, self.registry, self.clock = cfg, mqtt, site, registry, clock
        self.site_name = site.cfg.site.name
        prefix = mqtt.topic_prefix or f"barrier-supervisor/{self.site_name}"  # the publisher's prefix
        self.topic = f"{prefix}/{protocol.LOCKDOWN_TOPIC}"
        self.reply_topic = f"{prefix}/{protocol.REPLY_TOPIC}"
        self.keys = {key_id: protocol.load_public_key(text) for key_id, text in cfg.keys.items()}
        self.seen: set[str] = site.store.load_centre_ids(clock() - protocol.CLOCK_SKEW_S)
        self.connected = False
        self.ignored = 0  # messages on other topics: never acted on
        self._refusals_window = (0.0, 0, 0)  # (window start, recorded, not recorded)
        self._task: asyncio.Task[None] | None = None
        self._answers: set[asyncio.Task[None]] = set()

    # ----- one command ------------------------------------------------------------------------

    async def handle(self, body: bytes) -> dict:
        """Check one received envelope and act on it if it is a valid lockdown for this site; the reply."""
        received_at, decision = self.check(body)
        if isinstance(decision, Refused):
            return decision.reply
        return await self._lock_down(decision, received_at)

    def check(self, body: bytes) -> tuple[float, protocol.Lockdown | Refused]:
        """(when received, the accepted command or the refusal). Awaits nothing: a refused envelope costs a
        signature check and holds no task; an accepted one is marked seen before anything else runs."""
        received_at = self.clock()
        if not self.cfg.lockdown:
            key_id, command_id = protocol.claimed(body)
            verdict = protocol.Refusal("opt-in off: this site takes no lockdown from the centre "
                                       "([centre] lockdown = false)", key_id, command_id)
        else:
            verdict = protocol.verify(body, self.keys, received_at, self.site_name, self.seen)
        if isinstance(verdict, protocol.Lockdown):
            self.seen.add(verdict.id)  # before anything awaits: a second copy arriving meanwhile is a replay
            self.site.store.save_centre_id(verdict.id, verdict.expires_at + protocol.CLOCK_SKEW_S)
            return received_at, verdict
        refusal = verdict
        if refusal.id is None or refusal.key_id is None:
            key_id, command_id = protocol.claimed(body)
            refusal = protocol.Refusal(refusal.reason, refusal.key_id or key_id, refusal.id or command_id)
        answered = self._record_refusal(refusal)
        return received_at, Refused(protocol.reply(refusal.id, self.site_name, received_at, refused=refusal.reason),
                                    answered)

    async def _lock_down(self, command: protocol.Lockdown, received_at: float) -> dict:
        caller = Caller(uid=CENTRE_UID, gid=CENTRE_UID, pid=os.getpid(),
                        user=f"centre:{command.operator} (key {command.key_id})", role=Role.TECHNICIAN)
        self.site.store.record_event("centre", "site", f"centre lockdown accepted from {caller.user}",
                                     id=command.id, key=command.key_id, operator=command.operator,
                                     sites=list(command.sites), reason=command.reason)
        log.warning("centre_lockdown_accepted", id=command.id, key=command.key_id, operator=command.operator)
        request = {"command": "lockdown", "args": {"reason": command.reason, "centre_id": command.id}}
        started = self.clock()
        running = asyncio.ensure_future(self.registry.dispatch(self.site, request, caller))
        done, _ = await asyncio.wait({running}, timeout=self._deadline_s())
        if not done:  # the fan-out goes on; the centre is told what is confirmed so far
            self._answers.add(running)
            running.add_done_callback(self._answers.discard)
            return self._outcome(command.id, received_at, started, {}, {}, "not confirmed secured by the deadline")
        result = running.result()
        data = result.data if isinstance(result.data, dict) else {}
        return self._outcome(command.id, received_at, started, data.get("secured_at") or {},
                             data.get("failed") or {}, result.message)

    def _outcome(self, command_id: str, received_at: float, started: float, secured_after: dict[str, float],
                 failed: dict[str, str], message: str) -> dict:
        devices = {}
        for name, device in self.site.devices.items():
            after = secured_after.get(name)
            secured_at = started + after if after is not None else None
            why = None if after is not None else failed.get(name, message)
            devices[name] = protocol.device_outcome(device.state, secured_at, why)
        times = [d["secured_at"] for d in devices.values() if d["secured_at"] is not None]
        secured_s = max(times) - received_at if times else None
        return protocol.reply(command_id, self.site_name, received_at, devices=devices, secured_s=secured_s)

    def _deadline_s(self) -> float:
        slowest = max((d.travel_limit_s for d in self.site.devices.values()), default=0.0)
        return slowest + CONFIRM_MARGIN_S + DEADLINE_MARGIN_S

    def _record_refusal(self, refusal: protocol.Refusal) -> bool:
        """A `centre` event per refusal; a flood beyond the rate is counted and recorded as one event. False
        for one counted only (it is not answered either)."""
        now = self.clock()
        since, recorded, skipped = self._refusals_window
        if now - since >= 60.0:
            if skipped:
                self.site.store.record_event("centre", "site", f"{skipped} more centre commands refused, "
                                             "not recorded one by one (too many in a minute)", count=skipped)
            since, recorded, skipped = now, 0, 0
        if recorded >= REFUSALS_RECORDED_PER_MINUTE:
            self._refusals_window = (since, recorded, skipped + 1)
            return False
        self._refusals_window = (since, recorded + 1, skipped)
        log.warning("centre_lockdown_refused", reason=refusal.reason, key=refusal.key_id, id=refusal.id)
        self.site.store.record_event("centre", "site", f"centre lockdown refused: {refusal.reason}",
                                     reason=refusal.reason, key=refusal.key_id, id=refusal.id)
        return True

    # ----- the connection ---------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="centre-lockdown")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=self.mqtt.connect_timeout_s)

    def as_dict(self) -> dict:
        return {"topic": self.topic, "lockdown": self.cfg.lockdown, "keys": sorted(self.keys),
                "connected": self.connected, "ignored": self.ignored}

    async def _run(self) -> None:
        delay = RECONNECT_MIN_S
        while True:
            try:
                await self._connection()
                delay = RECONNECT_MIN_S
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a lost broker only delays the centre's commands
                log.warning("centre_mqtt_unavailable", broker=f"{self.mqtt.host}:{self.mqtt.port}", error=repr(exc),
                            retry_s=delay)
            finally:
                self.connected = False
            await asyncio.sleep(delay)
            delay = min(2 * delay, RECONNECT_MAX_S)

    async def _connection(self) -> None:
        async with contextlib.AsyncExitStack() as stack:
            async with asyncio.timeout(self.mqtt.connect_timeout_s):
                client = await stack.enter_async_context(self._new_client())
                await client.subscribe(self.topic, qos=1)
            self.connected = True
            log.info("centre_listening", topic=self.topic, lockdown=self.cfg.lockdown)
            async for message in client.messages:
                if not message.topic.matches(self.topic) or not isinstance(message.payload, bytes):
                    self.ignored += 1
                    continue
                self.received(client, message.payload)

    def received(self, client: aiomqtt.Client, body: bytes) -> None:
        """One envelope, checked here and now (so a flood of bad ones cannot crowd out a genuine command);
        a task only for an accepted lockdown or a refusal within the recorded rate, to answer it."""
        received_at, decision = self.check(body)
        if isinstance(decision, Refused):
            if not decision.answered:
                return
            answer = asyncio.create_task(self._publish(client, decision.reply))
        else:
            answer = asyncio.create_task(self._answer(client, decision, received_at))
        self._answers.add(answer)
        answer.add_done_callback(self._answers.discard)

    async def _answer(self, client: aiomqtt.Client, command: protocol.Lockdown, received_at: float) -> None:
        await self._publish(client, await self._lock_down(command, received_at))

    async def _publish(self, client: aiomqtt.Client, reply: dict) -> None:
        try:
            await client.publish(self.reply_topic, json.dumps(reply, default=str), qos=1, retain=False)
        except aiomqtt.MqttError as exc:  # the lockdown stands; only the centre's copy of the answer is lost
            log.warning("centre_reply_lost", id=reply["id"], error=repr(exc))

    def _new_client(self) -> aiomqtt.Client:
        cfg = self.mqtt
        password = Path(cfg.password_file).read_text().strip() if cfg.password_file else None
        tls = ssl.create_default_context(cafile=str(cfg.tls_ca_file)) if cfg.tls_ca_file else None
        return aiomqtt.Client(
            cfg.host, cfg.port, username=cfg.username, password=password,
            identifier=f"{cfg.client_id or 'barrierd-' + self.site_name}-centre"[:64],
            protocol=aiomqtt.ProtocolVersion.V5, keepalive=cfg.keepalive_s, timeout=cfg.connect_timeout_s,
            tls_context=tls,
        )
