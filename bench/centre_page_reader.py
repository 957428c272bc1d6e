"""A live page of `barrier-centre web` for the fleet_centre benchmark: one Server-Sent Events client, what a browser
left open on the page keeps connected; on SIGUSR1 it prints the centre's own message count and the last picture's
sites online and devices current (a JSON line)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

import aiohttp

CONNECT_WITHIN_S = 30.0


def summary(picture: dict | None, updates: int, size: int = 0) -> dict:
    """{"received": the centre's message count, "updates": pictures pushed, the last one's size, sites online,
    devices current/total}."""
    if picture is None:
        return {"received": 0, "updates": updates, "picture_kb": 0, "sites_online": 0, "devices_current": "0/0"}
    devices = [device for site in picture["sites"] for lane in site["lanes"] for device in lane["devices"]]
    devices += [device for site in picture["sites"] for device in site["others"]]
    return {"received": picture["received"], "updates": updates, "picture_kb": round(size / 1000, 1),
            "sites_online": sum(site["state"] == "online" for site in picture["sites"]),
            "devices_current": f"{sum(device['current'] for device in devices)}/{len(devices)}"}


async def follow(url: str) -> None:
    state: dict = {"picture": None, "updates": 0, "size": 0}
    loop = asyncio.get_running_loop()

    def answer() -> None:
        print(json.dumps(summary(state["picture"], state["updates"], state["size"])), flush=True)

    loop.add_signal_handler(signal.SIGUSR1, answer)
    deadline = loop.time() + CONNECT_WITHIN_S
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=30)) as session:
        while True:
            try:
                response = await session.get(url)
                break
            except aiohttp.ClientConnectionError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.2)
        async with response:
            response.raise_for_status()
            buffer = b""
            async for chunk in response.content.iter_any():  # one event may be far larger than a read
                buffer += chunk
                *events, buffer = buffer.split(b"\n\n")
                for event in events:
                    if event.startswith(b"data: "):
                        state["picture"], state["size"] = json.loads(event[6:]), len(event) - 6
                        state["updates"] += 1


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.centre_page_reader", description=__doc__)
    parser.add_argument("--url", required=True, help="the page's live stream, http://HOST:PORT/api/live")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    asyncio.run(follow(args.url))


if __name__ == "__main__":
    main()
