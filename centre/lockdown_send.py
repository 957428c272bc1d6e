"""The centre's side of a group lockdown: sign one command, publish it to each site, collect their replies."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from centre import protocol
from centre.broker import BrokerAddress, mqtt_client

REPLY_WAIT_S = 30.0  # a site answers once its devices are confirmed or at its own deadline (travel limit + margin)


@dataclass
class Outcome:
    """What came back from the sites a lockdown was sent to."""

    id: str
    sites: dict[str, str]  # site -> prefix
    replies: dict[str, dict] = field(default_factory=dict)
    sent_at: float = 0.0

    @property
    def missing(self) -> list[str]:
        return [site for site in self.sites if site not in self.replies]

    @property
    def all_secured(self) -> bool:
        return not self.missing and all(r["accepted"] and r["all_secured"] for r in self.replies.values())

    def as_dict(self) -> dict:
        """For `lockdown --json`: when it was published (unix time), and each site's reply as sent (null: none)."""
        return {"id": self.id, "sent_at": self.sent_at, "all_secured": self.all_secured,
                "sites": {site: self.replies.get(site) for site in self.sites}}

    def lines(self) -> list[str]:
        """Words for the operator: one line for success, else each site and device that is not secured."""
        if self.all_secured:
            last = max(r["secured_s"] for r in self.replies.values())
            return [f"all lanes of {len(self.sites)} sites secured at t = {last:.2f} s (command {self.id})"]
        lines = [f"NOT all secured (command {self.id}):"]
        for site in self.sites:
            answer = self.replies.get(site)
            if answer is None:
                lines.append(f"  {site}: no reply within the wait (offline, not listening, or no [centre] section)")
            elif not answer["accepted"]:
                lines.append(f"  {site}: refused: {answer['reason']}")
            elif answer["all_secured"]:
                lines.append(f"  {site}: all {len(answer['devices'])} devices secured at t = {answer['secured_s']:.2f} s")
            else:
                for name, device in answer["devices"].items():
                    if not device["secured"]:
                        lines.append(f"  {site}: {name} NOT secured ({device['state']}): {device['why']}")
        return lines


async def send_lockdown(broker: BrokerAddress, targets: dict[str, str], envelope: bytes, command_id: str,
                        wait_s: float = REPLY_WAIT_S) -> Outcome:
    """Publish `envelope` to each target site's topic (site -> prefix) and wait for every reply or `wait_s`."""
    outcome = Outcome(id=command_id, sites=dict(targets))
    site_of_reply = {f"{prefix}/{protocol.REPLY_TOPIC}": site for site, prefix in targets.items()}
    async with mqtt_client(broker) as client:
        for topic in site_of_reply:
            await client.subscribe(topic, qos=1)  # before sending: no reply can come before the subscription
        outcome.sent_at = time.time()
        for prefix in targets.values():
            await client.publish(f"{prefix}/{protocol.LOCKDOWN_TOPIC}", envelope, qos=1, retain=False)
        try:
            async with asyncio.timeout(wait_s):
                async for message in client.messages:
                    site = site_of_reply.get(message.topic.value)
                    answer = _reply(message.payload)
                    if site is None or answer is None or answer.get("id") != command_id:
                        continue  # another command's answer, or not an answer
                    outcome.replies[site] = answer
                    if not outcome.missing:
                        break
        except TimeoutError:
            pass
    return outcome


def _reply(payload: object) -> dict | None:
    try:
        answer = json.loads(payload) if isinstance(payload, (bytes, str)) else None
    except ValueError:
        return None
    needed = {"id", "accepted", "reason", "devices", "all_secured", "secured_s"}
    return answer if isinstance(answer, dict) and needed <= set(answer) else None
