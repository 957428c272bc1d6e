"""The reference subscriber of the fleet_broker benchmark: a plain aiomqtt client reading every site, JSON decoded."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

import aiomqtt


async def subscribe_all(host: str, port: int, topic: str) -> None:
    received = 0
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: print(json.dumps({"received": received}), flush=True))
    async with aiomqtt.Client(host, port, identifier="bench-centre", protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.subscribe(topic, qos=1)
        print(json.dumps({"ready": True}), flush=True)
        async for message in client.messages:
            json.loads(message.payload)
            received += 1


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_subscriber", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--topic", default="barrier-supervisor/#")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    asyncio.run(subscribe_all(args.host, args.port, args.topic))


if __name__ == "__main__":
    main()
