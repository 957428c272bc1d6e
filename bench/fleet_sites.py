"""Simulated crossings for the fleet_broker benchmark: N sites × M lanes publishing as barrierd does, one process."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import time

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

EXPIRY_REFRESHES = 3  # as controller/mqtt_publish.py: a retained state expires after 3 refresh periods


READINESS = {"state": "ready", "reasons": [], "pressure_bar": 160.0, "oil_c": 20.0, "decay_bar_per_min": None}
KINDS = (("gate", "folding_gate", "closed", "closed", ["AT_CLOSED", "LOCKED"]),
         ("blocker", "road_blocker", "closed", "raised", ["AT_CLOSED"]),
         ("signal", "traffic_signal", "red", "red", ["RED"]))


def site_states(site: str, lanes: int) -> list[tuple[str, dict]]:
    """Every retained state of one site of `lanes` lanes, shaped as a real barrierd's (controller/mqtt_publish.py):
    per lane a gate, a blocker (and its readiness), a signal, the lane and its PLC; then lockdown and alarms."""
    now = time.time()
    states: list[tuple[str, dict]] = []
    for lane in range(1, lanes + 1):
        plc = f"plc-{lane}"
        for slot, (role, kind, state, display, flags) in enumerate(KINDS):
            states.append((f"device/{role}-{lane}", {
                "name": f"{role}-{lane}", "kind": kind, "state": state, "display": display,
                "position": None if role == "signal" else 1000, "plc": plc, "slot": slot, "quality": "good",
                "reason": None, "flags": flags, "intent": None, "intent_by": None, "verbs": ["open", "close", "reset"],
                "travel_limit_s": 4.5, "readiness": READINESS if role == "blocker" else None, "cycles": 0,
                "service_due": False}))
        states.append((f"readiness/blocker-{lane}", {"name": f"blocker-{lane}", **READINESS}))
        states.append((f"lane/lane-{lane}", {
            "name": f"lane-{lane}", "mode": "secured", "devices": [f"{role}-{lane}" for role, *_ in KINDS],
            "by": "barrierd", "reason": "every device secured", "since": now, "persisted": True, "lockdown": None}))
        states.append((f"plc/{plc}", {"name": plc, "comms": "ok", "reason": None, "watchdog_ms": 3000,
                                      "polls": 123456, "polls_ok": 123456}))
    return states + [("lockdown", {"active": False}), ("alarms", [])]


def site_status(site: str, refresh_s: float) -> dict:
    """The retained status barrierd publishes on connecting (no expiry: the last will replaces it)."""
    return {"online": True, "since": time.time(), "site": site, "refresh_s": refresh_s}


async def run_site(port: int, site: str, lanes: int, refresh_s: float, events_per_s: float, counts: list[int]) -> None:
    prefix = f"barrier-supervisor/{site}"
    expiry = Properties(PacketTypes.PUBLISH)
    expiry.MessageExpiryInterval = int(EXPIRY_REFRESHES * refresh_s)
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"bench-{site}", protocol=aiomqtt.ProtocolVersion.V5,
                              max_inflight_messages=100) as client:
        client.pending_calls_threshold = 1000  # a whole refresh is in flight at once, as intended
        await client.publish(f"{prefix}/status", json.dumps(site_status(site, refresh_s)), qos=1, retain=True)
        counts[0] += 1
        loop = asyncio.get_running_loop()
        next_refresh = loop.time() + random.uniform(0, refresh_s)  # sites are not in step
        next_event = loop.time() + random.expovariate(events_per_s)
        while True:
            await asyncio.sleep(max(0.0, min(next_refresh, next_event) - loop.time()))
            if loop.time() >= next_event:
                event = {"kind": "state_change", "subject": "gate-1", "summary": "closed → opening",
                         "at": time.time(), "data": {"trigger": "command", "uid": 1000}}
                await client.publish(f"{prefix}/events", json.dumps(event), qos=1)
                counts[0] += 1
                next_event += random.expovariate(events_per_s)
            if loop.time() >= next_refresh:
                states = site_states(site, lanes)  # sent at once, as barrierd's refresh does
                await asyncio.gather(*(client.publish(f"{prefix}/{topic}", json.dumps(state), qos=1, retain=True,
                                                      properties=expiry) for topic, state in states))
                counts[0] += len(states)  # each acknowledged by the broker (PUBACK)
                next_refresh += refresh_s


async def main_async(args: argparse.Namespace) -> None:
    counts = [0]
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: print(json.dumps({"published": counts[0]}), flush=True))
    tasks = [asyncio.create_task(run_site(args.port, f"site-{n:03d}", args.lanes, args.refresh_s,
                                          args.events_per_site_s, counts)) for n in range(1, args.sites + 1)]
    print(json.dumps({"ready": True}), flush=True)
    await asyncio.gather(*tasks)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_sites", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sites", type=int, default=50)
    parser.add_argument("--lanes", type=int, default=16)
    parser.add_argument("--refresh-s", type=float, default=10.0)
    parser.add_argument("--events-per-site-s", type=float, default=0.5)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
